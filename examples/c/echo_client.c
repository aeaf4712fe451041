/*
 * echo_client.c: an echo client that embeds polyio in its own plain poll() loop.
 *
 * The program owns the loop: it polls polyio_runtime_backend_fd() (beside stdin, say, in a
 * real program) with the timeout polyio_runtime_next_timeout_ms() gives, and runs a
 * non-blocking polyio_turn() whenever the fd is readable or the timeout passes. That is
 * all any foreign event loop needs to drive polyio.
 *
 *   echo_client [--conns C] [--size BYTES] [--count N] [--show] HOST PORT
 *   echo_client [options] --unix PATH          (a Unix socket instead of TCP)
 *
 * Each of C connections sends N messages of BYTES bytes, one at a time, and checks that
 * every echoed byte matches. It prints what it exchanged and the round-trip rate.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "polyio.h"

#define BATCH 128

typedef struct client {
    polyio_handle handle;
    uint8_t *out;    /* the message being sent */
    uint8_t *in;     /* its echo, as it arrives */
    size_t got;      /* bytes of the echo so far */
    uint64_t sent;   /* messages sent */
    int done;
} client;

static polyio_runtime *rt;
static size_t size = 64, conns = 1;
static uint64_t count = 1000;
static int show;
static size_t finished, failures;

/* user_data: the client's index in the high bits, the op in the low byte. */
enum { UD_CONNECT = 1, UD_WRITE = 2, UD_READ = 3 };
#define UD(i, kind) (((uint64_t)(i) << 8) | (kind))

static void fill(client *c, size_t idx) {
    for (size_t i = 0; i < size; i++)
        c->out[i] = (uint8_t)('a' + (idx * 7 + c->sent * 13 + i) % 26);
}

static int fail(client *c, const char *what, int64_t code) {
    if (c->done)
        return -1;
    fprintf(stderr, "echo_client: %s: %s\n", what, polyio_strerror((int32_t)code));
    failures++;
    c->done = 1;
    finished++;
    return -1;
}

static void send_next(client *c, size_t idx) {
    if (c->sent == count) {
        c->done = 1;
        finished++;
        polyio_close(rt, c->handle);
        return;
    }
    fill(c, idx);
    c->got = 0;
    polyio_status s = polyio_write(rt, c->handle, c->out, size, UD(idx, UD_WRITE));
    if (s == POLYIO_STATUS_OK)
        s = polyio_read(rt, c->handle, c->in, size, UD(idx, UD_READ));
    if (s != POLYIO_STATUS_OK)
        fail(c, "submit", s);
}

static void handle(client *clients, const polyio_completion *cp) {
    size_t idx = (size_t)(cp->user_data >> 8);
    client *c = &clients[idx];
    switch (cp->user_data & 0xff) {
    case UD_CONNECT:
        if (cp->result < 0) {
            fail(c, "connect", cp->result);
            return;
        }
        c->handle = cp->handle;
        polyio_tcp_nodelay(rt, c->handle, true);
        send_next(c, idx);
        return;
    case UD_WRITE:
        if (cp->result < 0 && !c->done)
            fail(c, "write", cp->result);
        return;
    case UD_READ:
        if (c->done)
            return;
        if (cp->result <= 0) {
            fail(c, cp->result == 0 ? "read (server closed early)" : "read", cp->result);
            return;
        }
        c->got += (size_t)cp->result;
        if (c->got < size) { /* the echo may arrive in pieces: read the rest */
            polyio_status s = polyio_read(rt, c->handle, c->in + c->got, size - c->got, UD(idx, UD_READ));
            if (s != POLYIO_STATUS_OK)
                fail(c, "read", s);
            return;
        }
        if (memcmp(c->in, c->out, size) != 0) {
            fail(c, "echo mismatch", POLYIO_STATUS_IO_ERROR);
            return;
        }
        if (show && c->sent < 3)
            printf("  conn %zu: sent %zu bytes \"%.*s%s\", got the same back\n", idx, size,
                   (int)(size < 24 ? size : 24), (const char *)c->out, size > 24 ? "..." : "");
        c->sent++;
        send_next(c, idx);
        return;
    }
}

