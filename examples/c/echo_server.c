/*
 * echo_server.c: a TCP (or Unix socket) echo server on polyio.
 *
 * Each connection has one multi-shot read (polyio_read_multishot, as libuv's
 * uv_read_start): every chunk arrives in a payload polyio lends, is sent back straight from
 * it, and is released once sent, so an idle connection holds no buffer. Like libuv's echo
 * it reads on while echoes wait to go out: a server facing clients that send without
 * reading would stop its read (polyio_cancel) when polyio_try_write leaves bytes over and
 * read again once their write completes.
 *
 * By default it blocks in polyio_reap(). With --poll it embeds polyio in its own poll()
 * loop instead: it watches polyio_runtime_backend_fd(), sleeps at most
 * polyio_runtime_next_timeout_ms(), and runs polyio_turn(), which is how any foreign event
 * loop (libuv, glib, your own epoll) drives polyio.
 *
 * With --threads N it runs N threads, each with its own runtime and its own listener on
 * the same port (SO_REUSEPORT: the kernel spreads connections across them): how polyio uses
 * many cores, as nginx's workers do. A runtime is used by one thread only; nothing is shared.
 *
 *   echo_server [--poll] [--backend=auto|epoll|thread] [--threads N] [--quiet] HOST PORT
 *   echo_server [options] --unix PATH
 *
 * PORT 0 picks a free port; the server prints "listening on HOST:PORT" (with --unix:
 * "listening on unix:PATH") once it accepts. The socket file goes when the server stops.
 * SIGINT or SIGTERM stop it cleanly: it frees the runtimes and prints what it served.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "polyio.h"

/* The most one read takes (a chunk that fills only a little of it comes in a small
 * buffer: polyio keeps the large one). */
#define READ_CAP (64 * 1024)
#define BATCH 128
#define MAX_THREADS 64

/* A connection needs no state of its own here: its completions carry its handle. Its
 * multi-shot read and its shutdown are submitted with user_data 0; a write's user_data is the
 * id of the payload it sends. Each chunk read comes in a payload polyio lends until it is
 * released, so an idle connection holds no buffer, only polyio's own share. */

/* One thread's share: its own runtime and listener, and what it served. */
typedef struct worker {
    polyio_runtime *rt;
    polyio_handle listener;
    int use_poll;
    int rc;
    int started; /* has a thread of its own to join */
    uint64_t n_conns, n_bytes, n_failed;
    pthread_t thread;
} worker;

static worker workers[MAX_THREADS];
static int n_workers = 1;
static volatile sig_atomic_t stopping;

static void on_signal(int sig) {
    (void)sig;
    stopping = 1;
    /* The one call that is safe from any thread; here it wakes each loop out of its wait. */
    for (int i = 0; i < n_workers; i++)
        if (workers[i].rt != NULL)
            polyio_runtime_wake(workers[i].rt);
}

static int check(polyio_status s, const char *what) {
    if (s != POLYIO_STATUS_OK) {
        fprintf(stderr, "echo_server: %s: %s\n", what, polyio_strerror(s));
        return -1;
    }
    return 0;
}

/* Sends a chunk back from its lent payload: what the kernel takes now, then the rest as a
 * write whose completion releases the payload. Writes go out in order (polyio_try_write
 * takes nothing while writes are queued). */
static void echo(worker *w, const polyio_completion *cp) {
    size_t sent = 0;
    polyio_status s = polyio_try_write(w->rt, cp->handle, cp->payload, cp->payload_len, &sent);
    if (s == POLYIO_STATUS_OK && sent < cp->payload_len) {
        s = polyio_write(w->rt, cp->handle, cp->payload + sent, cp->payload_len - sent, cp->payload_id);
        if (s == POLYIO_STATUS_OK)
            return;
    }
    polyio_buffer_release(cp->payload_id);
    if (s != POLYIO_STATUS_OK) { /* the read then ends CANCELED */
        w->n_failed++;
        polyio_close(w->rt, cp->handle);
    }
}

