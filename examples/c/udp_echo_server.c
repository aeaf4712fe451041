/*
 * udp_echo_server.c: a UDP echo server on polyio.
 *
 * One multi-shot receive hands it every datagram with its sender's address; it sends each
 * back from the lent payload itself (no copy): straight to the kernel when it takes the
 * datagram at once (then the payload is released at once), else with a send whose
 * completion releases it.
 *
 *   udp_echo_server [--quiet] HOST PORT
 *
 * PORT 0 picks a free port; the server prints "listening on HOST:PORT". SIGINT or SIGTERM
 * stop it cleanly: it frees the runtime and prints what it echoed.
 */
#define _POSIX_C_SOURCE 200809L

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "polyio.h"

#define BATCH 128
#define MAX_DATAGRAM 65536
/* The receive's user_data; a send's is its payload's id (0 for an empty datagram). */
#define UD_RECV UINT64_MAX

static polyio_runtime *rt;
static volatile sig_atomic_t stopping;
static uint64_t n_datagrams, n_bytes, n_failed;

static void on_signal(int sig) {
    (void)sig;
    stopping = 1;
    polyio_runtime_wake(rt);
}

static int check(polyio_status s, const char *what) {
    if (s != POLYIO_STATUS_OK) {
        fprintf(stderr, "udp_echo_server: %s: %s\n", what, polyio_strerror(s));
        return -1;
    }
    return 0;
}

/* Handles one completion; returns -1 on a fatal error. */
static int handle(polyio_handle sock, const polyio_completion *c) {
    if (c->op == POLYIO_OP_SEND) {
        if (c->result < 0 && c->result != POLYIO_STATUS_CANCELED)
            n_failed++;
        if (c->user_data != 0)
            polyio_buffer_release(c->user_data);
        return 0;
    }
    if (c->op != POLYIO_OP_RECV)
        return 0;
    if (!(c->flags & POLYIO_COMPLETION_MORE)) {
        /* The receive ended: CANCELED at shutdown, or an error. */
        if (c->result == POLYIO_STATUS_CANCELED || stopping)
            return 0;
        fprintf(stderr, "udp_echo_server: receive ended: %s\n", polyio_strerror((int32_t)c->result));
        return -1;
    }
    if (c->result < 0) { /* an earlier send's failure: the receive stays armed */
        n_failed++;
        return 0;
    }
    n_datagrams++;
    n_bytes += (uint64_t)c->result;
    /* The payload stays valid until released: send straight from it. */
    bool sent = false;
    polyio_status s = polyio_udp_try_send(rt, sock, c->payload, c->payload_len, &c->addr, &sent);
    if (s == POLYIO_STATUS_OK && !sent) {
        /* Not taken now: the send's completion releases the payload. */
        s = polyio_udp_send(rt, sock, c->payload, c->payload_len, &c->addr, c->payload_id);
        if (s == POLYIO_STATUS_OK)
            return 0;
    }
    if (s != POLYIO_STATUS_OK)
        n_failed++;
    if (c->payload_id != 0)
        polyio_buffer_release(c->payload_id);
    return 0;
}

static int usage(void) {
    fprintf(stderr, "usage: udp_echo_server [--quiet] HOST PORT\n");
    return 2;
}

int main(int argc, char **argv) {
    int quiet = 0, argi = 1;
    if (argi < argc && strcmp(argv[argi], "--quiet") == 0) {
        quiet = 1;
        argi++;
    }
    if (argc - argi != 2)
        return usage();
    const char *host = argv[argi];
    char *end = NULL;
    long port = strtol(argv[argi + 1], &end, 10);
    if (*end != '\0' || port < 0 || port > 65535)
        return usage();

    if (check(polyio_runtime_new(NULL, &rt), "runtime") != 0)
        return 1;
    polyio_handle sock;
    polyio_addr addr;
    if (check(polyio_udp_bind(rt, host, (uint16_t)port, 0, &sock), "bind") != 0 ||
        check(polyio_udp_local_addr(rt, sock, &addr), "address") != 0 ||
        check(polyio_udp_recv_multishot(rt, sock, MAX_DATAGRAM, UD_RECV), "receive") != 0) {
        polyio_runtime_free(rt);
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    printf("listening on %s:%u (udp)\n", addr.ip, addr.port);
    fflush(stdout);

    polyio_completion done[BATCH];
    int rc = 0;
    while (!stopping && rc == 0) {
        size_t n = polyio_reap(rt, done, BATCH, -1);
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = handle(sock, &done[i]) == 0 ? 0 : 1;
    }
    /* Cancel what is in flight, release the payloads of sends still pending, then free. */
    polyio_runtime_shutdown(rt);
    size_t n;
    while ((n = polyio_turn(rt, done, BATCH)) > 0)
        for (size_t i = 0; i < n; i++)
            handle(sock, &done[i]);
    polyio_runtime_free(rt);
    if (!quiet)
        printf("echoed %" PRIu64 " datagrams, %" PRIu64 " bytes, %" PRIu64 " failed\n", n_datagrams, n_bytes,
               n_failed);
    return rc;
}
