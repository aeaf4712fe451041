/*
 * udp_echo_client.c: a UDP echo client on polyio.
 *
 *   udp_echo_client [--conns C] [--size BYTES] [--count N] [--show] HOST PORT
 *
 * Each of C sockets (connected to HOST:PORT) sends N datagrams of BYTES bytes, one at a
 * time, and checks that each comes back whole and unchanged within 5 s. It prints what it
 * exchanged and the round-trip rate; it exits 1 on a mismatch, a loss or an error.
 */
#define _POSIX_C_SOURCE 200809L

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "polyio.h"

#define BATCH 128
#define WAIT_MS 5000

typedef struct client {
    polyio_handle handle;
    uint8_t *out; /* the datagram being sent */
    uint8_t *in;  /* room for its echo (one byte more, to see one that grew) */
    uint64_t sent;
    int done;
} client;

static polyio_runtime *rt;
static size_t size = 64, conns = 1;
static uint64_t count = 1000;
static int show;
static size_t finished, failures;

/* user_data: the client's index in the high bits, the op in the low byte. */
enum { UD_SEND = 1, UD_RECV = 2 };
#define UD(i, kind) (((uint64_t)(i) << 8) | (kind))

static void fill(client *c, size_t idx) {
    for (size_t i = 0; i < size; i++)
        c->out[i] = (uint8_t)('a' + (idx * 7 + c->sent * 13 + i) % 26);
}

static void fail(client *c, const char *what, int64_t code) {
    if (c->done)
        return;
    fprintf(stderr, "udp_echo_client: %s: %s\n", what, polyio_strerror((int32_t)code));
    failures++;
    c->done = 1;
    finished++;
}

/* Sends the next datagram with its receive armed first (so the echo cannot be missed),
 * the receive bounded by a deadline (a lost datagram fails the run instead of hanging). */
static void next(client *c, size_t idx) {
    if (c->sent == count) {
        c->done = 1;
        finished++;
        return;
    }
    fill(c, idx);
    polyio_status s = polyio_udp_recv(rt, c->handle, c->in, size + 1, UD(idx, UD_RECV));
    if (s == POLYIO_STATUS_OK)
        s = polyio_deadline(rt, UD(idx, UD_RECV), WAIT_MS);
    if (s == POLYIO_STATUS_OK || s == POLYIO_STATUS_NOT_FOUND)
        s = polyio_udp_send(rt, c->handle, c->out, size, NULL, UD(idx, UD_SEND));
    if (s != POLYIO_STATUS_OK)
        fail(c, "send", s);
}

static void handle(client *cs, const polyio_completion *cp) {
    size_t idx = (size_t)(cp->user_data >> 8);
    client *c = &cs[idx];
    switch (cp->user_data & 0xff) {
    case UD_SEND:
        if (cp->result < 0)
            fail(c, "send", cp->result);
        return;
    case UD_RECV:
        if (cp->result < 0) {
            fail(c, cp->result == POLYIO_STATUS_TIMED_OUT ? "no echo (datagram lost?)" : "receive", cp->result);
            return;
        }
        if ((size_t)cp->result != size || (cp->flags & POLYIO_COMPLETION_TRUNC) || memcmp(c->in, c->out, size) != 0) {
            fprintf(stderr, "udp_echo_client: socket %zu: datagram %" PRIu64 " came back different\n", idx, c->sent);
            failures++;
            c->done = 1;
            finished++;
            return;
        }
        if (show)
            printf("sent %zu bytes to %s:%u, got them back\n", size, cp->addr.ip, cp->addr.port);
        c->sent++;
        next(c, idx);
        return;
    default:
        return;
    }
}

static int usage(void) {
    fprintf(stderr, "usage: udp_echo_client [--conns C] [--size BYTES] [--count N] [--show] HOST PORT\n");
    return 2;
}

int main(int argc, char **argv) {
    int argi = 1;
    for (; argi < argc && strncmp(argv[argi], "--", 2) == 0; argi++) {
        if (strcmp(argv[argi], "--show") == 0)
            show = 1;
        else if (argi + 1 < argc && strcmp(argv[argi], "--conns") == 0)
            conns = (size_t)strtoul(argv[++argi], NULL, 10);
        else if (argi + 1 < argc && strcmp(argv[argi], "--size") == 0)
            size = (size_t)strtoul(argv[++argi], NULL, 10);
        else if (argi + 1 < argc && strcmp(argv[argi], "--count") == 0)
            count = strtoull(argv[++argi], NULL, 10);
        else
            return usage();
    }
    if (argc - argi != 2 || conns == 0 || size == 0 || size > 65507)
        return usage();
    const char *host = argv[argi];
    char *end = NULL;
    long port = strtol(argv[argi + 1], &end, 10);
    if (*end != '\0' || port <= 0 || port > 65535)
        return usage();

    if (polyio_runtime_new(NULL, &rt) != POLYIO_STATUS_OK)
        return 1;
    client *cs = calloc(conns, sizeof *cs);
    const char *any = strchr(host, ':') ? "::" : "0.0.0.0";
    int rc = 0;
    for (size_t i = 0; cs && i < conns; i++) {
        cs[i].out = malloc(size);
        cs[i].in = malloc(size + 1);
        polyio_status s = polyio_udp_bind(rt, any, 0, 0, &cs[i].handle);
        if (s == POLYIO_STATUS_OK)
            s = polyio_udp_connect(rt, cs[i].handle, host, (uint16_t)port);
        if (!cs[i].out || !cs[i].in || s != POLYIO_STATUS_OK) {
            fprintf(stderr, "udp_echo_client: socket: %s\n", polyio_strerror(s));
            rc = 1;
            conns = i + 1;
            break;
        }
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (size_t i = 0; rc == 0 && i < conns; i++)
        next(&cs[i], i);
    polyio_completion done[BATCH];
    while (rc == 0 && finished < conns) {
        size_t n = polyio_reap(rt, done, BATCH, -1);
        for (size_t i = 0; i < n; i++)
            handle(cs, &done[i]);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    uint64_t total = 0;
    for (size_t i = 0; cs && i < conns; i++)
        total += cs[i].sent;
    polyio_runtime_free(rt); /* closes the sockets */
    for (size_t i = 0; cs && i < conns; i++) {
        free(cs[i].out);
        free(cs[i].in);
    }
    free(cs);
    if (rc != 0 || failures > 0)
        return 1;
    printf("%zu sockets x %" PRIu64 " datagrams of %zu bytes echoed and verified: %.0f round trips/s\n", conns,
           count, size, secs > 0 ? (double)total / secs : 0.0);
    return 0;
}