/* Handles one completion; returns -1 on a fatal error. */
static int handle(worker *w, const polyio_completion *cp) {
    switch (cp->op) {
    case POLYIO_OP_ACCEPT:
        if (cp->result == POLYIO_STATUS_CANCELED) /* the runtime is shutting down */
            return 0;
        if (!stopping && check(polyio_accept(w->rt, w->listener, 0), "accept") != 0)
            return -1;
        if (cp->result < 0) {
            fprintf(stderr, "echo_server: accept failed: %s\n", polyio_strerror((int32_t)cp->result));
            return 0;
        }
        w->n_conns++;
        polyio_tcp_nodelay(w->rt, cp->handle, true);
        if (check(polyio_read_multishot(w->rt, cp->handle, READ_CAP, 0), "read") != 0)
            polyio_close(w->rt, cp->handle);
        return 0;
    case POLYIO_OP_READ:
        if (cp->flags & POLYIO_COMPLETION_MORE) { /* a chunk; the read stays armed */
            w->n_bytes += (uint64_t)cp->result;
            if (cp->payload_id == 0)
                return 0;
            if (stopping)
                polyio_buffer_release(cp->payload_id);
            else
                echo(w, cp);
            return 0;
        }
        /* The read ended: 0 at end of stream, an error, or CANCELED (polyio_close after a
         * failed write, or polyio_runtime_shutdown: the handle is gone either way). */
        if (cp->result == 0 && !stopping) {
            /* The client is done sending: shut down once the queued echoes are out. */
            if (check(polyio_shutdown(w->rt, cp->handle, 0), "shutdown") != 0)
                polyio_close(w->rt, cp->handle);
        } else if (cp->result != POLYIO_STATUS_CANCELED) {
            if (cp->result < 0)
                w->n_failed++;
            polyio_close(w->rt, cp->handle);
        }
        return 0;
    case POLYIO_OP_WRITE: /* the rest of a chunk: its payload goes back */
        polyio_buffer_release(cp->user_data);
        if (cp->result < 0 && cp->result != POLYIO_STATUS_CANCELED) {
            w->n_failed++;
            polyio_close(w->rt, cp->handle); /* the read ends CANCELED */
        }
        return 0;
    case POLYIO_OP_SHUTDOWN: /* the echoes are out (or CANCELED: closed already) */
        if (cp->result != POLYIO_STATUS_CANCELED)
            polyio_close(w->rt, cp->handle);
        return 0;
    default:
        return 0;
    }
}

/* A worker's loop, on its own thread (or the main thread when there is one worker). */
static void *serve(void *arg) {
    worker *w = arg;
    polyio_completion done[BATCH];
    while (!stopping && w->rc == 0) {
        size_t n;
        if (w->use_poll) {
            struct pollfd pfd = {.fd = polyio_runtime_backend_fd(w->rt), .events = POLLIN};
            if (poll(&pfd, 1, polyio_runtime_next_timeout_ms(w->rt)) < 0 && errno != EINTR) {
                perror("poll");
                w->rc = 1;
                break;
            }
            n = polyio_turn(w->rt, done, BATCH);
        } else {
            n = polyio_reap(w->rt, done, BATCH, -1);
        }
        for (size_t i = 0; i < n && w->rc == 0; i++)
            w->rc = handle(w, &done[i]) == 0 ? 0 : 1;
    }
    /* Cancel what is in flight and release the payloads of writes still pending as they
     * complete with CANCELED; then free the runtime. */
    polyio_runtime_shutdown(w->rt);
    size_t n;
    while ((n = polyio_turn(w->rt, done, BATCH)) > 0)
        for (size_t i = 0; i < n; i++)
            handle(w, &done[i]);
    return NULL;
}

static int usage(void) {
    fprintf(stderr, "usage: echo_server [--poll] [--backend=auto|epoll|thread] [--threads N] [--quiet] HOST PORT | "
                    "--unix PATH\n");
    return 2;
}