static int usage(void) {
    fprintf(stderr, "usage: echo_client [--conns C] [--size BYTES] [--count N] [--show] HOST PORT | --unix PATH\n");
    return 2;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    const char *unix_path = NULL;
    int argi = 1;
    for (; argi < argc && strncmp(argv[argi], "--", 2) == 0; argi++) {
        if (argi + 1 < argc && strcmp(argv[argi], "--unix") == 0)
            unix_path = argv[++argi];
        else if (strcmp(argv[argi], "--show") == 0)
            show = 1;
        else if (argi + 1 < argc && strcmp(argv[argi], "--conns") == 0)
            conns = (size_t)strtoull(argv[++argi], NULL, 10);
        else if (argi + 1 < argc && strcmp(argv[argi], "--size") == 0)
            size = (size_t)strtoull(argv[++argi], NULL, 10);
        else if (argi + 1 < argc && strcmp(argv[argi], "--count") == 0)
            count = strtoull(argv[++argi], NULL, 10);
        else
            return usage();
    }
    if (argc - argi != (unix_path ? 0 : 2) || conns == 0 || conns > 10000 || size == 0 || size > (64u << 20))
        return usage();
    const char *host = unix_path ? NULL : argv[argi];
    long port = unix_path ? 0 : strtol(argv[argi + 1], NULL, 10);
    if (!unix_path && (port <= 0 || port > 65535))
        return usage();

    polyio_status s = polyio_runtime_new(NULL, &rt);
    if (s != POLYIO_STATUS_OK) {
        fprintf(stderr, "echo_client: runtime: %s\n", polyio_strerror(s));
        return 1;
    }
    client *clients = calloc(conns, sizeof *clients);
    if (clients == NULL)
        return 1;
    for (size_t i = 0; i < conns; i++) {
        clients[i].out = malloc(size);
        clients[i].in = malloc(size);
        if (clients[i].out == NULL || clients[i].in == NULL)
            return 1;
        s = unix_path ? polyio_unix_connect(rt, unix_path, strlen(unix_path), UD(i, UD_CONNECT))
                      : polyio_tcp_connect(rt, host, (uint16_t)port, UD(i, UD_CONNECT));
        if (s != POLYIO_STATUS_OK) {
            fprintf(stderr, "echo_client: connect: %s\n", polyio_strerror(s));
            return 1;
        }
    }

    double start = now_s();
    polyio_completion done[BATCH];
    while (finished < conns) {
        /* Our own loop: polyio is one fd and one timeout among whatever else we watch. */
        struct pollfd pfd = {.fd = polyio_runtime_backend_fd(rt), .events = POLLIN};
        if (poll(&pfd, 1, polyio_runtime_next_timeout_ms(rt)) < 0 && errno != EINTR) {
            perror("poll");
            break;
        }
        size_t n = polyio_turn(rt, done, BATCH);
        for (size_t i = 0; i < n; i++)
            handle(clients, &done[i]);
    }
    double secs = now_s() - start;

    uint64_t total = 0;
    for (size_t i = 0; i < conns; i++)
        total += clients[i].sent;
    printf("%" PRIu64 " round trips of %zu bytes over %zu connection%s in %.3f s: %.0f req/s, every "
           "byte verified%s\n",
           total, size, conns, conns == 1 ? "" : "s", secs, secs > 0 ? (double)total / secs : 0.0,
           failures ? " (with failures)" : "");
    polyio_runtime_free(rt);
    for (size_t i = 0; i < conns; i++) {
        free(clients[i].out);
        free(clients[i].in);
    }
    free(clients);
    return failures ? 1 : 0;
}