int main(int argc, char **argv) {
    int use_poll = 0, quiet = 0;
    polyio_options opts;
    polyio_options_init(&opts);
    const char *unix_path = NULL;
    int argi = 1;
    for (; argi < argc && strncmp(argv[argi], "--", 2) == 0; argi++) {
        if (argi + 1 < argc && strcmp(argv[argi], "--unix") == 0)
            unix_path = argv[++argi];
        else if (strcmp(argv[argi], "--poll") == 0)
            use_poll = 1;
        else if (strcmp(argv[argi], "--quiet") == 0)
            quiet = 1;
        else if (argi + 1 < argc && strcmp(argv[argi], "--threads") == 0) {
            n_workers = atoi(argv[++argi]);
            if (n_workers < 1 || n_workers > MAX_THREADS)
                return usage();
        }
        else if (strcmp(argv[argi], "--backend=auto") == 0)
            opts.backend = POLYIO_BACKEND_AUTO;
        else if (strcmp(argv[argi], "--backend=epoll") == 0)
            opts.backend = POLYIO_BACKEND_EPOLL;
        else if (strcmp(argv[argi], "--backend=thread") == 0)
            opts.backend = POLYIO_BACKEND_THREAD;
        else
            return usage();
    }
    const char *host = NULL;
    long port = 0;
    if (unix_path == NULL) {
        if (argc - argi != 2)
            return usage();
        host = argv[argi];
        char *end = NULL;
        port = strtol(argv[argi + 1], &end, 10);
        if (*end != '\0' || port < 0 || port > 65535)
            return usage();
    } else if (argc != argi) {
        return usage();
    }

    if (unix_path != NULL && n_workers > 1)
        return usage(); /* SO_REUSEPORT is for TCP */
    /* Worker 0 binds first (port 0 picks one); the others bind its port with REUSEPORT. */
    uint32_t flags = n_workers > 1 ? POLYIO_LISTEN_REUSEPORT : 0;
    char where[128];
    for (int i = 0; i < n_workers; i++) {
        worker *w = &workers[i];
        w->use_poll = use_poll;
        if (check(polyio_runtime_new(&opts, &w->rt), "runtime") != 0)
            return 1;
        polyio_status ls = unix_path ? polyio_unix_listen(w->rt, unix_path, strlen(unix_path), 0, 0, &w->listener)
                                     : polyio_tcp_listen(w->rt, host, (uint16_t)port, 0, flags, &w->listener);
        if (check(ls, "listen") != 0 || check(polyio_accept(w->rt, w->listener, 0), "accept") != 0)
            return 1;
        /* Where it listens, as "HOST:PORT" or "unix:PATH". */
        polyio_addr addr;
        if (unix_path != NULL)
            snprintf(where, sizeof where, "unix:%s", unix_path);
        else if (polyio_tcp_local_addr(w->rt, w->listener, &addr) == POLYIO_STATUS_OK) {
            snprintf(where, sizeof where, "%s:%u", addr.ip, addr.port);
            port = addr.port;
        } else
            snprintf(where, sizeof where, "?");
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    printf("listening on %s (%s backend, %s, %d thread%s)\n", where,
           polyio_runtime_backend(workers[0].rt) == POLYIO_BACKEND_EPOLL ? "epoll" : "thread",
           use_poll ? "driven by a poll() loop" : "blocking in polyio_reap", n_workers, n_workers == 1 ? "" : "s");
    fflush(stdout);

    for (int i = 1; i < n_workers; i++) {
        if (pthread_create(&workers[i].thread, NULL, serve, &workers[i]) == 0) {
            workers[i].started = 1;
        } else {
            fprintf(stderr, "echo_server: pthread_create failed\n");
            workers[i].rc = 1;
            on_signal(0); /* stop the others */
        }
    }
    serve(&workers[0]);
    int rc = 0;
    uint64_t n_conns = 0, n_bytes = 0, n_failed = 0;
    for (int i = 0; i < n_workers; i++) {
        worker *w = &workers[i];
        if (w->started)
            pthread_join(w->thread, NULL);
        rc |= w->rc;
        n_conns += w->n_conns;
        n_bytes += w->n_bytes;
        n_failed += w->n_failed;
    }
    /* No more wakes from the signal handler: the runtimes go now. */
    sa.sa_handler = SIG_IGN;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    for (int i = 0; i < n_workers; i++) {
        polyio_runtime_free(workers[i].rt);
        workers[i].rt = NULL;
    }
    if (!quiet) {
        printf("served %" PRIu64 " connections, echoed %" PRIu64 " bytes, %" PRIu64 " failed", n_conns, n_bytes,
               n_failed);
        if (n_workers > 1) {
            printf(" (connections per thread:");
            for (int i = 0; i < n_workers; i++)
                printf(" %" PRIu64, workers[i].n_conns);
            printf(")");
        }
        printf("\n");
    }
    return rc;
}
