/*
 * test_polyio.c: the C test suite of polyio's public API, include/polyio.h.
 *
 * One C11 program with a tiny harness: each test is a function; a failed CHECK prints
 * file:line, the test and the expression, marks the test failed and carries on (REQUIRE
 * also skips to the test's clean-up). The last line of output is "N passed, N failed";
 * the exit status is non-zero if any test failed. `test_polyio NAME` runs only the tests
 * whose name contains NAME. POLYIO_TEST_QUICK=1 (tests/c/run.sh sets it under valgrind)
 * caps the largest echo at 1 MiB and the many-ops tests at 200 operations.
 *
 * Every test that needs a server starts it itself on 127.0.0.1 port 0 and reads the port
 * back with polyio_tcp_local_addr; a Unix socket test binds in a mkdtemp directory or an
 * abstract name of its own. Every wait is bounded (WAIT_MS without progress fails
 * the test) and a watchdog alarm ends the run if a library call itself hangs, so a bug
 * fails instead of hanging. Timing is asserted only as "did not complete before X", where
 * that is the point of the test.
 *
 * Build and run with tests/c/run.sh plain|asan|valgrind.
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* syscall() */

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "polyio.h"

/* ---- harness ------------------------------------------------------------------------ */

/* Checks may fail on helper threads (runtimes_on_threads): the failure flag is atomic and the
 * completion stash is per thread. */
static const char *g_test = "(none)"; /* the running test */
static atomic_bool g_failed;          /* the running test failed a check */
static bool g_quick;                  /* POLYIO_TEST_QUICK=1 */

static void fail_at(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "%s:%d: [%s] ", file, line, g_test);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    atomic_store(&g_failed, true);
}

static bool check(const char *file, int line, const char *expr, bool ok) {
    if (!ok)
        fail_at(file, line, "CHECK failed: %s", expr);
    return ok;
}

static bool check_eq(const char *file, int line, const char *a, const char *b, int64_t va, int64_t vb) {
    if (va == vb)
        return true;
    fail_at(file, line, "CHECK failed: %s == %s (got %" PRId64 " = %#" PRIx64 ", want %" PRId64 " = %#" PRIx64 ")",
            a, b, va, (uint64_t)va, vb, (uint64_t)vb);
    return false;
}

static bool check_st(const char *file, int line, const char *call, int64_t got, int64_t want) {
    if (got == want)
        return true;
    fail_at(file, line, "%s returned %s (%" PRId64 "), want %s (%" PRId64 ")", call,
            polyio_status_name((int32_t)got), got, polyio_status_name((int32_t)want), want);
    return false;
}

/* CHECK* record a failure and continue; REQUIRE* also jump to the test's `done:` label. */
#define CHECK(expr) check(__FILE__, __LINE__, #expr, (expr))
#define CHECK_EQ(a, b) check_eq(__FILE__, __LINE__, #a, #b, (int64_t)(a), (int64_t)(b))
/* A status (a polyio_status return, or a completion's negative result) equals `want`. */
#define CHECK_ST(call, want) check_st(__FILE__, __LINE__, #call, (int64_t)(call), (int64_t)(want))
#define REQUIRE(expr)                                                                                                  \
    do {                                                                                                               \
        if (!CHECK(expr))                                                                                              \
            goto done;                                                                                                 \
    } while (0)
#define REQUIRE_EQ(a, b)                                                                                               \
    do {                                                                                                               \
        if (!CHECK_EQ(a, b))                                                                                           \
            goto done;                                                                                                 \
    } while (0)
#define REQUIRE_ST(call, want)                                                                                         \
    do {                                                                                                               \
        if (!CHECK_ST(call, want))                                                                                     \
            goto done;                                                                                                 \
    } while (0)

#define OK POLYIO_STATUS_OK
#define KiB ((size_t)1024)
#define MiB (1024 * KiB)

/* How long any single wait may go without progress before the test fails. */
#define WAIT_MS 10000

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t now_ms(void) { return now_ns() / 1000000; }

static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }

/* splitmix64: a seeded PRNG for test data. */
static uint64_t rng_next(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void fill_random(uint8_t *p, size_t n, uint64_t seed) {
    for (size_t i = 0; i < n; i += 8) {
        uint64_t v = rng_next(&seed);
        memcpy(p + i, &v, min_sz(8, n - i));
    }
}

/* 64-bit FNV-1a. */
static uint64_t fnv1a(const uint8_t *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* Open file descriptors of this process (to see that a freed runtime closed its own). */
static int count_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own fd */
}

/* Fresh user_data values; tests' fixed values stay below 1 << 20, UD() kinds use the top byte. */
static atomic_uint_fast64_t g_next_ud = 1 << 20;
static uint64_t ud_next(void) { return atomic_fetch_add(&g_next_ud, 1); }

#define UD_KIND(kind) ((uint64_t)(kind) << 56)
#define UD_LOW(ud) ((ud) & ((1ULL << 56) - 1))

/* ---- reaping ------------------------------------------------------------------------ */

/* Completions reaped while waiting for another user_data, kept for later waits. */
#define STASH_CAP 4096
static _Thread_local struct {
    const polyio_runtime *rt;
    polyio_completion c;
} g_stash[STASH_CAP];
static _Thread_local size_t g_nstash;

static void stash_put(const polyio_runtime *rt, const polyio_completion *c) {
    if (g_nstash == STASH_CAP) {
        fail_at(__FILE__, __LINE__, "completion stash overflow (user_data %#" PRIx64 ")", c->user_data);
        return;
    }
    g_stash[g_nstash].rt = rt;
    g_stash[g_nstash].c = *c;
    g_nstash++;
}

static bool stash_take(const polyio_runtime *rt, uint64_t ud, polyio_completion *out) {
    for (size_t i = 0; i < g_nstash; i++) {
        if (g_stash[i].rt == rt && g_stash[i].c.user_data == ud) {
            *out = g_stash[i].c;
            memmove(&g_stash[i], &g_stash[i + 1], (g_nstash - i - 1) * sizeof g_stash[0]);
            g_nstash--;
            return true;
        }
    }
    return false;
}

static size_t stash_count(const polyio_runtime *rt, uint64_t ud) {
    size_t n = 0;
    for (size_t i = 0; i < g_nstash; i++)
        n += g_stash[i].rt == rt && g_stash[i].c.user_data == ud;
    return n;
}

static void stash_forget(const polyio_runtime *rt) {
    size_t j = 0;
    for (size_t i = 0; i < g_nstash; i++)
        if (g_stash[i].rt != rt)
            g_stash[j++] = g_stash[i];
    g_nstash = j;
}

static uint64_t in_flight(const polyio_runtime *rt) {
    polyio_stats st;
    if (polyio_runtime_stats(rt, &st) != OK)
        return UINT64_MAX;
    return st.in_flight;
}

/* How a test gets completions: blocking polyio_reap, or a foreign poll() loop. Each returns
 * what it got (at most max), or 0 once deadline_ms (CLOCK_MONOTONIC) has passed. */
typedef size_t (*pump_fn)(polyio_runtime *rt, polyio_completion *out, size_t max, int64_t deadline_ms);

static size_t pump_reap(polyio_runtime *rt, polyio_completion *out, size_t max, int64_t deadline_ms) {
    int64_t left = deadline_ms - now_ms();
    if (left <= 0)
        return 0;
    return polyio_reap(rt, out, max, (int32_t)left);
}

/* What a program with its own event loop does: sleep in poll() on the backend fd for at
 * most polyio_runtime_next_timeout_ms(), then run a non-blocking turn. The poll timeout is
 * never shortened beyond the test's deadline, so a missed wakeup fails the test. */
static size_t pump_poll(polyio_runtime *rt, polyio_completion *out, size_t max, int64_t deadline_ms) {
    int fd = polyio_runtime_backend_fd(rt);
    for (;;) {
        size_t n = polyio_turn(rt, out, max);
        if (n > 0)
            return n;
        int64_t left = deadline_ms - now_ms();
        if (left <= 0)
            return 0;
        int32_t t = polyio_runtime_next_timeout_ms(rt);
        int wait = (t < 0 || t > left) ? (int)left : (int)t;
        struct pollfd pfd = {.fd = fd, .events = POLLIN, .revents = 0};
        if (poll(&pfd, 1, wait) < 0 && errno != EINTR) {
            fail_at(__FILE__, __LINE__, "poll(backend fd %d): %s", fd, strerror(errno));
            return 0;
        }
    }
}

/* Reaps (through `pump`) until the completion of `ud` arrives; others are stashed. Fails
 * the test after WAIT_MS, or at once if nothing is in flight any more. */
static bool wait_for_p(const char *file, int line, polyio_runtime *rt, uint64_t ud, polyio_completion *out,
                       pump_fn pump) {
    if (stash_take(rt, ud, out))
        return true;
    int64_t deadline = now_ms() + WAIT_MS;
    while (now_ms() < deadline) {
        polyio_completion batch[64];
        size_t n = pump(rt, batch, 64, deadline);
        bool found = false;
        for (size_t i = 0; i < n; i++) {
            if (!found && batch[i].user_data == ud) {
                *out = batch[i];
                found = true;
            } else {
                stash_put(rt, &batch[i]);
            }
        }
        if (found)
            return true;
        if (n == 0 && in_flight(rt) == 0) {
            fail_at(file, line, "waiting for user_data %#" PRIx64 ": nothing is in flight, it can never complete", ud);
            return false;
        }
    }
    fail_at(file, line, "no completion for user_data %#" PRIx64 " within %d ms", ud, WAIT_MS);
    return false;
}

#define WAIT_FOR(rt, ud, out) wait_for_p(__FILE__, __LINE__, (rt), (ud), (out), pump_reap)
#define WAIT_FOR_P(rt, ud, out, pump) wait_for_p(__FILE__, __LINE__, (rt), (ud), (out), (pump))

/* Reaps for `ms` milliseconds (less if nothing is in flight), stashing what arrives;
 * returns how many completions arrived. Used to show that nothing (more) completes. */
static size_t reap_for(polyio_runtime *rt, int ms) {
    size_t total = 0;
    int64_t deadline = now_ms() + ms;
    for (;;) {
        polyio_completion batch[64];
        int64_t left = deadline - now_ms();
        size_t n = polyio_reap(rt, batch, 64, left > 0 ? (int32_t)left : 0);
        for (size_t i = 0; i < n; i++)
            stash_put(rt, &batch[i]);
        total += n;
        if (left <= 0 || (n == 0 && in_flight(rt) == 0))
            return total;
    }
}

static polyio_runtime *new_runtime(uint32_t backend) {
    polyio_options opts;
    polyio_options_init(&opts);
    opts.backend = backend;
    polyio_runtime *rt = NULL;
    if (!CHECK_ST(polyio_runtime_new(&opts, &rt), OK))
        return NULL;
    if (!CHECK(rt != NULL))
        return NULL;
    uint32_t got = polyio_runtime_backend(rt);
    CHECK(got == POLYIO_BACKEND_EPOLL || got == POLYIO_BACKEND_THREAD);
    if (backend != POLYIO_BACKEND_AUTO)
        CHECK_EQ(got, backend);
    CHECK(polyio_runtime_backend_fd(rt) >= 0);
    return rt;
}

static void free_runtime(polyio_runtime *rt) {
    stash_forget(rt);
    polyio_runtime_free(rt);
}

/* ---- connections -------------------------------------------------------------------- */

typedef struct {
    polyio_handle listener, server, client;
    uint16_t port;
} tcp_pair;

static bool listen_local(polyio_runtime *rt, int32_t backlog, polyio_handle *listener, uint16_t *port) {
    polyio_addr a;
    if (!CHECK_ST(polyio_tcp_listen(rt, "127.0.0.1", 0, backlog, 0, listener), OK))
        return false;
    CHECK(*listener != POLYIO_HANDLE_NONE);
    if (!CHECK_ST(polyio_tcp_local_addr(rt, *listener, &a), OK))
        return false;
    CHECK_EQ(a.family, 4);
    CHECK(strcmp(a.ip, "127.0.0.1") == 0);
    *port = a.port;
    return CHECK(a.port != 0);
}

/* Listens, accepts and connects in one runtime; waits through `pump`. */
static bool make_pair_p(polyio_runtime *rt, tcp_pair *p, pump_fn pump) {
    memset(p, 0, sizeof *p);
    if (!listen_local(rt, 0, &p->listener, &p->port))
        return false;
    uint64_t ua = ud_next(), uc = ud_next();
    polyio_completion ca, cc;
    if (!CHECK_ST(polyio_accept(rt, p->listener, ua), OK))
        return false;
    if (!CHECK_ST(polyio_tcp_connect(rt, "127.0.0.1", p->port, uc), OK))
        return false;
    if (!WAIT_FOR_P(rt, uc, &cc, pump) || !WAIT_FOR_P(rt, ua, &ca, pump))
        return false;
    CHECK_EQ(cc.op, POLYIO_OP_CONNECT);
    CHECK_EQ(ca.op, POLYIO_OP_ACCEPT);
    if (!CHECK_ST(cc.result, OK) || !CHECK_ST(ca.result, OK))
        return false;
    if (!CHECK(cc.handle != POLYIO_HANDLE_NONE) || !CHECK(ca.handle != POLYIO_HANDLE_NONE))
        return false;
    p->client = cc.handle;
    p->server = ca.handle;
    CHECK(p->client != p->server && p->client != p->listener && p->server != p->listener);
    polyio_addr cl, cp, sl, sp;
    if (CHECK_ST(polyio_tcp_peer_addr(rt, p->client, &cp), OK))
        CHECK_EQ(cp.port, p->port);
    if (CHECK_ST(polyio_tcp_local_addr(rt, p->server, &sl), OK))
        CHECK_EQ(sl.port, p->port);
    if (CHECK_ST(polyio_tcp_local_addr(rt, p->client, &cl), OK) &&
        CHECK_ST(polyio_tcp_peer_addr(rt, p->server, &sp), OK))
        CHECK_EQ(cl.port, sp.port);
    return true;
}

static bool make_pair(polyio_runtime *rt, tcp_pair *p) { return make_pair_p(rt, p, pump_reap); }

static void close_handle(polyio_runtime *rt, polyio_handle *h) {
    if (*h != POLYIO_HANDLE_NONE)
        CHECK_ST(polyio_close(rt, *h), OK);
    *h = POLYIO_HANDLE_NONE;
}

static void close_pair(polyio_runtime *rt, tcp_pair *p) {
    if (!rt)
        return;
    close_handle(rt, &p->client);
    close_handle(rt, &p->server);
    close_handle(rt, &p->listener);
}

/* Writes n bytes in one write and waits for it. */
static bool write_all(polyio_runtime *rt, polyio_handle h, const uint8_t *data, size_t n) {
    uint64_t ud = ud_next();
    polyio_completion c;
    if (!CHECK_ST(polyio_write(rt, h, data, n, ud), OK) || !WAIT_FOR(rt, ud, &c))
        return false;
    CHECK_EQ(c.op, POLYIO_OP_WRITE);
    CHECK_EQ(c.handle, h);
    return CHECK_EQ(c.result, (int64_t)n);
}

/* Reads until exactly n bytes have arrived (never asks for more than is still due). */
static bool read_exact(polyio_runtime *rt, polyio_handle h, uint8_t *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        uint64_t ud = ud_next();
        polyio_completion c;
        if (!CHECK_ST(polyio_read(rt, h, buf + got, n - got, ud), OK) || !WAIT_FOR(rt, ud, &c))
            return false;
        CHECK_EQ(c.op, POLYIO_OP_READ);
        CHECK_EQ(c.handle, h);
        if (c.result <= 0) {
            fail_at(__FILE__, __LINE__, "read after %zu of %zu bytes completed with %" PRId64 " (%s)", got, n, c.result,
                    c.result < 0 ? polyio_status_name((int32_t)c.result) : "end of stream");
            return false;
        }
        if (!CHECK((size_t)c.result <= n - got))
            return false;
        got += (size_t)c.result;
    }
    return true;
}

/* One read completes with 0: end of stream. */
static bool expect_eof(polyio_runtime *rt, polyio_handle h) {
    uint8_t b[16];
    uint64_t ud = ud_next();
    polyio_completion c;
    if (!CHECK_ST(polyio_read(rt, h, b, sizeof b, ud), OK) || !WAIT_FOR(rt, ud, &c))
        return false;
    CHECK_EQ(c.op, POLYIO_OP_READ);
    return CHECK_EQ(c.result, 0);
}

/* ---- echo --------------------------------------------------------------------------- */

enum { K_CW = 1, K_CR, K_SW, K_SR, K_MANY, K_TIMER };
#define ECHO_UD(kind, len, off) (UD_KIND(kind) | ((uint64_t)(len) << 32) | (uint64_t)(off))
#define ECHO_LEN(ud) ((size_t)(UD_LOW(ud) >> 32))
#define ECHO_OFF(ud) ((size_t)((ud) & 0xffffffffu))

/* Sends `size` seeded-random bytes client -> server in queued 256 KiB writes; the server
 * echoes every chunk it reads (64 KiB reads, one pending at a time) back from its own
 * buffer; the client reads until all bytes are back. Compares FNV-1a checksums and bytes.
 * On failure closes the pair (so no pending op outlives the buffers) and zeroes it. */
static bool echo_once(polyio_runtime *rt, tcp_pair *p, size_t size, uint64_t seed, pump_fn pump) {
    const size_t WCHUNK = 256 * KiB, RCHUNK = 64 * KiB;
    bool ok = false;
    uint8_t *tx = malloc(size), *mid = malloc(size), *rx = malloc(size);
    size_t n_cw = 0, cw_done = 0, n_sw = 0, sw_done = 0, sw_bytes = 0, srv_got = 0, cli_got = 0;
    uint64_t flagged_inline = 0, reads_done = 0;
    polyio_stats st0, st1;
    REQUIRE(tx && mid && rx);
    REQUIRE_ST(polyio_runtime_stats(rt, &st0), OK);
    fill_random(tx, size, seed);
    memset(rx, 0, size);
    for (size_t off = 0; off < size; off += WCHUNK, n_cw++)
        REQUIRE_ST(polyio_write(rt, p->client, tx + off, min_sz(WCHUNK, size - off),
                                ECHO_UD(K_CW, min_sz(WCHUNK, size - off), off)),
                   OK);
    REQUIRE_ST(polyio_read(rt, p->server, mid, min_sz(RCHUNK, size), ECHO_UD(K_SR, 0, 0)), OK);
    REQUIRE_ST(polyio_read(rt, p->client, rx, min_sz(RCHUNK, size), ECHO_UD(K_CR, 0, 0)), OK);

    int64_t deadline = now_ms() + WAIT_MS;
    while (cli_got < size || cw_done < n_cw || sw_done < n_sw) {
        polyio_completion batch[64];
        size_t n = pump(rt, batch, 64, deadline);
        if (n == 0 && now_ms() >= deadline) {
            fail_at(__FILE__, __LINE__,
                    "echo of %zu bytes stalled for %d ms: server got %zu, client got %zu, client writes %zu/%zu, "
                    "server writes %zu/%zu",
                    size, WAIT_MS, srv_got, cli_got, cw_done, n_cw, sw_done, n_sw);
            goto done;
        }
        if (n > 0)
            deadline = now_ms() + WAIT_MS;
        for (size_t i = 0; i < n; i++) {
            const polyio_completion *c = &batch[i];
            size_t len = ECHO_LEN(c->user_data), off = ECHO_OFF(c->user_data);
            CHECK_EQ(c->flags & ~(uint32_t)POLYIO_COMPLETION_INLINE, 0);
            flagged_inline += (c->flags & POLYIO_COMPLETION_INLINE) != 0;
            switch (c->user_data >> 56) {
            case K_CW:
                CHECK_EQ(c->op, POLYIO_OP_WRITE);
                CHECK_EQ(c->handle, p->client);
                REQUIRE_EQ(c->result, (int64_t)len);
                REQUIRE_EQ(off, cw_done * WCHUNK); /* writes on a connection complete in order */
                cw_done++;
                break;
            case K_SW:
                CHECK_EQ(c->op, POLYIO_OP_WRITE);
                CHECK_EQ(c->handle, p->server);
                REQUIRE_EQ(c->result, (int64_t)len);
                REQUIRE_EQ(off, sw_bytes);
                sw_bytes += len;
                sw_done++;
                break;
            case K_SR:
                CHECK_EQ(c->op, POLYIO_OP_READ);
                CHECK_EQ(c->handle, p->server);
                if (c->result <= 0) {
                    fail_at(__FILE__, __LINE__, "server read at %zu of %zu completed with %" PRId64 " (%s)", srv_got,
                            size, c->result, polyio_status_name((int32_t)c->result));
                    goto done;
                }
                REQUIRE_EQ(off, srv_got);
                REQUIRE((size_t)c->result <= min_sz(RCHUNK, size - srv_got));
                reads_done++;
                REQUIRE_ST(polyio_write(rt, p->server, mid + srv_got, (size_t)c->result,
                                        ECHO_UD(K_SW, c->result, srv_got)),
                           OK);
                n_sw++;
                srv_got += (size_t)c->result;
                if (srv_got < size)
                    REQUIRE_ST(polyio_read(rt, p->server, mid + srv_got, min_sz(RCHUNK, size - srv_got),
                                           ECHO_UD(K_SR, 0, srv_got)),
                               OK);
                break;
            case K_CR:
                CHECK_EQ(c->op, POLYIO_OP_READ);
                CHECK_EQ(c->handle, p->client);
                if (c->result <= 0) {
                    fail_at(__FILE__, __LINE__, "client read at %zu of %zu completed with %" PRId64 " (%s)", cli_got,
                            size, c->result, polyio_status_name((int32_t)c->result));
                    goto done;
                }
                REQUIRE_EQ(off, cli_got);
                REQUIRE((size_t)c->result <= min_sz(RCHUNK, size - cli_got));
                reads_done++;
                cli_got += (size_t)c->result;
                if (cli_got < size)
                    REQUIRE_ST(polyio_read(rt, p->client, rx + cli_got, min_sz(RCHUNK, size - cli_got),
                                           ECHO_UD(K_CR, 0, cli_got)),
                               OK);
                break;
            default:
                fail_at(__FILE__, __LINE__, "unexpected completion user_data %#" PRIx64 " op %u result %" PRId64,
                        c->user_data, c->op, c->result);
                goto done;
            }
        }
    }
    /* Every completion flagged INLINE is counted in the stats, and no other. */
    REQUIRE_ST(polyio_runtime_stats(rt, &st1), OK);
    CHECK_EQ(st1.inline_completions - st0.inline_completions, flagged_inline);
    CHECK_EQ(st1.completions - st0.completions, cw_done + sw_done + reads_done);
    CHECK(st1.turns > st0.turns);
    CHECK_EQ(srv_got, size);
    CHECK_EQ(sw_bytes, size);
    CHECK_EQ(cli_got, size);
    uint64_t h_tx = fnv1a(tx, size), h_rx = fnv1a(rx, size), h_mid = fnv1a(mid, size);
    CHECK_EQ(h_mid, h_tx);
    CHECK_EQ(h_rx, h_tx);
    ok = CHECK(memcmp(tx, rx, size) == 0) && h_rx == h_tx;
    if (!ok)
        fprintf(stderr, "  (echo of %zu bytes, seed %" PRIu64 ")\n", size, seed);
done:
    if (!ok) {
        close_handle(rt, &p->client);
        close_handle(rt, &p->server);
    }
    free(tx);
    free(mid);
    free(rx);
    return ok;
}

/* ---- tests: version and strings ----------------------------------------------------- */

static void test_version(void) {
    uint32_t want =
        ((uint32_t)POLYIO_VERSION_MAJOR << 16) | ((uint32_t)POLYIO_VERSION_MINOR << 8) | POLYIO_VERSION_PATCH;
    CHECK_EQ(polyio_version(), want);
    char buf[64];
    snprintf(buf, sizeof buf, "%d.%d.%d", POLYIO_VERSION_MAJOR, POLYIO_VERSION_MINOR, POLYIO_VERSION_PATCH);
    const char *s = polyio_version_string();
    if (CHECK(s != NULL) && !CHECK(strcmp(s, buf) == 0))
        fprintf(stderr, "  polyio_version_string() = \"%s\", header macros say \"%s\"\n", s, buf);
}

static const int32_t ALL_STATUSES[] = {
    POLYIO_STATUS_OK,
    POLYIO_STATUS_NOT_FOUND,
    POLYIO_STATUS_IO_ERROR,
    POLYIO_STATUS_NO_SUCH_DEVICE,
    POLYIO_STATUS_BAD_HANDLE,
    POLYIO_STATUS_TRY_AGAIN,
    POLYIO_STATUS_NO_MEMORY,
    POLYIO_STATUS_PERMISSION_DENIED,
    POLYIO_STATUS_BUSY,
    POLYIO_STATUS_INVALID_ARGUMENT,
    POLYIO_STATUS_TOO_MANY_OPEN_FILES,
    POLYIO_STATUS_BROKEN_PIPE,
    POLYIO_STATUS_ADDRESS_IN_USE,
    POLYIO_STATUS_ADDRESS_NOT_AVAILABLE,
    POLYIO_STATUS_NETWORK_UNREACHABLE,
    POLYIO_STATUS_CONNECTION_ABORTED,
    POLYIO_STATUS_CONNECTION_RESET,
    POLYIO_STATUS_NOT_CONNECTED,
    POLYIO_STATUS_TIMED_OUT,
    POLYIO_STATUS_CONNECTION_REFUSED,
    POLYIO_STATUS_HOST_UNREACHABLE,
    POLYIO_STATUS_CANCELED,
    POLYIO_STATUS_SHUTDOWN,
    POLYIO_STATUS_QUEUE_FULL,
    POLYIO_STATUS_PANIC,
    POLYIO_STATUS_NAME_NOT_RESOLVED,
    POLYIO_STATUS_NAME_TRY_AGAIN,
    POLYIO_STATUS_OPERATION_NOT_PERMITTED,
    POLYIO_STATUS_ALREADY_EXISTS,
    POLYIO_STATUS_NOT_A_DIRECTORY,
    POLYIO_STATUS_IS_A_DIRECTORY,
    POLYIO_STATUS_FILE_TOO_LARGE,
    POLYIO_STATUS_NO_SPACE,
    POLYIO_STATUS_ILLEGAL_SEEK,
    POLYIO_STATUS_READ_ONLY_FILE_SYSTEM,
    POLYIO_STATUS_NAME_TOO_LONG,
    POLYIO_STATUS_DIRECTORY_NOT_EMPTY,
    POLYIO_STATUS_SYMLINK_LOOP,
};

static void test_status_strings(void) {
    for (size_t i = 0; i < sizeof ALL_STATUSES / sizeof ALL_STATUSES[0]; i++) {
        int32_t s = ALL_STATUSES[i];
        const char *msg = polyio_strerror(s), *name = polyio_status_name(s);
        if (!CHECK(msg != NULL) || !CHECK(name != NULL))
            continue;
        if (!CHECK(msg[0] != '\0' && strcmp(msg, "unknown status") != 0) ||
            !CHECK(name[0] != '\0' && strcmp(name, "UNKNOWN") != 0))
            fprintf(stderr, "  status %d: strerror \"%s\", name \"%s\"\n", s, msg, name);
    }
    CHECK(strcmp(polyio_status_name(POLYIO_STATUS_CONNECTION_REFUSED), "ECONNREFUSED") == 0);
    CHECK(strcmp(polyio_status_name(POLYIO_STATUS_CONNECTION_RESET), "ECONNRESET") == 0);
    CHECK(strcmp(polyio_status_name(POLYIO_STATUS_TIMED_OUT), "ETIMEDOUT") == 0);
    CHECK(strcmp(polyio_status_name(POLYIO_STATUS_SHUTDOWN), "POLYIO_SHUTDOWN") == 0);

    static const int32_t unknown[] = {1, 7, -8, -3, 12345, -3999, -4000, -4099, -99999, INT32_MIN, INT32_MAX};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        const char *msg = polyio_strerror(unknown[i]), *name = polyio_status_name(unknown[i]);
        if (CHECK(msg != NULL) && !CHECK(strcmp(msg, "unknown status") == 0))
            fprintf(stderr, "  polyio_strerror(%d) = \"%s\"\n", unknown[i], msg);
        if (CHECK(name != NULL) && !CHECK(strcmp(name, "UNKNOWN") == 0))
            fprintf(stderr, "  polyio_status_name(%d) = \"%s\"\n", unknown[i], name);
    }
}

/* ---- tests: runtime and backends ---------------------------------------------------- */

static void test_backend_selection(void) {
    polyio_runtime *a = NULL, *t = NULL, *e = NULL;
    /* NULL options: the defaults. On Linux (with /proc) AUTO finds tokio's epoll. */
    REQUIRE_ST(polyio_runtime_new(NULL, &a), OK);
    CHECK_EQ(polyio_runtime_backend(a), POLYIO_BACKEND_EPOLL);
    t = new_runtime(POLYIO_BACKEND_THREAD);
    e = new_runtime(POLYIO_BACKEND_EPOLL);
    REQUIRE(t && e);
    CHECK(polyio_runtime_backend_fd(a) != polyio_runtime_backend_fd(t));
    CHECK(polyio_runtime_backend_fd(a) != polyio_runtime_backend_fd(e));
    CHECK(polyio_runtime_backend_fd(t) != polyio_runtime_backend_fd(e));
    /* Nothing in flight: no timeout pending, a reap returns at once with nothing. */
    polyio_runtime *all[] = {a, t, e};
    for (size_t i = 0; i < 3; i++) {
        polyio_completion c[4];
        CHECK_EQ(polyio_runtime_next_timeout_ms(all[i]), -1);
        CHECK_EQ(polyio_turn(all[i], c, 4), 0);
        CHECK_EQ(polyio_reap(all[i], c, 4, -1), 0);
        CHECK_EQ(in_flight(all[i]), 0);
    }
done:
    polyio_runtime_free(a);
    polyio_runtime_free(t);
    polyio_runtime_free(e);
}

static void echo_sizes(uint32_t backend) {
    static const size_t sizes[] = {1, KiB, 64 * KiB, MiB, 16 * MiB};
    tcp_pair p = {0};
    polyio_runtime *rt = new_runtime(backend);
    REQUIRE(rt);
    REQUIRE(make_pair(rt, &p));
    CHECK_ST(polyio_tcp_nodelay(rt, p.client, true), OK);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        if (g_quick && sizes[i] > MiB)
            continue;
        REQUIRE(echo_once(rt, &p, sizes[i], 0x5eed0000 + i, pump_reap));
    }
    /* A clean end: the client shuts down, the server sees end of stream. */
    uint64_t sd = ud_next();
    polyio_completion c;
    REQUIRE_ST(polyio_shutdown(rt, p.client, sd), OK);
    REQUIRE(WAIT_FOR(rt, sd, &c));
    CHECK_EQ(c.op, POLYIO_OP_SHUTDOWN);
    CHECK_ST(c.result, OK);
    CHECK(expect_eof(rt, p.server));
    CHECK_EQ(in_flight(rt), 0);
done:
    close_pair(rt, &p);
    free_runtime(rt);
}

static void test_echo_epoll(void) { echo_sizes(POLYIO_BACKEND_EPOLL); }
static void test_echo_thread(void) { echo_sizes(POLYIO_BACKEND_THREAD); }

/* ---- tests: TCP --------------------------------------------------------------------- */

static void test_half_close(void) {
    static const uint8_t hello[] = "hello, half-close";
    static const uint8_t reply[] = "still writing after EOF";
    uint8_t buf[64], *big = NULL, *got = NULL;
    tcp_pair p = {0};
    polyio_completion c;
    polyio_runtime *rt = new_runtime(POLYIO_BACKEND_AUTO);
    REQUIRE(rt);
    REQUIRE(make_pair(rt, &p));
    uint64_t w = ud_next(), sd = ud_next();
    REQUIRE_ST(polyio_write(rt, p.client, hello, sizeof hello, w), OK);
    REQUIRE_ST(polyio_shutdown(rt, p.client, sd), OK);
    REQUIRE(WAIT_FOR(rt, w, &c));
    CHECK_EQ(c.result, (int64_t)sizeof hello);
    REQUIRE(WAIT_FOR(rt, sd, &c));
    CHECK_EQ(c.op, POLYIO_OP_SHUTDOWN);
    CHECK_EQ(c.handle, p.client);
    CHECK_ST(c.result, OK);
    /* The server reads everything written before the shutdown, then end of stream. */
    REQUIRE(read_exact(rt, p.server, buf, sizeof hello));
    CHECK(memcmp(buf, hello, sizeof hello) == 0);
    REQUIRE(expect_eof(rt, p.server));
    /* End of stream stays: queued reads each complete with 0. */
    uint64_t e1 = ud_next(), e2 = ud_next();
    uint8_t eb1[8], eb2[8];
    REQUIRE_ST(polyio_read(rt, p.server, eb1, sizeof eb1, e1), OK);
    REQUIRE_ST(polyio_read(rt, p.server, eb2, sizeof eb2, e2), OK);
    REQUIRE(WAIT_FOR(rt, e1, &c));
    CHECK_EQ(c.result, 0);
    REQUIRE(WAIT_FOR(rt, e2, &c));
    CHECK_EQ(c.result, 0);
    /* ... and the server can still write; the half-closed client still reads. */
    REQUIRE(write_all(rt, p.server, reply, sizeof reply));
    memset(buf, 0, sizeof buf);
    REQUIRE(read_exact(rt, p.client, buf, sizeof reply));
    CHECK(memcmp(buf, reply, sizeof reply) == 0);
    /* The shutdown waits for the writes queued before it: 4 MiB (more than the socket
     * buffers hold) then the shutdown; the client reads all of it, then end of stream. */
    const size_t big_n = 4 * MiB;
    big = malloc(big_n);
    got = malloc(big_n);
    REQUIRE(big && got);
    fill_random(big, big_n, 99);
    uint64_t wb = ud_next();
    sd = ud_next();
    REQUIRE_ST(polyio_write(rt, p.server, big, big_n, wb), OK);
    REQUIRE_ST(polyio_shutdown(rt, p.server, sd), OK);
    REQUIRE(read_exact(rt, p.client, got, big_n));
    CHECK_EQ(fnv1a(got, big_n), fnv1a(big, big_n));
    CHECK(expect_eof(rt, p.client));
    REQUIRE(WAIT_FOR(rt, wb, &c));
    CHECK_EQ(c.result, (int64_t)big_n);
    REQUIRE(WAIT_FOR(rt, sd, &c));
    CHECK_EQ(c.op, POLYIO_OP_SHUTDOWN);
    CHECK_ST(c.result, OK);
done:
    close_pair(rt, &p);
    free_runtime(rt);
    free(big);
    free(got);
}

static void test_connect_refused(void) {
    polyio_handle l = 0;
    uint16_t port = 0;
    polyio_completion c;
    polyio_runtime *rt = new_runtime(POLYIO_BACKEND_AUTO);
    REQUIRE(rt);
    REQUIRE(listen_local(rt, 0, &l, &port));
    REQUIRE_ST(polyio_close(rt, l), OK);
    uint64_t ud = ud_next();
    REQUIRE_ST(polyio_tcp_connect(rt, "127.0.0.1", port, ud), OK);
    REQUIRE(WAIT_FOR(rt, ud, &c));
    CHECK_EQ(c.op, POLYIO_OP_CONNECT);
    CHECK_ST(c.result, POLYIO_STATUS_CONNECTION_REFUSED);
    CHECK_EQ(c.handle, POLYIO_HANDLE_NONE);
    CHECK_EQ(reap_for(rt, 20), 0);
    CHECK_EQ(in_flight(rt), 0);
done:
    free_runtime(rt);
}

static void test_close_cancels_pending(void) {
    uint8_t b1[64], b2[64];
    tcp_pair p = {0};
    polyio_completion c;
    polyio_runtime *rt = new_runtime(POLYIO_BACKEND_AUTO);
    REQUIRE(rt);
    REQUIRE(make_pair(rt, &p));
    uint64_t r1 = ud_next(), r2 = ud_next(), a = ud_next();
    REQUIRE_ST(polyio_read(rt, p.client, b1, sizeof b1, r1), OK);
    REQUIRE_ST(polyio_read(rt, p.client, b2, sizeof b2, r2), OK);
    REQUIRE_ST(polyio_accept(rt, p.listener, a), OK);
    REQUIRE_ST(polyio_deadline(rt, r1, 60000), OK);
    CHECK_EQ(reap_for(rt, 30), 0);
    polyio_stats before, after;
    REQUIRE_ST(polyio_runtime_stats(rt, &before), OK);
    CHECK_EQ(before.in_flight, 3);
    polyio_handle client = p.client, listener = p.listener;
    close_handle(rt, &p.client);
    close_handle(rt, &p.listener);
    /* Each pending op completes once with CANCELED; close posts nothing of its own. */
    uint64_t uds[] = {r1, r2, a};
    for (size_t i = 0; i < 3; i++) {
        REQUIRE(WAIT_FOR(rt, uds[i], &c));
        CHECK_ST(c.result, POLYIO_STATUS_CANCELED);
    }
    CHECK_EQ(polyio_runtime_next_timeout_ms(rt), -1); /* r1's deadline went with it */
    CHECK_EQ(reap_for(rt, 30), 0);
    REQUIRE_ST(polyio_runtime_stats(rt, &after), OK);
    CHECK_EQ(after.in_flight, 0);
    CHECK_EQ(after.completions - before.completions, 3);
    /* The handles are stale now. */
    CHECK_ST(polyio_close(rt, client), POLYIO_STATUS_BAD_HANDLE);
    CHECK_ST(polyio_read(rt, client, b1, sizeof b1, ud_next()), POLYIO_STATUS_BAD_HANDLE);
    CHECK_ST(polyio_accept(rt, listener, ud_next()), POLYIO_STATUS_BAD_HANDLE);
    /* The server side sees the close. */
    CHECK(expect_eof(rt, p.server));
done:
    close_pair(rt, &p);
    free_runtime(rt);
}

static void test_write_to_closed_peer(void) {
    uint8_t data[4096];
    tcp_pair p = {0};
    polyio_runtime *rt = new_runtime(POLYIO_BACKEND_AUTO);
    REQUIRE(rt);
    REQUIRE(make_pair(rt, &p));
    fill_random(data, sizeof data, 7);
    close_handle(rt, &p.server);
    /* The first writes may still be accepted by the kernel; once the peer's RST is back, a
     * write completes with an error (and no SIGPIPE kills this process). */
    int64_t last = 0;
    for (int i = 0; i < 100 && last >= 0; i++) {
        uint64_t ud = ud_next();
        polyio_completion c;
        REQUIRE_ST(polyio_write(rt, p.client, data, sizeof data, ud), OK);
        REQUIRE(WAIT_FOR(rt, ud, &c));
        last = c.result;
        if (last >= 0) {
            CHECK_EQ(last, (int64_t)sizeof data);
            struct timespec ts = {0, 2000000};
            nanosleep(&ts, NULL);
        }
    }
    if (!CHECK(last == POLYIO_STATUS_BROKEN_PIPE || last == POLYIO_STATUS_CONNECTION_RESET))
        fprintf(stderr, "  last write result %" PRId64 " (%s)\n", last, polyio_status_name((int32_t)last));
done:
    close_pair(rt, &p);
    free_runtime(rt);
}

static void test_write_zero_length(void) {
    static const uint8_t msg[] = "after empty";
    uint8_t buf[sizeof msg];
    tcp_pair p = {0};
    polyio_completion c;
    polyio_runtime *rt = new_runtime(POLYIO_BACKEND_AUTO);
    REQUIRE(rt);
    REQUIRE(make_pair(rt, &p));
    uint64_t w0 = ud_next(), w1 = ud_next();
    REQUIRE_ST(polyio_write(rt, p.client, NULL, 0, w0), OK);
    REQUIRE_ST(polyio_write(rt, p.client, msg, sizeof msg, w1), OK);
    REQUIRE(WAIT_FOR(rt, w0, &c));
    CHECK_EQ(c.op, POLYIO_OP_WRITE);
    CHECK_EQ(c.result, 0);
    REQUIRE(WAIT_FOR(rt, w1, &c));
    CHECK_EQ(c.result, (int64_t)sizeof msg);
    REQUIRE(read_exact(rt, p.server, buf, sizeof msg));
    CHECK(memcmp(buf, msg, sizeof msg) == 0);
done:
    close_pair(rt, &p);
    free_runtime(rt);
}

static void test_try_write(void) {
    static const uint8_t msg[] = "sent now";
    uint8_t buf[sizeof msg];
    static uint8_t big[64 << 10];
    tcp_pair p = {0};
    polyio_completion c;
    size_t n = 12345;
    polyio_runtime *rt = new_runtime(POLYIO_BACKEND_AUTO);
    REQUIRE(rt);
    REQUIRE(make_pair(rt, &p));
    /* Bad arguments: an error, and *written untouched. */
    CHECK_ST(polyio_try_write(NULL, p.client, msg, sizeof msg, &n), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_try_write(rt, p.client, msg, sizeof msg, NULL), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_try_write(rt, p.client, NULL, 1, &n), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_try_write(rt, p.listener, msg, sizeof msg, &n), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_try_write(rt, 0, msg, sizeof msg, &n), POLYIO_STATUS_BAD_HANDLE);
    CHECK_EQ(n, (size_t)12345);
    CHECK_ST(polyio_try_write(rt, p.client, NULL, 0, &n), OK);
    CHECK_EQ(n, (size_t)0);
    /* Once the socket is known writable (after a queued write went out), the kernel takes
     * it all at once; no completion follows. */
    uint64_t w = ud_next();
    REQUIRE_ST(polyio_write(rt, p.client, msg, 1, w), OK);
    REQUIRE(WAIT_FOR(rt, w, &c));
    REQUIRE_ST(polyio_try_write(rt, p.client, msg + 1, sizeof msg - 1, &n), OK);
    CHECK_EQ(n, sizeof msg - 1);
    REQUIRE(read_exact(rt, p.server, buf, sizeof msg));
    CHECK(memcmp(buf, msg, sizeof msg) == 0);
    CHECK_EQ(polyio_turn(rt, &c, 1), (size_t)0);
    /* The peer stops reading: a write ends up queued, and try_write never overtakes it. */
    memset(big, 'b', sizeof big);
    uint64_t pending = 0;
    for (int i = 0; i < 1024 && !pending; i++) {
        uint64_t ud = ud_next();
        REQUIRE_ST(polyio_write(rt, p.client, big, sizeof big, ud), OK);
        if (polyio_turn(rt, &c, 1) != 1 || c.user_data != ud)
            pending = ud;
    }
    REQUIRE(pending != 0);
    REQUIRE_ST(polyio_try_write(rt, p.client, msg, sizeof msg, &n), OK);
    CHECK_EQ(n, (size_t)0);
    close_handle(rt, &p.client);
    REQUIRE(WAIT_FOR(rt, pending, &c));
    CHECK_EQ(c.result, POLYIO_STATUS_CANCELED);
done:
    close_pair(rt, &p);
    free_runtime(rt);
}

static void test_read_after_peer_reset(void) {
    uint8_t data[100], buf[64];
    tcp_pair p = {0};
    polyio_completion c;
    polyio_runtime *rt = new_runtime(POLYIO_BACKEND_AUTO);
    REQUIRE(rt);
    REQUIRE(make_pair(rt, &p));
    fill_random(data, sizeof data, 9);
    /* The server reads 10 of the 100 bytes (so they have arrived) and closes with the rest
     * unread: the kernel resets the connection. */
    REQUIRE(write_all(rt, p.client, data, sizeof data));
    REQUIRE(read_exact(rt, p.server, buf, 10));
    close_handle(rt, &p.server);
    uint64_t r = ud_next();
    REQUIRE_ST(polyio_read(rt, p.client, buf, sizeof buf, r), OK);
    REQUIRE(WAIT_FOR(rt, r, &c));
    CHECK_EQ(c.op, POLYIO_OP_READ);
    CHECK_ST(c.result, POLYIO_STATUS_CONNECTION_RESET);
done:
    close_pair(rt, &p);
    free_runtime(rt);
}

/* A buffer may be freed once its op's completion is reaped (after cancel or a deadline),
 * or as soon as polyio_close returns; asan and valgrind report any later touch. */
static void test_buffers_released(void) {
    uint8_t msg[64], got[64], *b = NULL, *big = NULL;
    const size_t big_n = 16 * MiB;
    tcp_pair p = {0}, q = {0};
    polyio_completion c;
    polyio_runtime *rt = new_runtime(POLYIO_BACKEND_AUTO);
    REQUIRE(rt);
    REQUIRE(make_pair(rt, &p));
    fill_random(msg, sizeof msg, 10);
    /* cancel, then free after the completion */
    uint64_t r = ud_next();
    REQUIRE((b = malloc(64)) != NULL);
    REQUIRE_ST(polyio_read(rt, p.client, b, 64, r), OK);
    REQUIRE_ST(polyio_cancel(rt, r), OK);
    REQUIRE(WAIT_FOR(rt, r, &c));
    CHECK_ST(c.result, POLYIO_STATUS_CANCELED);
    free(b);
    /* deadline, then free after the completion */
    r = ud_next();
    REQUIRE((b = malloc(64)) != NULL);
    REQUIRE_ST(polyio_read(rt, p.client, b, 64, r), OK);
    REQUIRE_ST(polyio_deadline(rt, r, 10), OK);
    REQUIRE(WAIT_FOR(rt, r, &c));
    CHECK_ST(c.result, POLYIO_STATUS_TIMED_OUT);
    free(b);
    b = NULL;
    /* bytes arriving now go to the next read only */
    REQUIRE(write_all(rt, p.server, msg, sizeof msg));
    REQUIRE(read_exact(rt, p.client, got, sizeof got));
    CHECK(memcmp(got, msg, sizeof msg) == 0);
    /* close with a read pending: free the buffer as soon as close returns */
    r = ud_next();
    REQUIRE((b = malloc(64)) != NULL);
    REQUIRE_ST(polyio_read(rt, p.server, b, 64, r), OK);
    close_handle(rt, &p.server);
    free(b);
    b = NULL;
    REQUIRE(WAIT_FOR(rt, r, &c));
    CHECK_ST(c.result, POLYIO_STATUS_CANCELED);
    /* close with a write stuck (the peer does not read): free it as soon as close returns */
    REQUIRE(make_pair(rt, &q));
    REQUIRE((big = malloc(big_n)) != NULL);
    fill_random(big, big_n, 11);
    uint64_t w = ud_next();
    REQUIRE_ST(polyio_write(rt, q.client, big, big_n, w), OK);
    reap_for(rt, 50);
    close_handle(rt, &q.client);
    free(big);
    big = NULL;
    REQUIRE(WAIT_FOR(rt, w, &c));
    CHECK(c.result == POLYIO_STATUS_CANCELED || c.result == (int64_t)big_n);
    /* the peer drains what got through; nothing more is sent from the freed buffer */
    for (int i = 0; i < 100; i++) {
        uint8_t sink[64 * 1024];
        uint64_t rr = ud_next();
        REQUIRE_ST(polyio_read(rt, q.server, sink, sizeof sink, rr), OK);
        REQUIRE(WAIT_FOR(rt, rr, &c));
        if (c.result <= 0)
            break;
    }
done:
    close_pair(rt, &p);
    close_pair(rt, &q);
    free_runtime(rt);
    free(big);
}

/* ---- tests: cancellation and deadlines ---------------------------------------------- */

static void cancel_read(uint32_t backend) {
    uint8_t buf[4096], msg[1000], got[1000];
    tcp_pair p = {0};
    polyio_completion c;
    polyio_runtime *rt = new_runtime(backend);
    REQUIRE(rt);
    REQUIRE(make_pair(rt, &p));
    fill_random(msg, sizeof msg, 42);

    /* A pending read with no data: cancel -> exactly one CANCELED completion. */
    uint64_t r1 = ud_next();
    REQUIRE_ST(polyio_read(rt, p.client, buf, sizeof buf, r1), OK);
    CHECK_EQ(reap_for(rt, 50), 0);
    REQUIRE_ST(polyio_cancel(rt, r1), OK);
    REQUIRE(WAIT_FOR(rt, r1, &c));
    CHECK_EQ(c.op, POLYIO_OP_READ);
    CHECK_EQ(c.handle, p.client);
    CHECK_ST(c.result, POLYIO_STATUS_CANCELED);
    CHECK_ST(polyio_cancel(rt, r1), POLYIO_STATUS_NOT_FOUND); /* completed: nothing pending */
    CHECK_EQ(reap_for(rt, 50), 0);
    CHECK_EQ(stash_count(rt, r1), 0);
    CHECK_EQ(in_flight(rt), 0);
    /* The peer's data then arrives whole in the next read. */
    REQUIRE(write_all(rt, p.server, msg, sizeof msg));
    REQUIRE(read_exact(rt, p.client, got, sizeof got));
    CHECK(memcmp(got, msg, sizeof msg) == 0);

    /* Data reaches the socket while a read is pending, and the read is cancelled before any
     * turn ran: whatever the read did not report stays for the next read. */
    uint64_t r2 = ud_next(), w2 = ud_next();
    size_t have = 0;
    memset(got, 0, sizeof got);
    REQUIRE_ST(polyio_read(rt, p.client, buf, sizeof buf, r2), OK);
    REQUIRE_ST(polyio_write(rt, p.server, msg, sizeof msg, w2), OK);
    polyio_status st = polyio_cancel(rt, r2);
    CHECK(st == OK || st == POLYIO_STATUS_NOT_FOUND);
    REQUIRE(WAIT_FOR(rt, r2, &c));
    if (st == OK) {
        CHECK_ST(c.result, POLYIO_STATUS_CANCELED);
    } else if (CHECK(c.result > 0)) { /* it completed first: the bytes are in buf */
        have = (size_t)c.result;
        memcpy(got, buf, have);
    }
    REQUIRE(WAIT_FOR(rt, w2, &c));
    CHECK_EQ(c.result, (int64_t)sizeof msg);
    REQUIRE(read_exact(rt, p.client, got + have, sizeof got - have));
    CHECK(memcmp(got, msg, sizeof msg) == 0);

    /* Two queued reads, the front one cancelled: the second receives the data. */
    uint64_t r3 = ud_next(), r4 = ud_next();
    uint8_t b4[sizeof msg];
    REQUIRE_ST(polyio_read(rt, p.client, buf, sizeof buf, r3), OK);
    REQUIRE_ST(polyio_read(rt, p.client, b4, sizeof b4, r4), OK);
    REQUIRE_ST(polyio_cancel(rt, r3), OK);
    REQUIRE(WAIT_FOR(rt, r3, &c));
    CHECK_ST(c.result, POLYIO_STATUS_CANCELED);
    REQUIRE(write_all(rt, p.server, msg, 100));
    REQUIRE(WAIT_FOR(rt, r4, &c));
    CHECK_EQ(c.result, 100);
    CHECK(memcmp(b4, msg, 100) == 0);

    /* Cancel takes every pending op with that user_data (here two timers). */
    uint64_t t = ud_next();
    REQUIRE_ST(polyio_timer(rt, 60000, t), OK);
    REQUIRE_ST(polyio_timer(rt, 60000, t), OK);
    REQUIRE_ST(polyio_cancel(rt, t), OK);
    for (int i = 0; i < 2; i++) {
        REQUIRE(WAIT_FOR(rt, t, &c));
        CHECK_EQ(c.op, POLYIO_OP_TIMER);
        CHECK_ST(c.result, POLYIO_STATUS_CANCELED);
    }

    /* Unknown user_data. */
    CHECK_ST(polyio_cancel(rt, 0xc0ffee), POLYIO_STATUS_NOT_FOUND);
    CHECK_ST(polyio_cancel(rt, 0), POLYIO_STATUS_NOT_FOUND);
    CHECK_EQ(reap_for(rt, 20), 0);
    CHECK_EQ(in_flight(rt), 0);
done:
    close_pair(rt, &p);
    free_runtime(rt);
}

static void test_cancel_epoll(void) { cancel_read(POLYIO_BACKEND_EPOLL); }
static void test_cancel_thread(void) { cancel_read(POLYIO_BACKEND_THREAD); }

static void test_deadline_read(void) {
    uint8_t buf[256], msg[200];
    tcp_pair p = {0};
    polyio_handle extra[2] = {0};
    polyio_completion c;
    polyio_runtime *rt = new_runtime(POLYIO_BACKEND_AUTO);
    REQUIRE(rt);
    REQUIRE(make_pair(rt, &p));
    fill_random(msg, sizeof msg, 3);

    /* No data: TIMED_OUT, and not before the deadline. */
    uint64_t r = ud_next();
    int64_t t0 = now_ns();
    REQUIRE_ST(polyio_read(rt, p.client, buf, sizeof buf, r), OK);
    REQUIRE_ST(polyio_deadline(rt, r, 50), OK);
    int32_t t = polyio_runtime_next_timeout_ms(rt);
    CHECK(t > 0 && t <= 50);
    REQUIRE(WAIT_FOR(rt, r, &c));
    int64_t elapsed = now_ns() - t0;
    CHECK_EQ(c.op, POLYIO_OP_READ);
    CHECK_EQ(c.handle, p.client);
    CHECK_ST(c.result, POLYIO_STATUS_TIMED_OUT);
    if (!CHECK(elapsed >= 50 * 1000000))
        fprintf(stderr, "  timed out after %" PRId64 " us\n", elapsed / 1000);
    /* Nothing is left: no timer, no work (not even for one more turn). */
    CHECK_EQ(polyio_runtime_next_timeout_ms(rt), -1);
    CHECK_EQ(reap_for(rt, 30), 0);
    CHECK_EQ(polyio_runtime_next_timeout_ms(rt), -1);
    CHECK_ST(polyio_deadline(rt, r, 50), POLYIO_STATUS_NOT_FOUND);
    CHECK_ST(polyio_deadline(rt, 0xfeedface, 50), POLYIO_STATUS_NOT_FOUND);

    /* The timed-out read took no bytes: later data arrives whole. */
    REQUIRE(write_all(rt, p.server, msg, sizeof msg));
    memset(buf, 0, sizeof buf);
    REQUIRE(read_exact(rt, p.client, buf, sizeof msg));
    CHECK(memcmp(buf, msg, sizeof msg) == 0);

    /* A read that completes before its deadline completes once, with its data. */
    r = ud_next();
    REQUIRE_ST(polyio_read(rt, p.client, buf, sizeof buf, r), OK);
    REQUIRE_ST(polyio_deadline(rt, r, 60000), OK);
    REQUIRE(write_all(rt, p.server, msg, 10));
    REQUIRE(WAIT_FOR(rt, r, &c));
    CHECK_EQ(c.result, 10);
    CHECK_EQ(reap_for(rt, 200), 0);
    CHECK_EQ(stash_count(rt, r), 0);
    CHECK_EQ(polyio_runtime_next_timeout_ms(rt), -1);

    /* Deadline and data racing (deadlines of 0 and 1 ms): each read completes exactly once,
     * with the bytes or TIMED_OUT, and a timed-out read leaves the bytes for the next one. */
    for (int i = 0; i < 40; i++) {
        uint8_t chunk[10];
        memset(buf, 0, sizeof buf);
        r = ud_next();
        REQUIRE_ST(polyio_read(rt, p.client, buf, sizeof chunk, r), OK);
        REQUIRE_ST(polyio_deadline(rt, r, (uint64_t)(i % 2)), OK);
        REQUIRE(write_all(rt, p.server, msg + i, sizeof chunk));
        REQUIRE(WAIT_FOR(rt, r, &c));
        if (c.result == POLYIO_STATUS_TIMED_OUT) {
            REQUIRE(read_exact(rt, p.client, chunk, sizeof chunk));
        } else {
            REQUIRE_EQ(c.result, (int64_t)sizeof chunk);
            memcpy(chunk, buf, sizeof chunk);
        }
        CHECK(memcmp(chunk, msg + i, sizeof chunk) == 0);
        CHECK_EQ(reap_for(rt, 5), 0);
        CHECK_EQ(stash_count(rt, r), 0);
    }
    CHECK_EQ(polyio_runtime_next_timeout_ms(rt), -1);

    /* A second deadline replaces the first: shortened, it fires; lengthened, the first
     * one no longer does. */
    r = ud_next();
    REQUIRE_ST(polyio_read(rt, p.client, buf, sizeof buf, r), OK);
    REQUIRE_ST(polyio_deadline(rt, r, 60000), OK);
    REQUIRE_ST(polyio_deadline(rt, r, 20), OK);
    REQUIRE(WAIT_FOR(rt, r, &c));
    CHECK_ST(c.result, POLYIO_STATUS_TIMED_OUT);
    r = ud_next();
    REQUIRE_ST(polyio_read(rt, p.client, buf, sizeof buf, r), OK);
    REQUIRE_ST(polyio_deadline(rt, r, 20), OK);
    REQUIRE_ST(polyio_deadline(rt, r, 60000), OK);
    CHECK_EQ(reap_for(rt, 100), 0);
    REQUIRE_ST(polyio_cancel(rt, r), OK);
    REQUIRE(WAIT_FOR(rt, r, &c));
    CHECK_ST(c.result, POLYIO_STATUS_CANCELED);
    CHECK_EQ(in_flight(rt), 0);

    /* An accept with nobody connecting times out, and takes no connection with it. */
    uint64_t a = ud_next(), k = ud_next();
    REQUIRE_ST(polyio_accept(rt, p.listener, a), OK);
    REQUIRE_ST(polyio_deadline(rt, a, 20), OK);
    REQUIRE(WAIT_FOR(rt, a, &c));
    CHECK_EQ(c.op, POLYIO_OP_ACCEPT);
    CHECK_ST(c.result, POLYIO_STATUS_TIMED_OUT);
    CHECK_EQ(c.handle, POLYIO_HANDLE_NONE);
    REQUIRE_ST(polyio_tcp_connect(rt, "127.0.0.1", p.port, k), OK);
    REQUIRE(WAIT_FOR(rt, k, &c));
    REQUIRE_ST(c.result, OK);
    extra[0] = c.handle;
    a = ud_next();
    REQUIRE_ST(polyio_accept(rt, p.listener, a), OK);
    REQUIRE(WAIT_FOR(rt, a, &c));
    REQUIRE_ST(c.result, OK);
    extra[1] = c.handle;
    CHECK_EQ(in_flight(rt), 0);
done:
    close_handle(rt, &extra[0]);
    close_handle(rt, &extra[1]);
    close_pair(rt, &p);
    free_runtime(rt);
}

/* Connect to a listener whose accept queue is full (backlog 1, nobody accepts): the kernel
 * drops the SYN, the connect stays pending, and its deadline ends it with TIMED_OUT. */
static void test_deadline_connect(void) {
    polyio_handle l = 0, conns[16];
    size_t n_conns = 0;
    uint16_t port = 0;
    polyio_runtime *rt = new_runtime(POLYIO_BACKEND_AUTO);
    REQUIRE(rt);
    REQUIRE(listen_local(rt, 1, &l, &port));
    bool timed_out = false;
    for (int i = 0; i < 16 && !timed_out; i++) {
        uint64_t ud = ud_next();
        polyio_completion c;
        int64_t t0 = now_ns();
        REQUIRE_ST(polyio_tcp_connect(rt, "127.0.0.1", port, ud), OK);
        polyio_status st = polyio_deadline(rt, ud, 200);
        CHECK(st == OK || st == POLYIO_STATUS_NOT_FOUND); /* NOT_FOUND: it connected at once */
        REQUIRE(WAIT_FOR(rt, ud, &c));
        CHECK_EQ(c.op, POLYIO_OP_CONNECT);
        if (c.result == OK) {
            CHECK(c.handle != POLYIO_HANDLE_NONE);
            conns[n_conns++] = c.handle;
            continue;
        }
        REQUIRE_ST(c.result, POLYIO_STATUS_TIMED_OUT);
        CHECK_EQ(c.handle, POLYIO_HANDLE_NONE);
        int64_t elapsed = now_ns() - t0;
        if (!CHECK(elapsed >= 200 * 1000000))
            fprintf(stderr, "  connect timed out after %" PRId64 " us\n", elapsed / 1000);
        timed_out = true;
    }
    if (!CHECK(timed_out))
        fprintf(stderr, "  all %zu connects to a full backlog succeeded: cannot test a pending connect\n", n_conns);
    CHECK_EQ(reap_for(rt, 30), 0);
    CHECK_EQ(in_flight(rt), 0);
done:
    for (size_t i = 0; i < n_conns; i++)
        CHECK_ST(polyio_close(rt, conns[i]), OK);
    if (l)
        CHECK_ST(polyio_close(rt, l), OK);
    free_runtime(rt);
}

/* ---- tests: timers ------------------------------------------------------------------ */

/* Reaps n completions into out[] in arrival order (bounded). */
static bool reap_n(polyio_runtime *rt, polyio_completion *out, size_t n) {
    size_t got = 0;
    int64_t deadline = now_ms() + WAIT_MS;
    while (got < n) {
        size_t k = pump_reap(rt, out + got, n - got, deadline);
        if (k == 0) {
            fail_at(__FILE__, __LINE__, "got %zu of %zu completions", got, n);
            return false;
        }
        got += k;
    }
    return true;
}

static void test_timers_in_order(void) {
    static const uint64_t delays[] = {30, 10, 20, 0};
    polyio_completion c[10];
    polyio_runtime *rt = new_runtime(POLYIO_BACKEND_AUTO);
    REQUIRE(rt);
    int64_t t0 = now_ns();
    for (size_t i = 0; i < 4; i++)
        REQUIRE_ST(polyio_timer(rt, delays[i], 1000 + delays[i]), OK);
    for (size_t i = 0; i < 4; i++) {
        REQUIRE(reap_n(rt, &c[i], 1));
        int64_t elapsed = now_ns() - t0;
        CHECK_EQ(c[i].op, POLYIO_OP_TIMER);
        CHECK_EQ(c[i].result, 0);
        CHECK_EQ(c[i].handle, POLYIO_HANDLE_NONE);
        uint64_t want = 1000 + 10 * i; /* 0, 10, 20, 30 */
        CHECK_EQ(c[i].user_data, want);
        if (!CHECK(elapsed >= (int64_t)(want - 1000) * 1000000))
            fprintf(stderr, "  timer %" PRIu64 " ms completed after %" PRId64 " us\n", want - 1000, elapsed / 1000);
    }
    /* Equal delays complete in submission order; 0 ms ones before 20 ms ones. */
    for (uint64_t i = 0; i < 5; i++)
        REQUIRE_ST(polyio_timer(rt, 20, 2000 + i), OK);
    for (uint64_t i = 0; i < 5; i++)
        REQUIRE_ST(polyio_timer(rt, 0, 3000 + i), OK);
    REQUIRE(reap_n(rt, c, 10));
    for (size_t i = 0; i < 10; i++)
        CHECK_EQ(c[i].user_data, i < 5 ? 3000 + i : 2000 + (i - 5));
    CHECK_EQ(polyio_runtime_next_timeout_ms(rt), -1);
done:
    free_runtime(rt);
}

static void test_next_timeout(void) {
    polyio_completion c;
    tcp_pair p = {0};
    uint8_t buf[16];
    polyio_runtime *rt = new_runtime(POLYIO_BACKEND_AUTO);
    REQUIRE(rt);
    CHECK_EQ(polyio_runtime_next_timeout_ms(rt), -1);
    uint64_t a = ud_next(), b = ud_next();
    REQUIRE_ST(polyio_timer(rt, 5000, a), OK);
    int32_t t = polyio_runtime_next_timeout_ms(rt);
    CHECK(t > 0 && t <= 5000);
    REQUIRE_ST(polyio_timer(rt, 0, b), OK);
    CHECK_EQ(polyio_runtime_next_timeout_ms(rt), 0);
    REQUIRE(WAIT_FOR(rt, b, &c));
    t = polyio_runtime_next_timeout_ms(rt);
    CHECK(t > 0 && t <= 5000);
    /* Not due: a short reap returns nothing. */
    CHECK_EQ(reap_for(rt, 30), 0);
    REQUIRE_ST(polyio_cancel(rt, a), OK);
    CHECK_EQ(polyio_runtime_next_timeout_ms(rt), 0); /* a completion is waiting */
    REQUIRE(WAIT_FOR(rt, a, &c));
    CHECK_ST(c.result, POLYIO_STATUS_CANCELED);
    CHECK_EQ(polyio_runtime_next_timeout_ms(rt), -1);
    /* A deadline counts as a timer; cancelling its op removes it. */
    REQUIRE(make_pair(rt, &p));
    uint64_t r = ud_next();
    REQUIRE_ST(polyio_read(rt, p.client, buf, sizeof buf, r), OK);
    CHECK_EQ(polyio_runtime_next_timeout_ms(rt), -1);
    REQUIRE_ST(polyio_deadline(rt, r, 3000), OK);
    t = polyio_runtime_next_timeout_ms(rt);
    CHECK(t > 0 && t <= 3000);
    REQUIRE_ST(polyio_cancel(rt, r), OK);
    REQUIRE(WAIT_FOR(rt, r, &c));
    CHECK_ST(c.result, POLYIO_STATUS_CANCELED);
    CHECK_EQ(polyio_runtime_next_timeout_ms(rt), -1);
    /* ms too large to represent */
    CHECK_ST(polyio_timer(rt, UINT64_MAX, ud_next()), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(in_flight(rt), 0);
    /* A timer further away than INT32_MAX ms: the timeout saturates, it never turns negative. */
    uint64_t far = ud_next();
    REQUIRE_ST(polyio_timer(rt, 3000000000ULL, far), OK);
    CHECK_EQ(polyio_runtime_next_timeout_ms(rt), INT32_MAX);
    /* A deadline on a timer ends it with TIMED_OUT, once; no timer remains. */
    REQUIRE_ST(polyio_deadline(rt, far, 10), OK);
    t = polyio_runtime_next_timeout_ms(rt);
    CHECK(t >= 0 && t <= 10);
    REQUIRE(WAIT_FOR(rt, far, &c));
    CHECK_EQ(c.op, POLYIO_OP_TIMER);
    CHECK_ST(c.result, POLYIO_STATUS_TIMED_OUT);
    CHECK_EQ(polyio_runtime_next_timeout_ms(rt), -1);
    CHECK_EQ(reap_for(rt, 20), 0);
    CHECK_EQ(in_flight(rt), 0);
done:
    close_pair(rt, &p);
    free_runtime(rt);
}

static void test_reap_small_array(void) {
    polyio_completion c[4];
    polyio_runtime *rt = new_runtime(POLYIO_BACKEND_AUTO);
    REQUIRE(rt);
    for (uint64_t i = 0; i < 10; i++)
        REQUIRE_ST(polyio_timer(rt, 0, 100 + i), OK);
    static const size_t want[] = {3, 3, 3, 1};
    uint64_t next = 100;
    for (size_t r = 0; r < 4; r++) {
        memset(c, 0, sizeof c);
        size_t n = polyio_reap(rt, c, 3, WAIT_MS);
        CHECK_EQ(n, want[r]);
        for (size_t i = 0; i < n && i < 3; i++) {
            CHECK_EQ(c[i].user_data, next);
            CHECK_EQ(c[i].op, POLYIO_OP_TIMER);
            CHECK_EQ(c[i].flags, 0); /* fired by a turn, not inline */
            next++;
        }
        if (r < 3) {
            CHECK_EQ(polyio_runtime_next_timeout_ms(rt), 0); /* completions wait */
            CHECK_EQ(in_flight(rt), 0);                      /* all done, not all reaped */
            CHECK_EQ(polyio_turn(rt, c, 0), 0);              /* max 0 takes nothing */
        }
    }
    CHECK_EQ(next, 110);
    CHECK_EQ(polyio_runtime_next_timeout_ms(rt), -1);
    CHECK_EQ(polyio_reap(rt, c, 3, WAIT_MS), 0); /* nothing in flight: returns at once */
done:
    free_runtime(rt);
}

static void test_queue_full(void) {
    polyio_options opts;
    polyio_runtime *rt = NULL;
    polyio_completion c;
    polyio_options_init(&opts);
    CHECK_EQ(opts.backend, POLYIO_BACKEND_AUTO);
    CHECK_EQ(opts.max_ops, 65536);
    opts.max_ops = 4;
    REQUIRE_ST(polyio_runtime_new(&opts, &rt), OK);
    for (uint64_t i = 0; i < 4; i++)
        REQUIRE_ST(polyio_timer(rt, 60000, 10 + i), OK);
    CHECK_ST(polyio_timer(rt, 0, 99), POLYIO_STATUS_QUEUE_FULL);
    CHECK_ST(polyio_tcp_connect(rt, "127.0.0.1", 9, 99), POLYIO_STATUS_QUEUE_FULL);
    CHECK_EQ(in_flight(rt), 4);
    /* A completion not yet reaped still counts. */
    REQUIRE_ST(polyio_cancel(rt, 10), OK);
    CHECK_ST(polyio_timer(rt, 0, 99), POLYIO_STATUS_QUEUE_FULL);
    REQUIRE(WAIT_FOR(rt, 10, &c));
    CHECK_ST(c.result, POLYIO_STATUS_CANCELED);
    REQUIRE_ST(polyio_timer(rt, 0, 14), OK);
    REQUIRE(WAIT_FOR(rt, 14, &c));
    CHECK_EQ(c.result, 0);
    CHECK_EQ(stash_count(rt, 99), 0);
    CHECK_EQ(in_flight(rt), 3);
done:
    free_runtime(rt);
}

/* ---- tests: bad handles and bad arguments ------------------------------------------- */

static void test_bad_handles(void) {
    tcp_pair p = {0}, p2 = {0}, p3 = {0};
    polyio_runtime *rt = new_runtime(POLYIO_BACKEND_AUTO), *rt2 = new_runtime(POLYIO_BACKEND_AUTO);
    polyio_stats before, after;
    REQUIRE(rt && rt2);
    REQUIRE(make_pair(rt, &p));
    REQUIRE(make_pair(rt2, &p2));
    polyio_handle closed_conn = p.server, closed_listener = p.listener, live = p.client;
    close_handle(rt, &p.server);
    close_handle(rt, &p.listener);
    /* A new pair may reuse the freed slots; the old handles must stay stale. */
    REQUIRE(make_pair(rt, &p3));
    const polyio_handle bad[] = {
        POLYIO_HANDLE_NONE,
        closed_conn,
        closed_listener,
        0xdeadbeef,
        UINT64_MAX,
        /* made-up variants of a live handle (today's layout: runtime 16 | generation 24 |
         * slot 24 bits): another generation, a slot never used, no runtime id */
        live ^ (1ULL << 24),
        (live & ~0xffffffULL) | 0xabcdeULL,
        live & 0xffffffffffffULL,
        p2.listener, /* another runtime's */
        p2.client,
        p2.server,
    };
    REQUIRE_ST(polyio_runtime_stats(rt, &before), OK);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        polyio_handle h = bad[i];
        uint8_t buf[16] = {0};
        polyio_addr a, untouched;
        memset(&a, 0xab, sizeof a);
        untouched = a;
        if (!CHECK_ST(polyio_read(rt, h, buf, sizeof buf, 1), POLYIO_STATUS_BAD_HANDLE) |
            !CHECK_ST(polyio_write(rt, h, buf, sizeof buf, 2), POLYIO_STATUS_BAD_HANDLE) |
            !CHECK_ST(polyio_accept(rt, h, 3), POLYIO_STATUS_BAD_HANDLE) |
            !CHECK_ST(polyio_shutdown(rt, h, 4), POLYIO_STATUS_BAD_HANDLE) |
            !CHECK_ST(polyio_close(rt, h), POLYIO_STATUS_BAD_HANDLE) |
            !CHECK_ST(polyio_tcp_local_addr(rt, h, &a), POLYIO_STATUS_BAD_HANDLE) |
            !CHECK(memcmp(&a, &untouched, sizeof a) == 0) |
            !CHECK_ST(polyio_tcp_peer_addr(rt, h, &a), POLYIO_STATUS_BAD_HANDLE) |
            !CHECK_ST(polyio_tcp_nodelay(rt, h, true), POLYIO_STATUS_BAD_HANDLE) |
            !CHECK_ST(polyio_tcp_keepalive(rt, h, true, 30), POLYIO_STATUS_BAD_HANDLE))
            fprintf(stderr, "  (bad handle #%zu = %#" PRIx64 ")\n", i, h);
    }
    /* No completion was posted for any of them. */
    REQUIRE_ST(polyio_runtime_stats(rt, &after), OK);
    CHECK_EQ(after.in_flight, 0);
    CHECK_EQ(after.completions, before.completions);
    polyio_completion c[8];
    CHECK_EQ(polyio_turn(rt, c, 8), 0);
    CHECK_EQ(polyio_reap(rt, c, 8, 50), 0);
    CHECK_EQ(polyio_reap(rt2, c, 8, 50), 0);
    /* The live connections (here and in the other runtime) are untouched. */
    static const uint8_t msg[] = "still alive";
    uint8_t got[sizeof msg];
    polyio_addr la;
    CHECK_ST(polyio_tcp_local_addr(rt, live, &la), OK);
    REQUIRE(write_all(rt, p3.client, msg, sizeof msg));
    REQUIRE(read_exact(rt, p3.server, got, sizeof msg));
    CHECK(memcmp(got, msg, sizeof msg) == 0);
    REQUIRE(write_all(rt2, p2.client, msg, sizeof msg));
    REQUIRE(read_exact(rt2, p2.server, got, sizeof msg));
    CHECK(memcmp(got, msg, sizeof msg) == 0);
done:
    close_pair(rt, &p);
    close_pair(rt, &p3);
    close_pair(rt2, &p2);
    free_runtime(rt);
    free_runtime(rt2);
}

/* Handles carry their runtime's id, so a handle from another live runtime is BAD_HANDLE
 * however many runtimes the process has made before. 65,534 polyio_runtime_new calls
 * separate the two runtimes here; to keep that cheap they run with RLIMIT_NOFILE at 0, so
 * each fails at once with TOO_MANY_OPEN_FILES (a failed call is a call all the same). */
static void test_handles_across_many_runtimes(void) {
    polyio_runtime *first = NULL, *second = NULL;
    polyio_handle l1 = 0, l2 = 0;
    uint16_t port1 = 0, port2 = 0;
    struct rlimit old, lim;
    bool lowered = false;
    size_t failed = 0;
    polyio_addr a;
    first = new_runtime(POLYIO_BACKEND_AUTO);
    REQUIRE(first);
    REQUIRE(listen_local(first, 0, &l1, &port1));
    REQUIRE_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
    lim = old;
    lim.rlim_cur = 0;
    REQUIRE_EQ(setrlimit(RLIMIT_NOFILE, &lim), 0);
    lowered = true;
    for (int i = 0; i < 65534; i++) {
        polyio_runtime *rt = NULL;
        if (polyio_runtime_new(NULL, &rt) == OK)
            polyio_runtime_free(rt);
        else
            failed++;
    }
    setrlimit(RLIMIT_NOFILE, &old);
    lowered = false;
    second = new_runtime(POLYIO_BACKEND_AUTO);
    REQUIRE(second);
    REQUIRE(listen_local(second, 0, &l2, &port2));
    if (!CHECK(l1 != l2))
        fprintf(stderr, "  two live runtimes issued the same handle %#" PRIx64
                        " (%zu of the calls in between failed)\n", l1, failed);
    CHECK_ST(polyio_tcp_local_addr(second, l1, &a), POLYIO_STATUS_BAD_HANDLE);
    CHECK_ST(polyio_tcp_local_addr(first, l2, &a), POLYIO_STATUS_BAD_HANDLE);
    CHECK_ST(polyio_close(second, l1), POLYIO_STATUS_BAD_HANDLE);
    /* ... and so the second runtime's own listener is still open. */
    if (CHECK_ST(polyio_tcp_local_addr(second, l2, &a), OK))
        CHECK_EQ(a.port, port2);
    if (CHECK_ST(polyio_tcp_local_addr(first, l1, &a), OK))
        CHECK_EQ(a.port, port1);
done:
    if (lowered)
        setrlimit(RLIMIT_NOFILE, &old);
    if (second && l2)
        polyio_close(second, l2);
    if (first && l1)
        polyio_close(first, l1);
    free_runtime(second);
    free_runtime(first);
}

static void test_null_and_invalid_arguments(void) {
    polyio_runtime *rt = NULL, *sentinel_rt = (polyio_runtime *)(uintptr_t)0x1234;
    tcp_pair p = {0};
    polyio_completion c[4];
    polyio_stats st;
    polyio_addr a;
    uint8_t buf[16] = {0};
    const polyio_status INVAL = POLYIO_STATUS_INVALID_ARGUMENT;

    /* Functions that take no runtime first. */
    polyio_options_init(NULL);
    polyio_runtime_free(NULL);
    polyio_options opts;
    polyio_options_init(&opts);
    CHECK_ST(polyio_runtime_new(NULL, NULL), INVAL);
    CHECK_ST(polyio_runtime_new(&opts, NULL), INVAL);
    polyio_runtime *out = sentinel_rt;
    opts.backend = 3;
    CHECK_ST(polyio_runtime_new(&opts, &out), INVAL);
    opts.backend = UINT32_MAX;
    CHECK_ST(polyio_runtime_new(&opts, &out), INVAL);
    polyio_options_init(&opts);
    opts.max_ops = 0;
    CHECK_ST(polyio_runtime_new(&opts, &out), INVAL);
    CHECK(out == sentinel_rt); /* out-params are written only on success */

    /* A NULL runtime everywhere. */
    CHECK_ST(polyio_runtime_shutdown(NULL), INVAL);
    CHECK_EQ(polyio_runtime_backend_fd(NULL), -1);
    CHECK_EQ(polyio_runtime_backend(NULL), 0);
    CHECK_EQ(polyio_runtime_next_timeout_ms(NULL), -1);
    CHECK_EQ(polyio_turn(NULL, c, 4), 0);
    CHECK_EQ(polyio_turn(NULL, NULL, 0), 0);
    CHECK_EQ(polyio_reap(NULL, c, 4, 0), 0);
    CHECK_EQ(polyio_reap(NULL, c, 4, -1), 0);
    CHECK_ST(polyio_runtime_wake(NULL), INVAL);
    memset(&st, 0xab, sizeof st);
    polyio_stats st_untouched = st;
    CHECK_ST(polyio_runtime_stats(NULL, &st), INVAL);
    CHECK(memcmp(&st, &st_untouched, sizeof st) == 0);
    CHECK_ST(polyio_runtime_stats(NULL, NULL), INVAL);
    CHECK_ST(polyio_tcp_connect(NULL, "127.0.0.1", 80, 1), INVAL);
    polyio_handle h = 77;
    CHECK_ST(polyio_tcp_listen(NULL, "127.0.0.1", 0, 0, 0, &h), INVAL);
    CHECK_EQ(h, 77);
    CHECK_ST(polyio_accept(NULL, 1, 1), INVAL);
    CHECK_ST(polyio_read(NULL, 1, buf, sizeof buf, 1), INVAL);
    CHECK_ST(polyio_write(NULL, 1, buf, sizeof buf, 1), INVAL);
    CHECK_ST(polyio_shutdown(NULL, 1, 1), INVAL);
    CHECK_ST(polyio_close(NULL, 1), INVAL);
    CHECK_ST(polyio_timer(NULL, 0, 1), INVAL);
    CHECK_ST(polyio_cancel(NULL, 1), INVAL);
    CHECK_ST(polyio_deadline(NULL, 1, 10), INVAL);
    CHECK_ST(polyio_tcp_nodelay(NULL, 1, true), INVAL);
    CHECK_ST(polyio_tcp_keepalive(NULL, 1, true, 10), INVAL);
    CHECK_ST(polyio_tcp_local_addr(NULL, 1, &a), INVAL);
    CHECK_ST(polyio_tcp_peer_addr(NULL, 1, &a), INVAL);

    /* A live runtime with NULL or invalid arguments. */
    rt = new_runtime(POLYIO_BACKEND_AUTO);
    REQUIRE(rt);
    REQUIRE(make_pair(rt, &p));
    polyio_stats before;
    REQUIRE_ST(polyio_runtime_stats(rt, &before), OK);
    CHECK_EQ(polyio_turn(rt, NULL, 4), 0);
    CHECK_EQ(polyio_reap(rt, NULL, 4, 0), 0);
    CHECK_EQ(polyio_turn(rt, NULL, 0), 0);
    CHECK_ST(polyio_runtime_stats(rt, NULL), INVAL);
    /* connect */
    CHECK_ST(polyio_tcp_connect(rt, NULL, p.port, 1), INVAL);
    CHECK_ST(polyio_tcp_connect(rt, "", p.port, 1), INVAL);
    CHECK_ST(polyio_tcp_connect(rt, "\xff\xfe", p.port, 1), INVAL);
    CHECK_ST(polyio_tcp_connect(rt, "127.0.0.1", 0, 1), INVAL);
    /* listen */
    h = 77;
    CHECK_ST(polyio_tcp_listen(rt, NULL, 0, 0, 0, &h), INVAL);
    CHECK_ST(polyio_tcp_listen(rt, "127.0.0.1", 0, 0, 0, NULL), INVAL);
    CHECK_ST(polyio_tcp_listen(rt, "\xff\xfe", 0, 0, 0, &h), INVAL);
    CHECK_ST(polyio_tcp_listen(rt, "", 0, 0, 0, &h), INVAL);
    CHECK_ST(polyio_tcp_listen(rt, "127.0.0.1", 0, -1, 0, &h), INVAL);
    CHECK_ST(polyio_tcp_listen(rt, "127.0.0.1", 0, INT32_MIN, 0, &h), INVAL);
    CHECK_ST(polyio_tcp_listen(rt, "127.0.0.1", 0, 0, 2, &h), INVAL);
    CHECK_ST(polyio_tcp_listen(rt, "127.0.0.1", 0, 0, POLYIO_LISTEN_REUSEPORT | 0x80000000u, &h), INVAL);
    CHECK_EQ(h, 77);
    /* read */
    CHECK_ST(polyio_read(rt, p.client, NULL, 16, 1), INVAL);
    CHECK_ST(polyio_read(rt, p.client, buf, 0, 1), INVAL);
    CHECK_ST(polyio_read(rt, p.client, buf, (size_t)PTRDIFF_MAX + 1, 1), INVAL);
    CHECK_ST(polyio_read(rt, p.client, buf, SIZE_MAX, 1), INVAL);
    CHECK_ST(polyio_read(rt, p.listener, buf, sizeof buf, 1), INVAL);
    /* write */
    CHECK_ST(polyio_write(rt, p.client, NULL, 16, 1), INVAL);
    CHECK_ST(polyio_write(rt, p.client, buf, (size_t)PTRDIFF_MAX + 1, 1), INVAL);
    CHECK_ST(polyio_write(rt, p.client, buf, SIZE_MAX, 1), INVAL);
    CHECK_ST(polyio_write(rt, p.listener, buf, sizeof buf, 1), INVAL);
    /* accept on a connection, shutdown on a listener, options on a listener */
    CHECK_ST(polyio_accept(rt, p.client, 1), INVAL);
    CHECK_ST(polyio_shutdown(rt, p.listener, 1), INVAL);
    CHECK_ST(polyio_tcp_nodelay(rt, p.listener, true), INVAL);
    CHECK_ST(polyio_tcp_keepalive(rt, p.listener, true, 10), INVAL);
    CHECK_ST(polyio_tcp_keepalive(rt, p.client, true, 0), INVAL);
    CHECK_ST(polyio_tcp_keepalive(rt, p.client, true, 30), OK);
    CHECK_ST(polyio_tcp_keepalive(rt, p.client, false, 0), OK);
    /* addresses */
    CHECK_ST(polyio_tcp_local_addr(rt, p.client, NULL), INVAL);
    CHECK_ST(polyio_tcp_peer_addr(rt, p.client, NULL), INVAL);
    memset(&a, 0xab, sizeof a);
    polyio_addr a_untouched = a;
    CHECK_ST(polyio_tcp_peer_addr(rt, p.listener, &a), POLYIO_STATUS_NOT_CONNECTED);
    CHECK(memcmp(&a, &a_untouched, sizeof a) == 0);
    /* timers and deadlines with delays too large to represent */
    CHECK_ST(polyio_timer(rt, UINT64_MAX, 1), INVAL);
    CHECK_ST(polyio_timer(rt, (uint64_t)INT64_MAX + 1, 1), INVAL);
    uint64_t r = ud_next();
    REQUIRE_ST(polyio_read(rt, p.client, buf, sizeof buf, r), OK);
    CHECK_ST(polyio_deadline(rt, r, UINT64_MAX), INVAL);
    REQUIRE_ST(polyio_cancel(rt, r), OK);
    polyio_completion done_c;
    REQUIRE(WAIT_FOR(rt, r, &done_c));
    CHECK_ST(done_c.result, POLYIO_STATUS_CANCELED);

    /* None of the rejected calls posted a completion. */
    REQUIRE_ST(polyio_runtime_stats(rt, &st), OK);
    CHECK_EQ(st.in_flight, 0);
    CHECK_EQ(st.completions - before.completions, 1); /* the cancelled read */
    CHECK_EQ(reap_for(rt, 30), 0);
    CHECK_EQ(stash_count(rt, 1), 0);
done:
    close_pair(rt, &p);
    free_runtime(rt);
}

/* ---- tests: many ops, free and shutdown --------------------------------------------- */

typedef struct {
    size_t n_ops, n_reads, n_accepts, n_timers, n_conns;
    polyio_handle *conns;
    polyio_handle listener, idle_listener;
    uint8_t *bufs;
} many_ops;

#define MANY_BUF 64

/* Frees the test's memory; only after the runtime is freed or shut down (pending reads
 * point into m->bufs). */
static void many_free(many_ops *m) {
    free(m->conns);
    free(m->bufs);
    memset(m, 0, sizeof *m);
}

/* Puts n_ops operations in flight: 2 reads on each side of n_ops/10 idle connections,
 * n_ops/10 accepts on a listener nobody connects to, and long timers for the rest.
 * user_data = K_MANY | index, in submission order. */
static bool many_setup(polyio_runtime *rt, size_t n_ops, many_ops *m) {
    memset(m, 0, sizeof *m);
    size_t pairs = n_ops / 10;
    m->n_ops = n_ops;
    m->n_conns = 2 * pairs;
    m->n_reads = 2 * m->n_conns;
    m->n_accepts = n_ops / 10;
    m->n_timers = n_ops - m->n_reads - m->n_accepts;
    m->conns = calloc(m->n_conns ? m->n_conns : 1, sizeof *m->conns);
    m->bufs = malloc((m->n_reads ? m->n_reads : 1) * MANY_BUF);
    uint16_t port = 0, idle_port = 0;
    if (!CHECK(m->conns && m->bufs))
        return false;
    if (!listen_local(rt, 0, &m->listener, &port) || !listen_local(rt, 0, &m->idle_listener, &idle_port))
        return false;
    uint64_t base = atomic_fetch_add(&g_next_ud, 2 * pairs);
    for (size_t i = 0; i < pairs; i++) {
        if (!CHECK_ST(polyio_accept(rt, m->listener, base + 2 * i), OK) ||
            !CHECK_ST(polyio_tcp_connect(rt, "127.0.0.1", port, base + 2 * i + 1), OK))
            return false;
    }
    for (size_t i = 0; i < 2 * pairs; i++) {
        polyio_completion c;
        if (!WAIT_FOR(rt, base + i, &c) || !CHECK_ST(c.result, OK))
            return false;
        m->conns[i] = c.handle;
    }
    size_t idx = 0;
    for (size_t i = 0; i < m->n_reads; i++, idx++)
        if (!CHECK_ST(polyio_read(rt, m->conns[i / 2], m->bufs + i * MANY_BUF, MANY_BUF, UD_KIND(K_MANY) | idx), OK))
            return false;
    for (size_t i = 0; i < m->n_accepts; i++, idx++)
        if (!CHECK_ST(polyio_accept(rt, m->idle_listener, UD_KIND(K_MANY) | idx), OK))
            return false;
    for (size_t i = 0; i < m->n_timers; i++, idx++)
        if (!CHECK_ST(polyio_timer(rt, 60000 + i, UD_KIND(K_MANY) | idx), OK))
            return false;
    CHECK_EQ(idx, n_ops);
    if (!CHECK_EQ(in_flight(rt), n_ops))
        return false;
    /* Nothing of it can complete. */
    return CHECK_EQ(reap_for(rt, 20), 0);
}

static uint32_t many_op_of(const many_ops *m, size_t idx) {
    if (idx < m->n_reads)
        return POLYIO_OP_READ;
    if (idx < m->n_reads + m->n_accepts)
        return POLYIO_OP_ACCEPT;
    return POLYIO_OP_TIMER;
}

static size_t many_count(void) { return g_quick ? 200 : 1000; }

static void free_with_ops_in_flight(uint32_t backend) {
    many_ops m = {0};
    int fds_before = count_fds();
    polyio_runtime *rt = new_runtime(backend);
    REQUIRE(rt);
    REQUIRE(many_setup(rt, many_count(), &m));
    int fds_busy = count_fds();
    CHECK(fds_busy >= fds_before + (int)m.n_conns + 2);
done:
    /* Must return (the watchdog catches a hang), close every fd and leak nothing (asan and
     * valgrind check that at exit). */
    free_runtime(rt);
    many_free(&m);
    int fds_after = count_fds();
    if (!CHECK_EQ(fds_after, fds_before))
        fprintf(stderr, "  %d fds open before the runtime, %d after polyio_runtime_free\n", fds_before, fds_after);
}

static void test_free_in_flight_epoll(void) { free_with_ops_in_flight(POLYIO_BACKEND_EPOLL); }
static void test_free_in_flight_thread(void) { free_with_ops_in_flight(POLYIO_BACKEND_THREAD); }

static void test_shutdown_cancels_all(void) {
    many_ops m = {0};
    unsigned *seen = NULL;
    size_t total = 0;
    int fds_before = count_fds();
    polyio_runtime *rt = new_runtime(POLYIO_BACKEND_AUTO);
    REQUIRE(rt);
    REQUIRE(many_setup(rt, many_count(), &m));
    seen = calloc(m.n_ops, sizeof *seen);
    REQUIRE(seen);
    polyio_handle conn = m.conns[0], listener = m.listener;

    REQUIRE_ST(polyio_runtime_shutdown(rt), OK);
    CHECK_EQ(in_flight(rt), 0);
    /* Every op completes exactly once, with CANCELED. */
    int64_t deadline = now_ms() + WAIT_MS;
    for (;;) {
        polyio_completion batch[64];
        size_t n = pump_reap(rt, batch, 64, deadline);
        if (n == 0)
            break;
        for (size_t i = 0; i < n; i++) {
            uint64_t ud = batch[i].user_data;
            size_t idx = (size_t)UD_LOW(ud);
            if (!CHECK_EQ(ud >> 56, K_MANY) || !CHECK(idx < m.n_ops))
                continue;
            seen[idx]++;
            total++;
            if (!CHECK_ST(batch[i].result, POLYIO_STATUS_CANCELED) | !CHECK_EQ(batch[i].op, many_op_of(&m, idx)))
                fprintf(stderr, "  (op #%zu)\n", idx);
        }
    }
    CHECK_EQ(total, m.n_ops);
    size_t missing = 0, doubled = 0;
    for (size_t i = 0; i < m.n_ops; i++) {
        missing += seen[i] == 0;
        doubled += seen[i] > 1;
    }
    CHECK_EQ(missing, 0);
    CHECK_EQ(doubled, 0);

    /* Later submissions fail with SHUTDOWN and post nothing. */
    const polyio_status SHUT = POLYIO_STATUS_SHUTDOWN;
    uint8_t buf[8] = {0};
    polyio_handle h = 77;
    CHECK_ST(polyio_timer(rt, 0, 1), SHUT);
    CHECK_ST(polyio_tcp_connect(rt, "127.0.0.1", 9, 1), SHUT);
    CHECK_ST(polyio_tcp_listen(rt, "127.0.0.1", 0, 0, 0, &h), SHUT);
    CHECK_EQ(h, 77);
    CHECK_ST(polyio_read(rt, conn, buf, sizeof buf, 1), SHUT);
    CHECK_ST(polyio_write(rt, conn, buf, sizeof buf, 1), SHUT);
    CHECK_ST(polyio_shutdown(rt, conn, 1), SHUT);
    CHECK_ST(polyio_accept(rt, listener, 1), SHUT);
    /* Every connection and listener is closed. */
    CHECK_ST(polyio_close(rt, conn), POLYIO_STATUS_BAD_HANDLE);
    CHECK_ST(polyio_close(rt, listener), POLYIO_STATUS_BAD_HANDLE);
    CHECK_ST(polyio_cancel(rt, 1), POLYIO_STATUS_NOT_FOUND);
    polyio_completion c[4];
    CHECK_EQ(polyio_reap(rt, c, 4, 50), 0);
    CHECK_EQ(in_flight(rt), 0);
    CHECK_EQ(polyio_runtime_next_timeout_ms(rt), -1);
done:
    free_runtime(rt);
    many_free(&m);
    free(seen);
    int fds_after = count_fds();
    CHECK_EQ(fds_after, fds_before);
}

/* polyio_runtime_shutdown, then free without reaping the CANCELED completions. */
static void test_shutdown_then_free_unreaped(void) {
    many_ops m = {0};
    int fds_before = count_fds();
    polyio_runtime *rt = new_runtime(POLYIO_BACKEND_AUTO);
    REQUIRE(rt);
    REQUIRE(many_setup(rt, many_count(), &m));
    CHECK_ST(polyio_runtime_shutdown(rt), OK);
done:
    free_runtime(rt);
    many_free(&m);
    CHECK_EQ(count_fds(), fds_before);
}

/* ---- tests: the backend fd ---------------------------------------------------------- */

static void *wake_thread(void *arg) {
    polyio_runtime *rt = arg;
    for (int i = 0; i < 1000; i++)
        if (polyio_runtime_wake(rt) != OK)
            return (void *)1;
    return NULL;
}

static bool fd_readable(int fd, int timeout_ms) {
    struct pollfd pfd = {.fd = fd, .events = POLLIN, .revents = 0};
    int r;
    do
        r = poll(&pfd, 1, timeout_ms);
    while (r < 0 && errno == EINTR);
    return r == 1 && (pfd.revents & POLLIN);
}

static void wake_from_thread(uint32_t backend) {
    polyio_completion c[4];
    polyio_runtime *rt = new_runtime(backend);
    REQUIRE(rt);
    int fd = polyio_runtime_backend_fd(rt);
    REQUIRE(fd >= 0);
    CHECK_EQ(polyio_turn(rt, c, 4), 0);
    CHECK(!fd_readable(fd, 0)); /* idle: quiet, so a consumer's loop sleeps */
    for (int round = 0; round < 3; round++) {
        pthread_t th;
        void *ret = (void *)2;
        REQUIRE_EQ(pthread_create(&th, NULL, wake_thread, rt), 0);
        bool readable = fd_readable(fd, WAIT_MS);
        pthread_join(th, &ret);
        CHECK(ret == NULL);
        if (!CHECK(readable))
            fprintf(stderr, "  round %d: backend fd %d not readable after polyio_runtime_wake\n", round, fd);
        /* A turn consumes the (coalesced) wakes: the fd is quiet again. */
        CHECK_EQ(polyio_turn(rt, c, 4), 0);
        if (!CHECK(!fd_readable(fd, 0)))
            fprintf(stderr, "  round %d: backend fd still readable after a turn\n", round);
    }
done:
    free_runtime(rt);
}

static void test_wake_epoll(void) { wake_from_thread(POLYIO_BACKEND_EPOLL); }
static void test_wake_thread(void) { wake_from_thread(POLYIO_BACKEND_THREAD); }

static void foreign_loop(uint32_t backend) {
    tcp_pair p = {0};
    polyio_completion c;
    polyio_runtime *rt = new_runtime(backend);
    REQUIRE(rt);
    REQUIRE(make_pair_p(rt, &p, pump_poll));
    REQUIRE(echo_once(rt, &p, 64 * KiB, 11, pump_poll));
    REQUIRE(echo_once(rt, &p, MiB, 12, pump_poll));
    /* The connection is idle now: within a few turns the backend fd goes quiet (a fd
     * that stays readable with nothing to do would spin every consumer's loop). */
    int fd = polyio_runtime_backend_fd(rt), busy = 0;
    polyio_completion none[4];
    for (; busy < 5; busy++) {
        CHECK_EQ(polyio_turn(rt, none, 4), 0);
        if (!fd_readable(fd, 20))
            break;
    }
    CHECK(busy < 5);
    /* A timer, with nothing else in flight: only next_timeout_ms brings it, and the loop
     * sleeps until then instead of spinning. */
    polyio_stats s0, s1;
    REQUIRE_ST(polyio_runtime_stats(rt, &s0), OK);
    uint64_t t = ud_next();
    int64_t t0 = now_ns();
    REQUIRE_ST(polyio_timer(rt, 30, t), OK);
    REQUIRE(WAIT_FOR_P(rt, t, &c, pump_poll));
    CHECK_EQ(c.op, POLYIO_OP_TIMER);
    CHECK(now_ns() - t0 >= 30 * 1000000);
    REQUIRE_ST(polyio_runtime_stats(rt, &s1), OK);
    if (!CHECK(s1.turns - s0.turns <= 10))
        fprintf(stderr, "  %" PRIu64 " turns to wait for one 30 ms timer\n", s1.turns - s0.turns);
    /* A deadline, the same way. */
    uint8_t buf[8];
    uint64_t r = ud_next();
    REQUIRE_ST(polyio_read(rt, p.client, buf, sizeof buf, r), OK);
    REQUIRE_ST(polyio_deadline(rt, r, 20), OK);
    REQUIRE(WAIT_FOR_P(rt, r, &c, pump_poll));
    CHECK_ST(c.result, POLYIO_STATUS_TIMED_OUT);
done:
    close_pair(rt, &p);
    free_runtime(rt);
}

static void test_foreign_loop_epoll(void) { foreign_loop(POLYIO_BACKEND_EPOLL); }
static void test_foreign_loop_thread(void) { foreign_loop(POLYIO_BACKEND_THREAD); }

/* ---- tests: queues and the inline fast path ----------------------------------------- */

static void test_reads_in_order(void) {
    uint8_t msg[30], b[3][10];
    tcp_pair p = {0};
    polyio_completion c;
    polyio_runtime *rt = new_runtime(POLYIO_BACKEND_AUTO);
    REQUIRE(rt);
    REQUIRE(make_pair(rt, &p));
    fill_random(msg, sizeof msg, 5);
    uint64_t r[3];
    for (int i = 0; i < 3; i++) {
        r[i] = ud_next();
        REQUIRE_ST(polyio_read(rt, p.client, b[i], sizeof b[i], r[i]), OK);
    }
    REQUIRE(write_all(rt, p.server, msg, sizeof msg));
    /* Queued reads complete in submission order and see the stream in order. */
    size_t got = 0;
    for (int i = 0; i < 3; i++) {
        REQUIRE(WAIT_FOR(rt, r[i], &c));
        REQUIRE(c.result > 0 && c.result <= 10);
        CHECK(memcmp(b[i], msg + got, (size_t)c.result) == 0);
        got += (size_t)c.result;
    }
    uint8_t rest[30];
    if (got < sizeof msg) {
        REQUIRE(read_exact(rt, p.client, rest, sizeof msg - got));
        CHECK(memcmp(rest, msg + got, sizeof msg - got) == 0);
    }
done:
    close_pair(rt, &p);
    free_runtime(rt);
}

static void test_accepts_in_order(void) {
    polyio_handle l = 0, conns[6] = {0};
    uint16_t port = 0;
    polyio_runtime *rt = new_runtime(POLYIO_BACKEND_AUTO);
    REQUIRE(rt);
    REQUIRE(listen_local(rt, 0, &l, &port));
    uint64_t a[3];
    for (int i = 0; i < 3; i++) {
        a[i] = ud_next();
        REQUIRE_ST(polyio_accept(rt, l, a[i]), OK);
    }
    for (int i = 0; i < 3; i++)
        REQUIRE_ST(polyio_tcp_connect(rt, "127.0.0.1", port, ud_next()), OK);
    /* Accepts complete in submission order: collect completions in arrival order. */
    int next_accept = 0;
    for (int seen = 0; seen < 6;) {
        polyio_completion batch[8];
        size_t n = pump_reap(rt, batch, 8, now_ms() + WAIT_MS);
        REQUIRE(n > 0);
        for (size_t i = 0; i < n; i++, seen++) {
            REQUIRE(seen < 6);
            REQUIRE_ST(batch[i].result, OK);
            conns[seen] = batch[i].handle;
            if (batch[i].op == POLYIO_OP_ACCEPT) {
                REQUIRE(next_accept < 3);
                CHECK_EQ(batch[i].user_data, a[next_accept]);
                next_accept++;
            }
        }
    }
    CHECK_EQ(next_accept, 3);
done:
    for (int i = 0; i < 6; i++)
        close_handle(rt, &conns[i]);
    close_handle(rt, &l);
    free_runtime(rt);
}

/* An op whose kernel side is ready at submission completes in the submit call, flagged
 * INLINE: a read while bytes are buffered, a write with room in the socket buffer, an
 * accept with a connection pending. Each is made ready by a previous op of its kind that
 * left the socket ready (so the runtime knows without another turn). */
static void inline_fast_path(uint32_t backend) {
    uint8_t msg[200], got[200];
    tcp_pair p = {0};
    polyio_handle extra[2] = {0};
    polyio_completion c;
    polyio_stats s0, s1;
    polyio_runtime *rt = new_runtime(backend);
    REQUIRE(rt);
    REQUIRE(make_pair(rt, &p));
    fill_random(msg, sizeof msg, 8);
    REQUIRE(write_all(rt, p.server, msg, sizeof msg));
    REQUIRE(read_exact(rt, p.client, got, 100)); /* leaves 100 bytes buffered */

    uint64_t r = ud_next(), w = ud_next();
    REQUIRE_ST(polyio_runtime_stats(rt, &s0), OK);
    REQUIRE_ST(polyio_read(rt, p.client, got + 100, 100, r), OK);
    REQUIRE_ST(polyio_write(rt, p.server, msg, 10, w), OK);
    REQUIRE_ST(polyio_runtime_stats(rt, &s1), OK);
    CHECK_EQ(s1.turns, s0.turns); /* submissions run no turn */
    CHECK_EQ(s1.inline_completions - s0.inline_completions, 2);
    CHECK_EQ(s1.in_flight, 0);
    REQUIRE(WAIT_FOR(rt, r, &c));
    CHECK_EQ(c.result, 100);
    CHECK(c.flags & POLYIO_COMPLETION_INLINE);
    CHECK(memcmp(got, msg, sizeof msg) == 0);
    REQUIRE(WAIT_FOR(rt, w, &c));
    CHECK_EQ(c.result, 10);
    CHECK(c.flags & POLYIO_COMPLETION_INLINE);
    REQUIRE(read_exact(rt, p.client, got, 10));

    /* Two connections wait in the listener's queue; the first accept takes one, the second
     * finds the other at submission. */
    uint64_t k1 = ud_next(), k2 = ud_next(), a1 = ud_next(), a2 = ud_next();
    REQUIRE_ST(polyio_tcp_connect(rt, "127.0.0.1", p.port, k1), OK);
    REQUIRE_ST(polyio_tcp_connect(rt, "127.0.0.1", p.port, k2), OK);
    REQUIRE(WAIT_FOR(rt, k1, &c));
    REQUIRE_ST(c.result, OK);
    extra[0] = c.handle;
    REQUIRE(WAIT_FOR(rt, k2, &c));
    REQUIRE_ST(c.result, OK);
    extra[1] = c.handle;
    REQUIRE_ST(polyio_accept(rt, p.listener, a1), OK);
    REQUIRE(WAIT_FOR(rt, a1, &c));
    REQUIRE_ST(c.result, OK);
    polyio_handle s_a = c.handle;
    REQUIRE_ST(polyio_accept(rt, p.listener, a2), OK);
    REQUIRE(WAIT_FOR(rt, a2, &c));
    REQUIRE_ST(c.result, OK);
    CHECK(c.flags & POLYIO_COMPLETION_INLINE);
    CHECK_ST(polyio_close(rt, s_a), OK);
    CHECK_ST(polyio_close(rt, c.handle), OK);
done:
    close_handle(rt, &extra[0]);
    close_handle(rt, &extra[1]);
    close_pair(rt, &p);
    free_runtime(rt);
}

static void test_inline_epoll(void) { inline_fast_path(POLYIO_BACKEND_EPOLL); }
static void test_inline_thread(void) { inline_fast_path(POLYIO_BACKEND_THREAD); }

/* ---- tests: addresses and names ----------------------------------------------------- */

static void test_ipv6_loopback(void) {
    polyio_handle l = 0, conns[4] = {0};
    polyio_addr a;
    polyio_completion c;
    polyio_runtime *rt = new_runtime(POLYIO_BACKEND_AUTO);
    REQUIRE(rt);
    polyio_status st = polyio_tcp_listen(rt, "::1", 0, 0, 0, &l);
    if (st == POLYIO_STATUS_ADDRESS_NOT_AVAILABLE) {
        fprintf(stderr, "[%s] note: no IPv6 loopback here; skipped\n", g_test);
        goto done;
    }
    REQUIRE_ST(st, OK);
    REQUIRE_ST(polyio_tcp_local_addr(rt, l, &a), OK);
    CHECK_EQ(a.family, 6);
    CHECK(strcmp(a.ip, "::1") == 0);
    uint16_t port = a.port;
    /* Both spellings of the literal connect. */
    const char *hosts[] = {"::1", "[::1]"};
    for (int i = 0; i < 2; i++) {
        uint64_t k = ud_next(), acc = ud_next();
        REQUIRE_ST(polyio_accept(rt, l, acc), OK);
        REQUIRE_ST(polyio_tcp_connect(rt, hosts[i], port, k), OK);
        REQUIRE(WAIT_FOR(rt, k, &c));
        REQUIRE_ST(c.result, OK);
        conns[2 * i] = c.handle;
        REQUIRE(WAIT_FOR(rt, acc, &c));
        REQUIRE_ST(c.result, OK);
        conns[2 * i + 1] = c.handle;
        REQUIRE_ST(polyio_tcp_peer_addr(rt, conns[2 * i], &a), OK);
        CHECK_EQ(a.family, 6);
        CHECK(strcmp(a.ip, "::1") == 0);
        CHECK_EQ(a.port, port);
    }
done:
    for (int i = 0; i < 4; i++)
        close_handle(rt, &conns[i]);
    close_handle(rt, &l);
    free_runtime(rt);
}

/* Names resolve on the runtime's blocking pool; the result comes back through the backend fd. */
static void test_connect_by_name(void) {
    tcp_pair p = {0};
    polyio_handle conn = 0, srv = 0;
    polyio_completion c;
    polyio_runtime *rt = new_runtime(POLYIO_BACKEND_AUTO), *rt2 = NULL;
    REQUIRE(rt);
    REQUIRE(listen_local(rt, 0, &p.listener, &p.port));
    uint64_t k = ud_next(), a = ud_next();
    REQUIRE_ST(polyio_accept(rt, p.listener, a), OK);
    REQUIRE_ST(polyio_tcp_connect(rt, "localhost", p.port, k), OK);
    REQUIRE(WAIT_FOR_P(rt, k, &c, pump_poll)); /* through the fd, not a blocking reap */
    REQUIRE_ST(c.result, OK);
    conn = c.handle;
    REQUIRE(WAIT_FOR(rt, a, &c));
    REQUIRE_ST(c.result, OK);
    srv = c.handle;
    /* A name that does not resolve; a resolver that cannot answer in time is cut by the
     * deadline instead. Either way one completion. */
    k = ud_next();
    REQUIRE_ST(polyio_tcp_connect(rt, "no-such-host.invalid", 80, k), OK);
    polyio_status st = polyio_deadline(rt, k, 8000);
    CHECK(st == OK || st == POLYIO_STATUS_NOT_FOUND);
    REQUIRE(WAIT_FOR(rt, k, &c));
    if (!CHECK(c.result == POLYIO_STATUS_NAME_NOT_RESOLVED || c.result == POLYIO_STATUS_TIMED_OUT))
        fprintf(stderr, "  connect to no-such-host.invalid: %s\n", polyio_status_name((int32_t)c.result));
    CHECK_EQ(c.handle, POLYIO_HANDLE_NONE);
    CHECK_EQ(reap_for(rt, 20), 0);
    /* Freeing a runtime while a name is being resolved returns and leaks nothing. */
    rt2 = new_runtime(POLYIO_BACKEND_AUTO);
    REQUIRE(rt2);
    REQUIRE_ST(polyio_tcp_connect(rt2, "localhost", p.port, ud_next()), OK);
done:
    free_runtime(rt2);
    close_handle(rt, &conn);
    close_handle(rt, &srv);
    close_pair(rt, &p);
    free_runtime(rt);
}

/* ---- tests: several runtimes -------------------------------------------------------- */

/* SO_REUSEPORT: two runtimes (thread-per-core style) listen on one port; a third one's
 * connections are accepted by them, all driven from one poll() over the three backend fds. */
static void test_reuseport_across_runtimes(void) {
    polyio_runtime *rts[3] = {NULL, NULL, NULL};
    polyio_handle l[2] = {0}, conns[3][8];
    size_t n_conns[3] = {0};
    uint16_t port = 0;
    for (int i = 0; i < 3; i++) {
        rts[i] = new_runtime(POLYIO_BACKEND_AUTO);
        REQUIRE(rts[i]);
    }
    polyio_addr a;
    REQUIRE_ST(polyio_tcp_listen(rts[0], "127.0.0.1", 0, 0, POLYIO_LISTEN_REUSEPORT, &l[0]), OK);
    REQUIRE_ST(polyio_tcp_local_addr(rts[0], l[0], &a), OK);
    port = a.port;
    REQUIRE_ST(polyio_tcp_listen(rts[1], "127.0.0.1", port, 0, POLYIO_LISTEN_REUSEPORT, &l[1]), OK);
    polyio_handle h = 77;
    CHECK_ST(polyio_tcp_listen(rts[2], "127.0.0.1", port, 0, 0, &h), POLYIO_STATUS_ADDRESS_IN_USE);
    CHECK_EQ(h, 77);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++)
            REQUIRE_ST(polyio_accept(rts[i], l[i], ud_next()), OK);
    for (int j = 0; j < 4; j++)
        REQUIRE_ST(polyio_tcp_connect(rts[2], "127.0.0.1", port, ud_next()), OK);
    size_t accepted = 0, connected = 0;
    int64_t deadline = now_ms() + WAIT_MS;
    while ((accepted < 4 || connected < 4) && now_ms() < deadline) {
        struct pollfd pfd[3];
        int wait = (int)(deadline - now_ms());
        for (int i = 0; i < 3; i++) {
            pfd[i] = (struct pollfd){.fd = polyio_runtime_backend_fd(rts[i]), .events = POLLIN, .revents = 0};
            int32_t t = polyio_runtime_next_timeout_ms(rts[i]);
            if (t >= 0 && t < wait)
                wait = t;
        }
        if (wait < 0)
            wait = 0;
        poll(pfd, 3, wait);
        for (int i = 0; i < 3; i++) {
            polyio_completion batch[8];
            size_t n = polyio_turn(rts[i], batch, 8);
            for (size_t j = 0; j < n; j++) {
                REQUIRE_ST(batch[j].result, OK);
                REQUIRE(n_conns[i] < 8);
                conns[i][n_conns[i]++] = batch[j].handle;
                if (batch[j].op == POLYIO_OP_CONNECT)
                    connected++;
                else
                    accepted++;
            }
        }
    }
    CHECK_EQ(connected, 4);
    CHECK_EQ(accepted, 4);
done:
    for (int i = 0; i < 3; i++) {
        for (size_t j = 0; j < n_conns[i]; j++)
            close_handle(rts[i], &conns[i][j]);
        free_runtime(rts[i]); /* with the remaining accepts still pending */
    }
}

/* One runtime per thread, used concurrently (thread-per-core). */
static void *runtime_thread(void *arg) {
    uint64_t seed = (uint64_t)(uintptr_t)arg;
    tcp_pair p = {0};
    polyio_runtime *rt = new_runtime(seed % 2 ? POLYIO_BACKEND_EPOLL : POLYIO_BACKEND_THREAD);
    if (rt && make_pair(rt, &p)) {
        echo_once(rt, &p, 64 * KiB, seed, pump_reap);
        echo_once(rt, &p, MiB, seed + 1, pump_poll);
    }
    close_pair(rt, &p);
    free_runtime(rt);
    return NULL;
}

static void test_runtimes_on_threads(void) {
    pthread_t th[4];
    int started = 0;
    for (int i = 0; i < 4; i++) {
        if (!CHECK_EQ(pthread_create(&th[i], NULL, runtime_thread, (void *)(uintptr_t)(100 + i)), 0))
            break;
        started++;
    }
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
}

/* A runtime is used from one thread at a time, not necessarily the same one: created here,
 * driven by one thread, then another, then this one, and freed by a fourth. */
typedef struct {
    polyio_runtime *rt;
    tcp_pair *p;
    uint64_t seed;
    bool free_it;
} migrate_args;

static void *migrate_step(void *arg) {
    migrate_args *m = arg;
    if (m->free_it) {
        close_pair(m->rt, m->p);
        free_runtime(m->rt);
    } else {
        echo_once(m->rt, m->p, 64 * KiB, m->seed, m->seed % 2 ? pump_poll : pump_reap);
    }
    return NULL;
}

static void test_runtime_moves_between_threads(void) {
    static const uint32_t backends[] = {POLYIO_BACKEND_EPOLL, POLYIO_BACKEND_THREAD};
    for (size_t b = 0; b < 2; b++) {
        tcp_pair p = {0};
        polyio_runtime *rt = new_runtime(backends[b]);
        REQUIRE(rt);
        if (!make_pair(rt, &p)) {
            free_runtime(rt);
            goto done;
        }
        for (int step = 0; step < 3; step++) {
            migrate_args m = {.rt = rt, .p = &p, .seed = 200 + step, .free_it = step == 2};
            pthread_t th;
            if (!CHECK_EQ(pthread_create(&th, NULL, migrate_step, &m), 0)) {
                migrate_step(&m);
                continue;
            }
            pthread_join(th, NULL);
            if (step == 0)
                echo_once(rt, &p, 64 * KiB, 300, pump_reap); /* back on this thread */
        }
    }
done:;
}

/* ---- tests: waking ------------------------------------------------------------------ */

static polyio_runtime *_Atomic g_signal_rt;

static void on_usr1(int sig) {
    (void)sig;
    polyio_runtime *rt = atomic_load(&g_signal_rt);
    if (rt)
        polyio_runtime_wake(rt);
}

typedef struct {
    polyio_runtime *rt;
    pthread_t target; /* 0-filled: wake directly; else pthread_kill(target, SIGUSR1) */
    bool use_signal;
} waker_args;

static void *wake_soon(void *arg) {
    waker_args *w = arg;
    struct timespec ts = {0, 50 * 1000000};
    nanosleep(&ts, NULL);
    if (w->use_signal)
        pthread_kill(w->target, SIGUSR1);
    else
        polyio_runtime_wake(w->rt);
    return NULL;
}

/* polyio_reap blocked with nothing due returns (0) when another thread or a signal handler
 * calls polyio_runtime_wake: it does not sleep until its timeout. */
static void test_wake_interrupts_reap(void) {
    struct sigaction sa, old;
    bool installed = false;
    polyio_completion c[4];
    polyio_runtime *rt = new_runtime(POLYIO_BACKEND_AUTO);
    REQUIRE(rt);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    REQUIRE_EQ(sigaction(SIGUSR1, &sa, &old), 0);
    installed = true;
    atomic_store(&g_signal_rt, rt);
    uint64_t t = ud_next();
    REQUIRE_ST(polyio_timer(rt, 60000, t), OK);
    for (int round = 0; round < 2; round++) {
        waker_args w = {.rt = rt, .target = pthread_self(), .use_signal = round == 1};
        pthread_t th;
        REQUIRE_EQ(pthread_create(&th, NULL, wake_soon, &w), 0);
        int64_t t0 = now_ms();
        size_t n = polyio_reap(rt, c, 4, WAIT_MS);
        int64_t elapsed = now_ms() - t0;
        pthread_join(th, NULL);
        CHECK_EQ(n, 0);
        if (!CHECK(elapsed < WAIT_MS / 2))
            fprintf(stderr, "  %s: polyio_reap slept its whole timeout (%" PRId64 " ms)\n",
                    round ? "signal handler" : "thread", elapsed);
    }
    REQUIRE_ST(polyio_cancel(rt, t), OK);
    REQUIRE(WAIT_FOR(rt, t, &c[0]));
    CHECK_ST(c[0].result, POLYIO_STATUS_CANCELED);
done:
    atomic_store(&g_signal_rt, NULL);
    if (installed)
        sigaction(SIGUSR1, &old, NULL);
    free_runtime(rt);
}

/* The test binary defines read(): calls from the library resolve to it (a definition in the
 * executable takes precedence over libc's), and it forwards every call to the kernel. When
 * armed, it first calls polyio_runtime_wake(rt) at the first 8-byte read of an eventfd:
 * the moment a turn drains the runtime's wake eventfd. A wake from another thread or a
 * signal handler can land exactly there, but the window is far too narrow to hit on
 * purpose from outside; this puts it there every time. */
static polyio_runtime *_Atomic g_inject_rt;
static atomic_int g_injected;

static bool is_eventfd(int fd) {
    char path[64], target[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(path, target, sizeof target - 1);
    if (n < 0)
        return false;
    target[n] = '\0';
    return strcmp(target, "anon_inode:[eventfd]") == 0;
}

ssize_t read(int fd, void *buf, size_t count) {
    polyio_runtime *rt = atomic_load(&g_inject_rt);
    if (rt && count == 8 && is_eventfd(fd) && atomic_compare_exchange_strong(&g_inject_rt, &rt, NULL)) {
        polyio_runtime_wake(rt);
        atomic_fetch_add(&g_injected, 1);
    }
    return (ssize_t)syscall(SYS_read, fd, buf, count);
}

/* A wake that lands while a turn drains the eventfd must not leave the runtime deaf: the
 * next wake after that turn still makes the backend fd readable. */
static void wake_during_turn(uint32_t backend) {
    polyio_completion c[4];
    polyio_runtime *rt = new_runtime(backend);
    REQUIRE(rt);
    int fd = polyio_runtime_backend_fd(rt);
    for (int round = 0; round < 3; round++) {
        REQUIRE_ST(polyio_runtime_wake(rt), OK);
        REQUIRE(fd_readable(fd, WAIT_MS));
        atomic_store(&g_injected, 0);
        atomic_store(&g_inject_rt, rt);
        CHECK_EQ(polyio_turn(rt, c, 4), 0);
        atomic_store(&g_inject_rt, NULL);
        if (!CHECK_EQ(atomic_load(&g_injected), 1)) {
            fprintf(stderr, "  the turn read no eventfd: this test's read() hook no longer sees the drain; "
                            "update the test\n");
            goto done;
        }
        /* That turn may count the mid-turn wake as seen; a wake after it must be seen. */
        REQUIRE_ST(polyio_runtime_wake(rt), OK);
        if (!CHECK(fd_readable(fd, 1000)))
            fprintf(stderr, "  round %d: a wake after that turn left the backend fd quiet (a lost wakeup)\n", round);
        CHECK_EQ(polyio_turn(rt, c, 4), 0);
        CHECK(!fd_readable(fd, 0));
    }
done:
    atomic_store(&g_inject_rt, NULL);
    free_runtime(rt);
}

static void test_wake_during_turn_epoll(void) { wake_during_turn(POLYIO_BACKEND_EPOLL); }
static void test_wake_during_turn_thread(void) { wake_during_turn(POLYIO_BACKEND_THREAD); }

/* ---- tests: contract holes ---------------------------------------------------------- */

/* The application's own epoll, created before the runtime, lists every fd number the
 * runtime is about to take: each of its SPAN eventfds was registered, dup'd to a high
 * number (so the registration stays) and closed, leaving the low numbers free for the
 * runtime while the app's epoll still names them in its fdinfo (`tfd:`). All eventfds
 * share one inode, so neither the fd number nor an eventfd's inode tells the two epolls
 * apart. polyio_runtime_backend_fd must still be the runtime's epoll: a wake makes it
 * readable at once, and a reap with no time limit returns the accept that is ready (on
 * the app's epoll it would sleep until the watchdog below fails the run). */
static void test_backend_fd_not_app_epoll(void) {
    enum { SPAN = 64, HIGH_FD = 512 };
    int app_ep = -1, low[SPAN], high[SPAN], client = -1;
    polyio_runtime *rt = NULL;
    polyio_handle listener = POLYIO_HANDLE_NONE;
    polyio_completion c[4];
    for (int i = 0; i < SPAN; i++)
        low[i] = high[i] = -1;
    app_ep = epoll_create1(EPOLL_CLOEXEC);
    REQUIRE(app_ep >= 0);
    for (int i = 0; i < SPAN; i++) {
        low[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        REQUIRE(low[i] >= 0);
        struct epoll_event ev = {.events = EPOLLIN, .data = {.u64 = 0}};
        REQUIRE_EQ(epoll_ctl(app_ep, EPOLL_CTL_ADD, low[i], &ev), 0);
        high[i] = fcntl(low[i], F_DUPFD_CLOEXEC, HIGH_FD);
        REQUIRE(high[i] >= HIGH_FD);
    }
    for (int i = 0; i < SPAN; i++) {
        close(low[i]);
        low[i] = -1;
    }

    rt = new_runtime(POLYIO_BACKEND_AUTO);
    REQUIRE(rt);
    REQUIRE_EQ(polyio_runtime_backend(rt), POLYIO_BACKEND_EPOLL);
    int fd = polyio_runtime_backend_fd(rt);
    REQUIRE(fd != app_ep);

    /* A wake makes the backend fd readable without any wait. */
    REQUIRE_ST(polyio_runtime_wake(rt), OK);
    CHECK(fd_readable(fd, 0));
    CHECK_EQ(polyio_reap(rt, c, 4, 0), 0);

    /* A connection waiting on the listener: the reap returns its accept. */
    uint16_t port;
    REQUIRE(listen_local(rt, 16, &listener, &port));
    uint64_t ud = ud_next();
    REQUIRE_ST(polyio_accept(rt, listener, ud), OK);
    client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(client >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE_EQ(connect(client, (struct sockaddr *)&sin, sizeof sin), 0);
    alarm(g_quick ? 120 : 20); /* the run's watchdog, shortened: a missed wake hangs here */
    size_t n = polyio_reap(rt, c, 4, -1);
    REQUIRE_EQ(n, 1);
    CHECK_EQ(c[0].user_data, ud);
    CHECK_EQ(c[0].result, 0);
    CHECK(c[0].handle != POLYIO_HANDLE_NONE);
    close_handle(rt, &c[0].handle);
done:
    if (client >= 0)
        close(client);
    if (rt && listener != POLYIO_HANDLE_NONE)
        close_handle(rt, &listener);
    free_runtime(rt);
    for (int i = 0; i < SPAN; i++) {
        if (low[i] >= 0)
            close(low[i]);
        if (high[i] >= 0)
            close(high[i]);
    }
    if (app_ep >= 0)
        close(app_ep);
}

/* ---- tests: multi-shot read --------------------------------------------------------- */

/* Takes the completions of multi-shot read `ud` on `h` in order: appends each MORE chunk's
 * payload to buf (room for cap_total bytes; *got counts), checks the chunk is at most `cap`
 * bytes and releases it, until the one completion without MORE, which goes to *last.
 * Stops early (returns true, *last zeroed) once `until` bytes arrived, if `until` > 0. */
static bool multishot_collect(polyio_runtime *rt, polyio_handle h, uint64_t ud, size_t cap, uint8_t *buf,
                              size_t cap_total, size_t *got, size_t until, polyio_completion *last) {
    memset(last, 0, sizeof *last);
    for (;;) {
        if (until > 0 && *got >= until)
            return true;
        polyio_completion c;
        if (!WAIT_FOR(rt, ud, &c))
            return false;
        CHECK_EQ(c.op, POLYIO_OP_READ);
        CHECK_EQ(c.handle, h);
        if (!(c.flags & POLYIO_COMPLETION_MORE)) {
            CHECK(c.payload == NULL);
            CHECK_EQ(c.payload_len, 0);
            CHECK_EQ(c.payload_id, 0);
            *last = c;
            return true;
        }
        if (!CHECK(c.result > 0 && (size_t)c.result <= cap) || !CHECK(c.payload != NULL) ||
            !CHECK_EQ(c.payload_len, c.result) || !CHECK(c.payload_id != 0) ||
            !CHECK(*got + c.payload_len <= cap_total))
            return false;
        memcpy(buf + *got, c.payload, c.payload_len);
        *got += c.payload_len;
        CHECK_ST(polyio_buffer_release(c.payload_id), OK);
    }
}

/* One submission reads a stream in chunks of at most `cap`, every byte in order, each chunk
 * a MORE completion; end of stream then ends the operation with exactly one completion. */
static void multishot_in_order(uint32_t backend) {
    const size_t n = 200 * KiB, cap = 1000;
    uint8_t *tx = malloc(n), *rx = malloc(n);
    tcp_pair p = {0};
    polyio_completion c, last;
    size_t got = 0;
    polyio_runtime *rt = new_runtime(backend);
    REQUIRE(rt && tx && rx);
    REQUIRE(make_pair(rt, &p));
    fill_random(tx, n, 7);
    uint64_t ud = ud_next(), w1 = ud_next(), w2 = ud_next(), sd = ud_next();
    REQUIRE_ST(polyio_read_multishot(rt, p.server, cap, ud), OK);
    REQUIRE_ST(polyio_write(rt, p.client, tx, n / 2, w1), OK);
    REQUIRE_ST(polyio_write(rt, p.client, tx + n / 2, n - n / 2, w2), OK);
    REQUIRE_ST(polyio_shutdown(rt, p.client, sd), OK);
    REQUIRE(multishot_collect(rt, p.server, ud, cap, rx, n, &got, 0, &last));
    CHECK_EQ(last.result, 0); /* end of stream */
    CHECK_EQ(got, n);
    CHECK(memcmp(rx, tx, n) == 0);
    CHECK(got / cap >= 2); /* it did take several chunks */
    REQUIRE(WAIT_FOR(rt, w1, &c));
    REQUIRE(WAIT_FOR(rt, w2, &c));
    REQUIRE(WAIT_FOR(rt, sd, &c));
    CHECK_EQ(reap_for(rt, 20), 0); /* nothing after the last completion */
    CHECK_EQ(stash_count(rt, ud), 0);
    CHECK_EQ(in_flight(rt), 0);
    CHECK_ST(polyio_cancel(rt, ud), POLYIO_STATUS_NOT_FOUND);
done:
    close_pair(rt, &p);
    free_runtime(rt);
    free(tx);
    free(rx);
}

static void test_multishot_in_order_epoll(void) { multishot_in_order(POLYIO_BACKEND_EPOLL); }
static void test_multishot_in_order_thread(void) { multishot_in_order(POLYIO_BACKEND_THREAD); }

/* Cancel ends a multi-shot read with one CANCELED completion after its MORE ones; the bytes
 * it did not hand over stay for the next read: none are lost. A read queued behind it gets
 * the data after the cancel, in order. */
static void test_multishot_cancel_loses_nothing(void) {
    uint8_t msg[3000], got[3000];
    tcp_pair p = {0};
    polyio_completion c, last;
    size_t have = 0;
    polyio_runtime *rt = new_runtime(POLYIO_BACKEND_AUTO);
    REQUIRE(rt);
    REQUIRE(make_pair(rt, &p));
    fill_random(msg, sizeof msg, 11);
    uint64_t ud = ud_next(), r = ud_next(), w = ud_next();
    REQUIRE_ST(polyio_read_multishot(rt, p.server, 64, ud), OK);
    REQUIRE(write_all(rt, p.client, msg, 100));
    REQUIRE(multishot_collect(rt, p.server, ud, 64, got, sizeof got, &have, 100, &last));
    CHECK_EQ(have, 100);
    /* More bytes reach the socket, and the cancel comes before any turn reads them. */
    REQUIRE_ST(polyio_write(rt, p.client, msg + 100, sizeof msg - 100, w), OK);
    REQUIRE_ST(polyio_cancel(rt, ud), OK);
    REQUIRE(multishot_collect(rt, p.server, ud, 64, got, sizeof got, &have, 0, &last));
    CHECK_ST(last.result, POLYIO_STATUS_CANCELED);
    CHECK_ST(polyio_cancel(rt, ud), POLYIO_STATUS_NOT_FOUND);
    REQUIRE(WAIT_FOR(rt, w, &c));
    CHECK_EQ(c.result, (int64_t)(sizeof msg - 100));
    /* A single read takes up the rest. */
    if (have < sizeof msg)
        REQUIRE(read_exact(rt, p.server, got + have, sizeof msg - have));
    CHECK(memcmp(got, msg, sizeof msg) == 0);
    /* A read queued behind a multi-shot one waits until the multi-shot one ends. */
    uint8_t b[16] = {0};
    REQUIRE_ST(polyio_read_multishot(rt, p.server, 64, ud), OK);
    REQUIRE_ST(polyio_read(rt, p.server, b, sizeof b, r), OK);
    REQUIRE(write_all(rt, p.client, (const uint8_t *)"to the multishot", 16));
    have = 0;
    REQUIRE(multishot_collect(rt, p.server, ud, 64, got, sizeof got, &have, 16, &last));
    CHECK(memcmp(got, "to the multishot", 16) == 0);
    CHECK_EQ(stash_count(rt, r), 0);
    REQUIRE_ST(polyio_cancel(rt, ud), OK);
    REQUIRE(multishot_collect(rt, p.server, ud, 64, got, sizeof got, &have, 0, &last));
    CHECK_ST(last.result, POLYIO_STATUS_CANCELED);
    REQUIRE(write_all(rt, p.client, (const uint8_t *)"to the read", 11));
    REQUIRE(WAIT_FOR(rt, r, &c));
    CHECK_EQ(c.result, 11);
    CHECK(memcmp(b, "to the read", 11) == 0);
    CHECK(c.payload == NULL && c.payload_id == 0);
    CHECK_EQ(in_flight(rt), 0);
done:
    close_pair(rt, &p);
    free_runtime(rt);
}

/* A deadline ends a multi-shot read with TIMED_OUT, close with CANCELED, a reset peer with
 * an error or end of stream: each with exactly one completion without MORE. */
static void test_multishot_deadline_close_reset(void) {
    uint8_t got[256];
    size_t have = 0;
    tcp_pair p = {0};
    polyio_completion last;
    polyio_runtime *rt = new_runtime(POLYIO_BACKEND_AUTO);
    REQUIRE(rt);
    REQUIRE(make_pair(rt, &p));
    uint64_t d = ud_next(), s = ud_next(), k = ud_next();
    REQUIRE_ST(polyio_read_multishot(rt, p.client, 64, d), OK);
    REQUIRE_ST(polyio_deadline(rt, d, 30), OK);
    REQUIRE(multishot_collect(rt, p.client, d, 64, got, sizeof got, &have, 0, &last));
    CHECK_ST(last.result, POLYIO_STATUS_TIMED_OUT);
    CHECK_EQ(have, 0);
    polyio_handle server = p.server;
    REQUIRE_ST(polyio_read_multishot(rt, server, 64, s), OK);
    REQUIRE(write_all(rt, p.client, (const uint8_t *)"before close", 12));
    REQUIRE(multishot_collect(rt, server, s, 64, got, sizeof got, &have, 12, &last));
    CHECK(memcmp(got, "before close", 12) == 0);
    close_handle(rt, &p.server);
    REQUIRE(multishot_collect(rt, server, s, 64, got, sizeof got, &have, 0, &last));
    CHECK_ST(last.result, POLYIO_STATUS_CANCELED);
    CHECK_EQ(have, 12);
    /* The closed side's reset (or end of stream) ends the peer's multi-shot read. */
    REQUIRE_ST(polyio_read_multishot(rt, p.client, 64, k), OK);
    have = 0;
    REQUIRE(multishot_collect(rt, p.client, k, 64, got, sizeof got, &have, 0, &last));
    CHECK(last.result <= 0);
    CHECK_EQ(reap_for(rt, 20), 0);
    CHECK_EQ(in_flight(rt), 0);
done:
    close_pair(rt, &p);
    free_runtime(rt);
}

/* A hostile caller: submit errors post nothing; releasing id 0, an id never given out, or
 * one twice changes nothing; a payload stays readable past close and past the runtime's
 * free, and is released once after. */
static void test_multishot_hostile_releases(void) {
    tcp_pair p = {0};
    polyio_completion c, kept = {0};
    polyio_runtime *rt = new_runtime(POLYIO_BACKEND_AUTO);
    REQUIRE(rt);
    REQUIRE(make_pair(rt, &p));
    uint64_t bad = ud_next();
    CHECK_ST(polyio_read_multishot(NULL, p.server, 64, bad), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_read_multishot(rt, p.server, 0, bad), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_read_multishot(rt, p.server, (size_t)PTRDIFF_MAX + 1, bad), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_read_multishot(rt, p.listener, 64, bad), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_read_multishot(rt, p.server ^ 0x10000, 64, bad), POLYIO_STATUS_BAD_HANDLE);
    CHECK_ST(polyio_read_multishot(rt, POLYIO_HANDLE_NONE, 64, bad), POLYIO_STATUS_BAD_HANDLE);
    CHECK_EQ(reap_for(rt, 20), 0);
    CHECK_EQ(stash_count(rt, bad), 0);
    CHECK_ST(polyio_buffer_release(0), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_buffer_release(UINT64_MAX), POLYIO_STATUS_NOT_FOUND);

    uint64_t ud = ud_next();
    REQUIRE_ST(polyio_read_multishot(rt, p.server, 64, ud), OK);
    REQUIRE(write_all(rt, p.client, (const uint8_t *)"first", 5));
    REQUIRE(WAIT_FOR(rt, ud, &c));
    REQUIRE(c.flags & POLYIO_COMPLETION_MORE);
    REQUIRE_EQ(c.payload_len, 5);
    CHECK(memcmp(c.payload, "first", 5) == 0);
    CHECK_ST(polyio_buffer_release(c.payload_id), OK);
    CHECK_ST(polyio_buffer_release(c.payload_id), POLYIO_STATUS_NOT_FOUND);

    REQUIRE(write_all(rt, p.client, (const uint8_t *)"second", 6));
    REQUIRE(WAIT_FOR(rt, ud, &kept));
    REQUIRE(kept.flags & POLYIO_COMPLETION_MORE);
    REQUIRE_EQ(kept.payload_len, 6);
    CHECK(kept.payload_id != c.payload_id);
    close_pair(rt, &p);
    REQUIRE(WAIT_FOR(rt, ud, &c));
    CHECK_ST(c.result, POLYIO_STATUS_CANCELED);
    CHECK(!(c.flags & POLYIO_COMPLETION_MORE));
    free_runtime(rt);
    rt = NULL;
    CHECK(memcmp(kept.payload, "second", 6) == 0);
    CHECK_ST(polyio_buffer_release(kept.payload_id), OK);
    CHECK_ST(polyio_buffer_release(kept.payload_id), POLYIO_STATUS_NOT_FOUND);
    kept.payload_id = 0;
done:
    if (kept.payload_id != 0)
        polyio_buffer_release(kept.payload_id);
    close_pair(rt, &p);
    free_runtime(rt);
}

/* ---- tests: name lookups ------------------------------------------------------------ */

/* The length of a lookup's list. */
static size_t list_len(const polyio_addrinfo *ai) {
    size_t n = 0;
    for (; ai; ai = ai->next)
        n++;
    return n;
}

static void test_getaddrinfo_localhost(void) {
    polyio_addrinfo *list = NULL;
    struct addrinfo *sys = NULL;
    polyio_completion c;
    polyio_runtime *rt = new_runtime(POLYIO_BACKEND_AUTO);
    REQUIRE(rt);
    polyio_lookup_hints hints = {.socktype = SOCK_STREAM, .flags = AI_CANONNAME};
    uint64_t ud = ud_next();
    REQUIRE_ST(polyio_getaddrinfo(rt, "localhost", "8080", &hints, ud), OK);
    REQUIRE(WAIT_FOR_P(rt, ud, &c, pump_poll));
    list = c.addrinfo;
    CHECK_EQ(c.op, POLYIO_OP_LOOKUP);
    REQUIRE(c.result > 0);
    CHECK_EQ(c.handle, POLYIO_HANDLE_NONE);
    CHECK_EQ(list_len(list), (size_t)c.result);
    /* The same addresses, in the same order, as the system's getaddrinfo. */
    struct addrinfo want = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_CANONNAME};
    REQUIRE_EQ(getaddrinfo("localhost", "8080", &want, &sys), 0);
    CHECK(list->canonname != NULL && strcmp(list->canonname, "localhost") == 0);
    const struct addrinfo *s = sys;
    for (const polyio_addrinfo *a = list; a; a = a->next, s = s->ai_next) {
        REQUIRE(s != NULL);
        CHECK_EQ(a->family, s->ai_family);
        CHECK_EQ(a->socktype, SOCK_STREAM);
        CHECK_EQ(a->protocol, s->ai_protocol);
        CHECK_EQ(a->addr.port, 8080);
        char ip[INET6_ADDRSTRLEN] = "";
        const void *src = s->ai_family == AF_INET ? (const void *)&((struct sockaddr_in *)s->ai_addr)->sin_addr
                                                  : (const void *)&((struct sockaddr_in6 *)s->ai_addr)->sin6_addr;
        inet_ntop(s->ai_family, src, ip, sizeof ip);
        CHECK(strcmp(a->addr.ip, ip) == 0);
        CHECK_EQ(a->addr.family, s->ai_family == AF_INET ? 4 : 6);
        if (a != list)
            CHECK(a->canonname == NULL);
    }
    CHECK(s == NULL);
    /* Only a LOOKUP carries a list; a failed lookup none. */
    polyio_lookup_hints numeric = {.flags = AI_NUMERICHOST};
    ud = ud_next();
    REQUIRE_ST(polyio_getaddrinfo(rt, "no-such-host.invalid", NULL, &numeric, ud), OK);
    REQUIRE(WAIT_FOR(rt, ud, &c));
    CHECK_ST(c.result, POLYIO_STATUS_NAME_NOT_RESOLVED);
    CHECK(c.addrinfo == NULL);
    /* No host, a service: the loopback addresses; NULL hints are all 0. */
    ud = ud_next();
    REQUIRE_ST(polyio_getaddrinfo(rt, NULL, "80", NULL, ud), OK);
    REQUIRE(WAIT_FOR(rt, ud, &c));
    CHECK(c.result > 0);
    CHECK(c.addrinfo != NULL);
    polyio_addrinfo_free(c.addrinfo);
    CHECK_EQ(reap_for(rt, 10), 0);
done:
    polyio_addrinfo_free(list);
    polyio_addrinfo_free(NULL);
    if (sys)
        freeaddrinfo(sys);
    free_runtime(rt);
}

/* Issue 9, hole 5: one rule for every host argument, and listen looks up no names. */
static void test_garbage_hosts(void) {
    char *huge = NULL;
    polyio_handle l = 0;
    polyio_runtime *rt = new_runtime(POLYIO_BACKEND_AUTO);
    REQUIRE(rt);
    huge = malloc(1 << 20);
    REQUIRE(huge);
    memset(huge, 'a', (1 << 20) - 1);
    huge[(1 << 20) - 1] = '\0';
    char label64[80], len254[300], longest[300];
    memset(label64, 'a', 64);
    strcpy(label64 + 64, ".com");
    for (int i = 0; i < 127; i++)
        memcpy(len254 + 2 * i, "a.", 2);
    strcpy(len254 + 252, "xy"); /* 254 bytes, labels of 1 */
    for (int i = 0; i < 126; i++)
        memcpy(longest + 2 * i, "a.", 2);
    strcpy(longest + 252, "x"); /* 253 bytes */
    CHECK_EQ(strlen(longest), POLYIO_MAX_HOST_LEN);
    const char *bad[] = {"", huge, label64, len254, "b\xc3\xbc" "cher.example", "\xff\xfe", "has space", "a..b", "."};
    polyio_lookup_hints numeric = {.flags = AI_NUMERICHOST};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        polyio_handle h = 0;
        if (!CHECK_ST(polyio_getaddrinfo(rt, bad[i], NULL, &numeric, ud_next()), POLYIO_STATUS_INVALID_ARGUMENT) ||
            !CHECK_ST(polyio_tcp_connect(rt, bad[i], 80, ud_next()), POLYIO_STATUS_INVALID_ARGUMENT) ||
            !CHECK_ST(polyio_tcp_listen(rt, bad[i], 0, 0, 0, &h), POLYIO_STATUS_INVALID_ARGUMENT))
            fprintf(stderr, "  host #%zu (%zu bytes)\n", i, strlen(bad[i]));
        CHECK_EQ(h, 0);
    }
    CHECK_ST(polyio_getaddrinfo(NULL, "localhost", NULL, NULL, ud_next()), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_getaddrinfo(rt, NULL, NULL, NULL, ud_next()), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_getaddrinfo(rt, "localhost", "", NULL, ud_next()), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_getaddrinfo(rt, "localhost", huge, NULL, ud_next()), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_tcp_connect(rt, NULL, 80, ud_next()), POLYIO_STATUS_INVALID_ARGUMENT);
    /* A submit that fails posts nothing. */
    CHECK_EQ(in_flight(rt), 0);
    CHECK_EQ(reap_for(rt, 10), 0);
    /* The longest name is well-formed: it fails in its completion (asked numerically, so no
     * server is asked), as does any name that does not resolve. */
    polyio_completion c;
    uint64_t ud = ud_next();
    REQUIRE_ST(polyio_getaddrinfo(rt, longest, NULL, &numeric, ud), OK);
    REQUIRE(WAIT_FOR(rt, ud, &c));
    CHECK_ST(c.result, POLYIO_STATUS_NAME_NOT_RESOLVED);
    /* Listen: IP literals and "localhost" (127.0.0.1), never a lookup. */
    polyio_addr a;
    REQUIRE_ST(polyio_tcp_listen(rt, "localhost", 0, 0, 0, &l), OK);
    REQUIRE_ST(polyio_tcp_local_addr(rt, l, &a), OK);
    CHECK(strcmp(a.ip, "127.0.0.1") == 0);
    CHECK_ST(polyio_tcp_listen(rt, "example.com", 0, 0, 0, &l), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_tcp_listen(rt, "localhost.localdomain", 0, 0, 0, &l), POLYIO_STATUS_INVALID_ARGUMENT);
done:
    if (l)
        CHECK_ST(polyio_close(rt, l), OK);
    free(huge);
    free_runtime(rt);
}

/* A runtime whose resolver waits `ms` before each lookup (the POLYIO_TEST_LOOKUP_DELAY_MS
 * hook, read when a runtime is created). */
static polyio_runtime *slow_resolver_runtime(uint32_t backend, const char *ms) {
    setenv("POLYIO_TEST_LOOKUP_DELAY_MS", ms, 1);
    polyio_runtime *rt = new_runtime(backend);
    unsetenv("POLYIO_TEST_LOOKUP_DELAY_MS");
    return rt;
}

static void test_lookup_cancel_and_deadline(void) {
    polyio_completion c;
    polyio_runtime *rt = slow_resolver_runtime(POLYIO_BACKEND_AUTO, "60000");
    REQUIRE(rt);
    uint64_t a = ud_next(), b = ud_next(), k = ud_next();
    REQUIRE_ST(polyio_getaddrinfo(rt, "localhost", "80", NULL, a), OK);
    REQUIRE_ST(polyio_getaddrinfo(rt, "localhost", "80", NULL, b), OK);
    REQUIRE_ST(polyio_tcp_connect(rt, "localhost", 80, k), OK);
    REQUIRE_ST(polyio_cancel(rt, a), OK);
    REQUIRE_ST(polyio_deadline(rt, b, 20), OK);
    REQUIRE_ST(polyio_deadline(rt, k, 20), OK);
    REQUIRE(WAIT_FOR(rt, a, &c));
    CHECK_EQ(c.op, POLYIO_OP_LOOKUP);
    CHECK_ST(c.result, POLYIO_STATUS_CANCELED);
    CHECK(c.addrinfo == NULL);
    REQUIRE(WAIT_FOR(rt, b, &c));
    CHECK_ST(c.result, POLYIO_STATUS_TIMED_OUT);
    CHECK(c.addrinfo == NULL);
    REQUIRE(WAIT_FOR(rt, k, &c));
    CHECK_EQ(c.op, POLYIO_OP_CONNECT);
    CHECK_ST(c.result, POLYIO_STATUS_TIMED_OUT);
    CHECK_EQ(in_flight(rt), 0);
    CHECK_EQ(reap_for(rt, 10), 0);
done:
    free_runtime(rt);
}

/* Issue 9, hole 2: with 100 connects by name and 100 lookups pending on a resolver that
 * takes 3 s, shutdown and free return at once (they took 6 s when tokio's blocking pool was
 * joined); every op completes exactly once, CANCELED. */
static void shutdown_with_slow_lookups(uint32_t backend) {
    enum { N = 100 };
    polyio_completion out[64];
    bool seen[2 * N] = {false};
    uint64_t base = 0;
    polyio_runtime *rt = slow_resolver_runtime(backend, "3000");
    REQUIRE(rt);
    base = ud_next();
    for (int i = 0; i < 2 * N; i++)
        ud_next();
    for (int i = 0; i < N; i++) {
        REQUIRE_ST(polyio_tcp_connect(rt, "localhost", 80, base + (uint64_t)i), OK);
        REQUIRE_ST(polyio_getaddrinfo(rt, "localhost", "80", NULL, base + N + (uint64_t)i), OK);
    }
    CHECK_EQ(polyio_turn(rt, out, 64), 0);
    int64_t t0 = now_ms();
    REQUIRE_ST(polyio_runtime_shutdown(rt), OK);
    size_t got = 0, n;
    while ((n = polyio_turn(rt, out, 64)) > 0) {
        for (size_t i = 0; i < n; i++) {
            uint64_t j = out[i].user_data - base;
            if (!CHECK(j < 2 * N) || !CHECK(!seen[j]))
                continue;
            seen[j] = true;
            CHECK_ST(out[i].result, POLYIO_STATUS_CANCELED);
            CHECK_EQ(out[i].op, j < N ? POLYIO_OP_CONNECT : POLYIO_OP_LOOKUP);
            CHECK(out[i].addrinfo == NULL);
        }
        got += n;
    }
    CHECK_EQ(got, 2 * N);
    polyio_runtime_free(rt);
    rt = NULL;
    int64_t ms = now_ms() - t0;
    if (!CHECK(ms < 1000)) /* a generous guard: each lookup is held 3 s */
        fprintf(stderr, "  shutdown and free took %" PRId64 " ms\n", ms);
    /* Free with the lookups still pending, no shutdown first. */
    rt = slow_resolver_runtime(backend, "3000");
    REQUIRE(rt);
    for (int i = 0; i < N; i++)
        REQUIRE_ST(polyio_tcp_connect(rt, "localhost", 80, ud_next()), OK);
    t0 = now_ms();
    polyio_runtime_free(rt);
    rt = NULL;
    ms = now_ms() - t0;
    if (!CHECK(ms < 1000))
        fprintf(stderr, "  free took %" PRId64 " ms\n", ms);
done:
    if (rt)
        free_runtime(rt);
}

static void test_shutdown_slow_lookups_epoll(void) { shutdown_with_slow_lookups(POLYIO_BACKEND_EPOLL); }
static void test_shutdown_slow_lookups_thread(void) { shutdown_with_slow_lookups(POLYIO_BACKEND_THREAD); }

/* ---- main --------------------------------------------------------------------------- */

/* ---- contract holes: partial writes, remembered wakes, completed-but-unreaped ops, bounds -- */

/* A write canceled after part of it went out says how much did, so framing never breaks
 * silently: the peer receives exactly `partial` bytes. */
static void test_partial_write_reports_bytes(void) {
    tcp_pair p = {0};
    polyio_completion c;
    uint8_t *big = NULL, *got = NULL;
    const size_t len = 16 * MiB;
    polyio_runtime *rt = new_runtime(POLYIO_BACKEND_AUTO);
    REQUIRE(rt);
    REQUIRE(make_pair(rt, &p));
    big = malloc(len);
    got = malloc(len);
    REQUIRE(big && got);
    fill_random(big, len, 7);
    uint64_t w = ud_next(), t = ud_next();
    REQUIRE_ST(polyio_write(rt, p.client, big, len, w), OK);
    REQUIRE_ST(polyio_timer(rt, 20, t), OK); /* let the kernel take what it will */
    REQUIRE(WAIT_FOR(rt, t, &c));
    REQUIRE_ST(polyio_cancel(rt, w), OK);
    REQUIRE(WAIT_FOR(rt, w, &c));
    CHECK_ST(c.result, POLYIO_STATUS_CANCELED);
    CHECK(c.flags & POLYIO_COMPLETION_PARTIAL);
    REQUIRE(c.partial > 0 && c.partial < len);
    uint64_t sent = c.partial;
    close_handle(rt, &p.client);
    size_t have = 0;
    for (;;) {
        uint64_t r = ud_next();
        REQUIRE_ST(polyio_read(rt, p.server, got + have, len - have, r), OK);
        REQUIRE(WAIT_FOR(rt, r, &c));
        if (c.result <= 0)
            break;
        have += (size_t)c.result;
    }
    CHECK_EQ(have, sent);
    CHECK(memcmp(got, big, have) == 0);
done:
    close_pair(rt, &p);
    free_runtime(rt);
    free(big);
    free(got);
}

/* A wake made while nobody reaps is remembered by the next reap, even after a turn. */
static void test_wake_remembered(void) {
    polyio_completion c[4];
    polyio_runtime *rt = new_runtime(POLYIO_BACKEND_AUTO);
    REQUIRE(rt);
    uint64_t t = ud_next();
    REQUIRE_ST(polyio_timer(rt, 60000, t), OK);
    REQUIRE_ST(polyio_runtime_wake(rt), OK);
    CHECK_EQ(polyio_turn(rt, c, 4), 0);
    alarm(g_quick ? 120 : 20); /* a forgotten wake sleeps here forever */
    CHECK_EQ(polyio_reap(rt, c, 4, -1), 0);
    CHECK_EQ(polyio_reap(rt, c, 4, 10), 0); /* consumed: this one waits its timeout */
    REQUIRE_ST(polyio_cancel(rt, t), OK);
    REQUIRE(WAIT_FOR(rt, t, &c[0]));
    CHECK_ST(c[0].result, POLYIO_STATUS_CANCELED);
done:
    free_runtime(rt);
}

/* Cancel or deadline of an op that completed but is not reaped yet: NOT_FOUND, and the
 * completion stands. */
static void test_cancel_completed_unreaped(void) {
    polyio_completion c[4];
    polyio_runtime *rt = new_runtime(POLYIO_BACKEND_AUTO);
    REQUIRE(rt);
    uint64_t t = ud_next();
    REQUIRE_ST(polyio_timer(rt, 0, t), OK);
    CHECK_EQ(polyio_turn(rt, c, 0), 0); /* fired, not handed out */
    CHECK_ST(polyio_cancel(rt, t), POLYIO_STATUS_NOT_FOUND);
    CHECK_ST(polyio_deadline(rt, t, 0), POLYIO_STATUS_NOT_FOUND);
    REQUIRE_EQ(polyio_turn(rt, c, 4), 1);
    CHECK_EQ(c[0].user_data, t);
    CHECK_EQ(c[0].result, 0);
    CHECK_EQ(c[0].flags & POLYIO_COMPLETION_PARTIAL, 0);
done:
    free_runtime(rt);
}

static void test_keepalive_bounds(void) {
    tcp_pair p = {0};
    polyio_runtime *rt = new_runtime(POLYIO_BACKEND_AUTO);
    REQUIRE(rt);
    REQUIRE(make_pair(rt, &p));
    CHECK_ST(polyio_tcp_keepalive(rt, p.client, true, 1), OK);
    CHECK_ST(polyio_tcp_keepalive(rt, p.client, true, 32767), OK);
    CHECK_ST(polyio_tcp_keepalive(rt, p.client, true, 0), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_tcp_keepalive(rt, p.client, true, 32768), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_tcp_keepalive(rt, p.client, true, UINT32_MAX), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_tcp_keepalive(rt, p.client, false, UINT32_MAX), OK);
done:
    close_pair(rt, &p);
    free_runtime(rt);
}

/* ---- Unix domain sockets ------------------------------------------------------------ */

/* A fresh directory for socket files (removed by the test). */
static bool make_temp_dir(char *dir, size_t cap) {
    snprintf(dir, cap, "/tmp/polyio-c-XXXXXX");
    return CHECK(mkdtemp(dir) != NULL);
}

static bool path_exists(const char *path) { return access(path, F_OK) == 0; }

/* Listens on `path` (len bytes), accepts and connects; fills `p` (port 0). */
static bool make_unix_pair(polyio_runtime *rt, const char *path, size_t len, tcp_pair *p) {
    memset(p, 0, sizeof *p);
    if (!CHECK_ST(polyio_unix_listen(rt, path, len, 0, 0, &p->listener), OK))
        return false;
    uint64_t ua = ud_next(), uc = ud_next();
    polyio_completion ca, cc;
    if (!CHECK_ST(polyio_accept(rt, p->listener, ua), OK) || !CHECK_ST(polyio_unix_connect(rt, path, len, uc), OK))
        return false;
    if (!WAIT_FOR(rt, uc, &cc) || !WAIT_FOR(rt, ua, &ca))
        return false;
    CHECK_EQ(cc.op, POLYIO_OP_CONNECT);
    if (!CHECK_ST(cc.result, OK) || !CHECK_ST(ca.result, OK))
        return false;
    p->client = cc.handle;
    p->server = ca.handle;
    return true;
}

static void unix_echo(uint32_t backend) {
    char dir[64], path[128], got[POLYIO_UNIX_PATH_MAX + 1];
    uint8_t *data = malloc(256 * KiB), *back = malloc(256 * KiB);
    tcp_pair p = {0};
    size_t len = 0;
    polyio_runtime *rt = new_runtime(backend);
    REQUIRE(rt && data && back && make_temp_dir(dir, sizeof dir));
    snprintf(path, sizeof path, "%s/echo.sock", dir);
    REQUIRE(make_unix_pair(rt, path, strlen(path), &p));
    REQUIRE(path_exists(path));
    fill_random(data, 256 * KiB, 11);
    uint64_t uw = ud_next();
    polyio_completion cw;
    REQUIRE_ST(polyio_write(rt, p.client, data, 256 * KiB, uw), OK);
    REQUIRE(read_exact(rt, p.server, back, 256 * KiB));
    REQUIRE(WAIT_FOR(rt, uw, &cw));
    CHECK_EQ(cw.result, (int64_t)(256 * KiB));
    CHECK(memcmp(data, back, 256 * KiB) == 0);
    REQUIRE(write_all(rt, p.server, back, 1000));
    REQUIRE(read_exact(rt, p.client, data, 1000));
    CHECK(memcmp(data, back, 1000) == 0);

    /* Paths: the listener and the accepted end carry the path, the client is unnamed. */
    memset(got, 'x', sizeof got);
    REQUIRE_ST(polyio_unix_local_path(rt, p.listener, got, sizeof got, &len), OK);
    CHECK_EQ(len, strlen(path));
    CHECK(strcmp(got, path) == 0);
    REQUIRE_ST(polyio_unix_peer_path(rt, p.client, got, sizeof got, &len), OK);
    CHECK(len == strlen(path) && memcmp(got, path, len) == 0);
    REQUIRE_ST(polyio_unix_local_path(rt, p.client, got, sizeof got, &len), OK);
    CHECK_EQ(len, 0);
    CHECK_EQ(got[0], 0);
    CHECK_ST(polyio_unix_peer_path(rt, p.listener, got, sizeof got, &len), POLYIO_STATUS_NOT_CONNECTED);

    /* Peer credentials: both ends are this process. */
    polyio_peercred cred = {-1, 0, 0};
    REQUIRE_ST(polyio_unix_peercred(rt, p.client, &cred), OK);
    CHECK_EQ(cred.pid, getpid());
    CHECK_EQ(cred.uid, getuid());
    CHECK_EQ(cred.gid, getgid());
    REQUIRE_ST(polyio_unix_peercred(rt, p.server, &cred), OK);
    CHECK_EQ(cred.pid, getpid());
    CHECK_ST(polyio_unix_peercred(rt, p.listener, &cred), POLYIO_STATUS_NOT_CONNECTED);

    /* TCP-only calls say INVALID_ARGUMENT. */
    polyio_addr a;
    CHECK_ST(polyio_tcp_nodelay(rt, p.client, true), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_tcp_keepalive(rt, p.client, true, 10), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_tcp_local_addr(rt, p.client, &a), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_tcp_peer_addr(rt, p.server, &a), POLYIO_STATUS_INVALID_ARGUMENT);

    /* EOF after the client's shutdown; closing the listener removes its file. */
    uint64_t us = ud_next(), ur = ud_next();
    polyio_completion c;
    REQUIRE_ST(polyio_shutdown(rt, p.client, us), OK);
    REQUIRE(WAIT_FOR(rt, us, &c));
    REQUIRE_ST(polyio_read(rt, p.server, back, 16, ur), OK);
    REQUIRE(WAIT_FOR(rt, ur, &c));
    CHECK_EQ(c.result, 0);
    close_handle(rt, &p.listener);
    CHECK(!path_exists(path));
done:
    close_pair(rt, &p);
    free_runtime(rt);
    rmdir(dir);
    free(data);
    free(back);
}

static void test_unix_echo_epoll(void) { unix_echo(POLYIO_BACKEND_EPOLL); }
static void test_unix_echo_thread(void) { unix_echo(POLYIO_BACKEND_THREAD); }

static void test_unix_abstract(void) {
    char name[64], got[POLYIO_UNIX_PATH_MAX + 1];
    size_t len = 0;
    tcp_pair p = {0};
    polyio_runtime *rt = new_runtime(POLYIO_BACKEND_AUTO);
    REQUIRE(rt);
    /* A leading NUL, and another one inside: every byte of the length counts. */
    int n = snprintf(name, sizeof name, "@polyio-c-%d@abstract", (int)getpid());
    REQUIRE(n > 0 && (size_t)n < sizeof name);
    size_t name_len = (size_t)n;
    name[0] = '\0';
    *strchr(name + 1, '@') = '\0';
    REQUIRE(make_unix_pair(rt, name, name_len, &p));
    REQUIRE_ST(polyio_unix_peer_path(rt, p.client, got, sizeof got, &len), OK);
    CHECK_EQ(len, name_len);
    CHECK(memcmp(got, name, name_len) == 0);
    uint8_t msg[5] = "hello", in[5];
    REQUIRE(write_all(rt, p.client, msg, 5));
    REQUIRE(read_exact(rt, p.server, in, 5));
    CHECK(memcmp(msg, in, 5) == 0);
    /* Nobody listens once it is closed: refused, in the completion. */
    close_handle(rt, &p.listener);
    uint64_t ud = ud_next();
    polyio_completion c;
    REQUIRE_ST(polyio_unix_connect(rt, name, name_len, ud), OK);
    REQUIRE(WAIT_FOR(rt, ud, &c));
    CHECK_ST(c.result, POLYIO_STATUS_CONNECTION_REFUSED);
    /* A name that differs only past the inner NUL is another name. */
    name[name_len - 1] = 'X';
    ud = ud_next();
    REQUIRE_ST(polyio_unix_connect(rt, name, name_len, ud), OK);
    REQUIRE(WAIT_FOR(rt, ud, &c));
    CHECK_ST(c.result, POLYIO_STATUS_CONNECTION_REFUSED);
done:
    close_pair(rt, &p);
    free_runtime(rt);
}

static void test_unix_connect_missing(void) {
    char dir[64], path[128];
    polyio_runtime *rt = new_runtime(POLYIO_BACKEND_AUTO);
    REQUIRE(rt && make_temp_dir(dir, sizeof dir));
    snprintf(path, sizeof path, "%s/nobody.sock", dir);
    uint64_t ud = ud_next();
    polyio_completion c;
    REQUIRE_ST(polyio_unix_connect(rt, path, strlen(path), ud), OK);
    REQUIRE(WAIT_FOR(rt, ud, &c));
    CHECK_EQ(c.op, POLYIO_OP_CONNECT);
    CHECK_ST(c.result, POLYIO_STATUS_NOT_FOUND);
    CHECK_EQ(c.handle, POLYIO_HANDLE_NONE);
done:
    free_runtime(rt);
    rmdir(dir);
}

static void test_unix_listen_busy_and_free_removes(void) {
    char dir[64], path[128];
    polyio_handle l = POLYIO_HANDLE_NONE, l2 = 12345;
    polyio_runtime *rt = new_runtime(POLYIO_BACKEND_AUTO);
    REQUIRE(rt && make_temp_dir(dir, sizeof dir));
    snprintf(path, sizeof path, "%s/busy.sock", dir);
    REQUIRE_ST(polyio_unix_listen(rt, path, strlen(path), 16, 0, &l), OK);
    CHECK_ST(polyio_unix_listen(rt, path, strlen(path), 16, 0, &l2), POLYIO_STATUS_ADDRESS_IN_USE);
    CHECK_EQ(l2, 12345); /* out-params are written only on success */
    CHECK(path_exists(path));
    free_runtime(rt);
    rt = NULL;
    CHECK(!path_exists(path));
done:
    free_runtime(rt);
    rmdir(dir);
}

static void test_unix_hostile_arguments(void) {
    char longest[POLYIO_UNIX_PATH_MAX + 2], buf[8];
    size_t len = 777;
    polyio_handle l = 12345;
    polyio_peercred cred = {-7, 7, 7};
    tcp_pair p = {0};
    polyio_runtime *rt = new_runtime(POLYIO_BACKEND_AUTO);
    REQUIRE(rt);
    const polyio_status INVAL = POLYIO_STATUS_INVALID_ARGUMENT;
    /* NULL runtime, NULL path (whatever the length), empty path. */
    CHECK_ST(polyio_unix_connect(NULL, "/tmp/x", 6, 1), INVAL);
    CHECK_ST(polyio_unix_connect(rt, NULL, 0, 1), INVAL);
    CHECK_ST(polyio_unix_connect(rt, NULL, 6, 1), INVAL);
    CHECK_ST(polyio_unix_connect(rt, "/tmp/x", 0, 1), INVAL);
    CHECK_ST(polyio_unix_listen(NULL, "/tmp/x", 6, 0, 0, &l), INVAL);
    CHECK_ST(polyio_unix_listen(rt, NULL, 6, 0, 0, &l), INVAL);
    CHECK_ST(polyio_unix_listen(rt, "/tmp/x", 0, 0, 0, &l), INVAL);
    /* Too long: a filesystem path of 108 bytes, an abstract name of 109. */
    memset(longest, 'a', sizeof longest);
    longest[0] = '/';
    CHECK_ST(polyio_unix_connect(rt, longest, POLYIO_UNIX_PATH_MAX, 1), INVAL);
    CHECK_ST(polyio_unix_listen(rt, longest, POLYIO_UNIX_PATH_MAX, 0, 0, &l), INVAL);
    CHECK_ST(polyio_unix_connect(rt, longest, SIZE_MAX, 1), INVAL);
    longest[0] = '\0';
    CHECK_ST(polyio_unix_connect(rt, longest, POLYIO_UNIX_PATH_MAX + 1, 1), INVAL);
    CHECK_ST(polyio_unix_listen(rt, longest, POLYIO_UNIX_PATH_MAX + 1, 0, 0, &l), INVAL);
    /* A filesystem path with a NUL inside (the kernel would cut it there). */
    CHECK_ST(polyio_unix_connect(rt, "/tmp/a\0b", 8, 1), INVAL);
    CHECK_ST(polyio_unix_listen(rt, "/tmp/a\0b", 8, 0, 0, &l), INVAL);
    /* NULL out, negative backlog, any flag (REUSEPORT included). */
    CHECK_ST(polyio_unix_listen(rt, "\0polyio-hostile", 15, 0, 0, NULL), INVAL);
    CHECK_ST(polyio_unix_listen(rt, "\0polyio-hostile", 15, -1, 0, &l), INVAL);
    CHECK_ST(polyio_unix_listen(rt, "\0polyio-hostile", 15, 0, POLYIO_LISTEN_REUSEPORT, &l), INVAL);
    CHECK_ST(polyio_unix_listen(rt, "\0polyio-hostile", 15, 0, 0x80, &l), INVAL);
    CHECK_EQ(l, 12345);
    /* Nothing was submitted. */
    CHECK_EQ(in_flight(rt), 0);
    polyio_completion c;
    CHECK_EQ(polyio_turn(rt, &c, 1), 0);

    /* The accessors: NULL pointers, a buffer too small, TCP handles, stale handles. */
    REQUIRE(make_pair(rt, &p));
    CHECK_ST(polyio_unix_peercred(rt, p.client, &cred), INVAL);
    CHECK_ST(polyio_unix_peercred(NULL, p.client, &cred), INVAL);
    CHECK_ST(polyio_unix_local_path(rt, p.client, buf, sizeof buf, &len), INVAL);
    CHECK_ST(polyio_unix_peer_path(rt, p.listener, buf, sizeof buf, &len), INVAL);
    CHECK_ST(polyio_unix_peercred(rt, 0xdeadbeef, &cred), POLYIO_STATUS_BAD_HANDLE);
    close_pair(rt, &p);
    /* An abstract name of 27 bytes, unique to this process: "@polyio-c-hostile-NNNNNNNNN". */
    char name[28];
    snprintf(name, sizeof name, "@polyio-c-hostile-%09u", (unsigned)getpid() % 1000000000u);
    name[0] = '\0';
    REQUIRE(make_unix_pair(rt, name, sizeof name - 1, &p));
    CHECK_ST(polyio_unix_peercred(rt, p.client, NULL), INVAL);
    CHECK_ST(polyio_unix_local_path(rt, p.listener, NULL, 64, &len), INVAL);
    CHECK_ST(polyio_unix_local_path(rt, p.listener, buf, sizeof buf, NULL), INVAL);
    CHECK_ST(polyio_unix_local_path(rt, p.listener, buf, sizeof buf, &len), INVAL); /* 27 bytes > 8 */
    CHECK_ST(polyio_unix_local_path(NULL, p.listener, buf, sizeof buf, &len), INVAL);
    CHECK_EQ(len, 777);
    CHECK_EQ(cred.pid, -7);
    /* Exactly the path's length fits (no room for a NUL: none is written). */
    char exact[sizeof name - 1];
    CHECK_ST(polyio_unix_local_path(rt, p.listener, exact, sizeof exact, &len), OK);
    CHECK_EQ(len, sizeof name - 1);
    CHECK(memcmp(exact, name, len) == 0);
    close_pair(rt, &p);
done:
    close_pair(rt, &p);
    free_runtime(rt);
}

/* ---- UDP ---------------------------------------------------------------------------- */

/* A plain BSD UDP socket on 127.0.0.1 (or ::1), the peer polyio talks to. Returns its fd
 * and port, or -1. */
static int peer_udp(int family, uint16_t *port) {
    int fd = socket(family, SOCK_DGRAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_storage ss;
    socklen_t len;
    memset(&ss, 0, sizeof ss);
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof *a;
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        len = sizeof *a;
    }
    struct timeval tv = {.tv_sec = 10, .tv_usec = 0};
    if (bind(fd, (struct sockaddr *)&ss, len) != 0 || getsockname(fd, (struct sockaddr *)&ss, &len) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return fd;
}

/* Sends `n` bytes from the peer socket `fd` to polyio's socket at `addr`. */
static bool peer_send(int fd, const polyio_addr *addr, const void *data, size_t n) {
    struct sockaddr_storage ss;
    socklen_t len;
    memset(&ss, 0, sizeof ss);
    if (addr->family == 4) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons(addr->port);
        inet_pton(AF_INET, addr->ip, &a->sin_addr);
        len = sizeof *a;
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(addr->port);
        inet_pton(AF_INET6, addr->ip, &a->sin6_addr);
        len = sizeof *a;
    }
    return CHECK_EQ(sendto(fd, data, n, 0, (struct sockaddr *)&ss, len), (ssize_t)n);
}

static polyio_handle udp_bind_local(polyio_runtime *rt, const char *ip, uint32_t flags, polyio_addr *addr) {
    polyio_handle h = POLYIO_HANDLE_NONE;
    if (!CHECK_ST(polyio_udp_bind(rt, ip, 0, flags, &h), OK))
        return POLYIO_HANDLE_NONE;
    CHECK_ST(polyio_udp_local_addr(rt, h, addr), OK);
    return h;
}

/* A datagram arrives whole with its source address; sending back to that address reaches
 * the peer; an empty datagram is a datagram. */
static void udp_echo(uint32_t backend) {
    uint8_t buf[64];
    char back[16];
    polyio_completion c;
    polyio_addr local;
    uint16_t pport = 0;
    int pfd = -1;
    polyio_runtime *rt = new_runtime(backend);
    REQUIRE(rt);
    polyio_handle h = udp_bind_local(rt, "127.0.0.1", 0, &local);
    REQUIRE(h != POLYIO_HANDLE_NONE);
    CHECK_EQ(local.family, 4);
    CHECK(strcmp(local.ip, "127.0.0.1") == 0);
    pfd = peer_udp(AF_INET, &pport);
    REQUIRE(pfd >= 0);
    REQUIRE(peer_send(pfd, &local, "hello", 5));
    uint64_t r = ud_next(), s = ud_next(), e = ud_next();
    REQUIRE_ST(polyio_udp_recv(rt, h, buf, sizeof buf, r), OK);
    REQUIRE(WAIT_FOR(rt, r, &c));
    CHECK_EQ(c.op, POLYIO_OP_RECV);
    CHECK_EQ(c.result, 5);
    CHECK_EQ(c.handle, h);
    CHECK(memcmp(buf, "hello", 5) == 0);
    CHECK_EQ(c.flags & POLYIO_COMPLETION_TRUNC, 0);
    CHECK(c.payload == NULL && c.payload_id == 0);
    CHECK_EQ(c.addr.family, 4);
    CHECK(strcmp(c.addr.ip, "127.0.0.1") == 0);
    CHECK_EQ(c.addr.port, pport);
    polyio_addr to = c.addr;
    REQUIRE_ST(polyio_udp_send(rt, h, (const uint8_t *)"back", 4, &to, s), OK);
    REQUIRE(WAIT_FOR(rt, s, &c));
    CHECK_EQ(c.op, POLYIO_OP_SEND);
    CHECK_EQ(c.result, 4);
    CHECK_EQ(c.addr.family, 0);
    CHECK_EQ(recv(pfd, back, sizeof back, 0), 4);
    CHECK(memcmp(back, "back", 4) == 0);
    REQUIRE(peer_send(pfd, &local, "", 0));
    REQUIRE_ST(polyio_udp_recv(rt, h, buf, sizeof buf, e), OK);
    REQUIRE(WAIT_FOR(rt, e, &c));
    CHECK_EQ(c.result, 0);
    CHECK_EQ(c.addr.port, pport);
    CHECK_ST(polyio_close(rt, h), OK);
done:
    if (pfd >= 0)
        close(pfd);
    free_runtime(rt);
}

static void test_udp_echo_epoll(void) { udp_echo(POLYIO_BACKEND_EPOLL); }
static void test_udp_echo_thread(void) { udp_echo(POLYIO_BACKEND_THREAD); }

/* One multi-shot receive: a MORE completion per datagram, in the sender's order, each with
 * its payload and address; a datagram longer than `cap` is cut and flagged TRUNC, as is one
 * longer than a single receive's buffer. Cancel ends it with exactly one completion. */
static void test_udp_multishot_order_and_truncation(void) {
    enum { N = 200 };
    polyio_completion c;
    polyio_addr local;
    uint16_t pport = 0;
    uint8_t big[100], small[4];
    int pfd = -1;
    polyio_runtime *rt = new_runtime(POLYIO_BACKEND_AUTO);
    REQUIRE(rt);
    polyio_handle h = udp_bind_local(rt, "127.0.0.1", 0, &local);
    REQUIRE(h != POLYIO_HANDLE_NONE);
    pfd = peer_udp(AF_INET, &pport);
    REQUIRE(pfd >= 0);
    uint64_t ud = ud_next(), one = ud_next();
    REQUIRE_ST(polyio_udp_recv_multishot(rt, h, 64, ud), OK);
    for (uint32_t i = 0; i < N; i++)
        REQUIRE(peer_send(pfd, &local, &i, sizeof i));
    for (uint32_t i = 0; i < N; i++) {
        REQUIRE(WAIT_FOR(rt, ud, &c));
        REQUIRE_EQ(c.flags & POLYIO_COMPLETION_MORE, POLYIO_COMPLETION_MORE);
        REQUIRE_EQ(c.result, 4);
        REQUIRE(c.payload != NULL && c.payload_len == 4 && c.payload_id != 0);
        uint32_t v;
        memcpy(&v, c.payload, 4);
        CHECK_EQ(v, i);
        CHECK_EQ(c.addr.port, pport);
        CHECK_ST(polyio_buffer_release(c.payload_id), OK);
    }
    memset(big, 'x', sizeof big);
    REQUIRE(peer_send(pfd, &local, big, sizeof big));
    REQUIRE(WAIT_FOR(rt, ud, &c));
    CHECK_EQ(c.flags & (POLYIO_COMPLETION_MORE | POLYIO_COMPLETION_TRUNC), POLYIO_COMPLETION_MORE | POLYIO_COMPLETION_TRUNC);
    CHECK_EQ(c.result, 64);
    CHECK_EQ(c.payload_len, 64);
    CHECK_ST(polyio_buffer_release(c.payload_id), OK);
    REQUIRE_ST(polyio_cancel(rt, ud), OK);
    REQUIRE(WAIT_FOR(rt, ud, &c));
    CHECK_ST(c.result, POLYIO_STATUS_CANCELED);
    CHECK_EQ(c.flags & POLYIO_COMPLETION_MORE, 0);
    CHECK(c.payload == NULL);
    /* A single receive with a small buffer. */
    REQUIRE(peer_send(pfd, &local, "0123456789", 10));
    REQUIRE_ST(polyio_udp_recv(rt, h, small, sizeof small, one), OK);
    REQUIRE(WAIT_FOR(rt, one, &c));
    CHECK_EQ(c.result, 4);
    CHECK_EQ(c.flags & POLYIO_COMPLETION_TRUNC, POLYIO_COMPLETION_TRUNC);
    CHECK(memcmp(small, "0123", 4) == 0);
    CHECK_EQ(reap_for(rt, 20), 0);
    CHECK_EQ(in_flight(rt), 0);
    CHECK_ST(polyio_close(rt, h), OK);
done:
    if (pfd >= 0)
        close(pfd);
    free_runtime(rt);
}

/* Cancel and deadline end receives (a cancelled one takes no datagram); close completes
 * every pending receive with CANCELED; freeing the runtime with receives pending is clean. */
static void test_udp_cancel_deadline_close(void) {
    uint8_t b1[16], b2[16], b3[16];
    polyio_completion c;
    polyio_addr local;
    uint16_t pport = 0;
    int pfd = -1;
    polyio_runtime *rt = new_runtime(POLYIO_BACKEND_AUTO);
    REQUIRE(rt);
    polyio_handle h = udp_bind_local(rt, "127.0.0.1", 0, &local);
    REQUIRE(h != POLYIO_HANDLE_NONE);
    pfd = peer_udp(AF_INET, &pport);
    REQUIRE(pfd >= 0);
    uint64_t a = ud_next(), b = ud_next(), d = ud_next(), m = ud_next(), s = ud_next();
    REQUIRE_ST(polyio_udp_recv(rt, h, b1, sizeof b1, a), OK);
    REQUIRE_ST(polyio_udp_recv(rt, h, b2, sizeof b2, d), OK);
    REQUIRE_ST(polyio_udp_recv(rt, h, b3, sizeof b3, b), OK);
    REQUIRE_ST(polyio_cancel(rt, a), OK);
    REQUIRE_ST(polyio_deadline(rt, d, 10), OK);
    REQUIRE(WAIT_FOR(rt, a, &c));
    CHECK_ST(c.result, POLYIO_STATUS_CANCELED);
    REQUIRE(WAIT_FOR(rt, d, &c));
    CHECK_ST(c.result, POLYIO_STATUS_TIMED_OUT);
    REQUIRE(peer_send(pfd, &local, "third", 5));
    REQUIRE(WAIT_FOR(rt, b, &c));
    CHECK_EQ(c.result, 5);
    CHECK(memcmp(b3, "third", 5) == 0);
    REQUIRE_ST(polyio_udp_recv(rt, h, b1, sizeof b1, a), OK);
    REQUIRE_ST(polyio_udp_recv_multishot(rt, h, 16, m), OK);
    CHECK_ST(polyio_close(rt, h), OK);
    REQUIRE(WAIT_FOR(rt, a, &c));
    CHECK_ST(c.result, POLYIO_STATUS_CANCELED);
    REQUIRE(WAIT_FOR(rt, m, &c));
    CHECK_ST(c.result, POLYIO_STATUS_CANCELED);
    CHECK_EQ(c.flags & POLYIO_COMPLETION_MORE, 0);
    CHECK_ST(polyio_udp_recv(rt, h, b1, sizeof b1, a), POLYIO_STATUS_BAD_HANDLE);
    CHECK_ST(polyio_udp_send(rt, h, b1, 1, &local, s), POLYIO_STATUS_BAD_HANDLE);
    CHECK_EQ(in_flight(rt), 0);
    /* Freed with a receive pending. */
    h = udp_bind_local(rt, "127.0.0.1", 0, &local);
    REQUIRE(h != POLYIO_HANDLE_NONE);
    REQUIRE_ST(polyio_udp_recv(rt, h, b1, sizeof b1, a), OK);
done:
    if (pfd >= 0)
        close(pfd);
    free_runtime(rt);
}

/* A connected socket sends to its peer without an address, receives only from it, and an
 * ICMP port unreachable completes its receive with CONNECTION_REFUSED. */
static void test_udp_connected(void) {
    uint8_t buf[32];
    char got[32];
    polyio_completion c;
    polyio_addr local, peer;
    uint16_t pport = 0, oport = 0, dead_port = 0;
    int pfd = -1, ofd = -1, dead = -1;
    polyio_runtime *rt = new_runtime(POLYIO_BACKEND_AUTO);
    REQUIRE(rt);
    polyio_handle h = udp_bind_local(rt, "127.0.0.1", 0, &local);
    REQUIRE(h != POLYIO_HANDLE_NONE);
    pfd = peer_udp(AF_INET, &pport);
    ofd = peer_udp(AF_INET, &oport);
    REQUIRE(pfd >= 0 && ofd >= 0);
    CHECK_ST(polyio_udp_peer_addr(rt, h, &peer), POLYIO_STATUS_NOT_CONNECTED);
    REQUIRE_ST(polyio_udp_connect(rt, h, "127.0.0.1", pport), OK);
    REQUIRE_ST(polyio_udp_peer_addr(rt, h, &peer), OK);
    CHECK_EQ(peer.port, pport);
    REQUIRE(peer_send(ofd, &local, "other", 5));
    REQUIRE(peer_send(pfd, &local, "peer", 4));
    uint64_t r = ud_next(), s = ud_next(), r2 = ud_next(), s2 = ud_next();
    REQUIRE_ST(polyio_udp_recv(rt, h, buf, sizeof buf, r), OK);
    REQUIRE(WAIT_FOR(rt, r, &c));
    CHECK_EQ(c.result, 4);
    CHECK(memcmp(buf, "peer", 4) == 0);
    CHECK_EQ(c.addr.port, pport);
    REQUIRE_ST(polyio_udp_send(rt, h, (const uint8_t *)"to peer", 7, NULL, s), OK);
    REQUIRE(WAIT_FOR(rt, s, &c));
    CHECK_EQ(c.result, 7);
    CHECK_EQ(recv(pfd, got, sizeof got, 0), 7);
    /* Connected to a port nobody listens on. */
    dead = peer_udp(AF_INET, &dead_port);
    REQUIRE(dead >= 0);
    close(dead);
    dead = -1;
    REQUIRE_ST(polyio_udp_connect(rt, h, "127.0.0.1", dead_port), OK);
    REQUIRE_ST(polyio_udp_recv(rt, h, buf, sizeof buf, r2), OK);
    REQUIRE_ST(polyio_udp_send(rt, h, (const uint8_t *)"ping", 4, NULL, s2), OK);
    REQUIRE(WAIT_FOR(rt, s2, &c));
    CHECK_EQ(c.result, 4);
    REQUIRE(WAIT_FOR(rt, r2, &c));
    CHECK_ST(c.result, POLYIO_STATUS_CONNECTION_REFUSED);
    CHECK_EQ(c.addr.family, 0);
    /* Dissolved: no peer any more. */
    REQUIRE_ST(polyio_udp_connect(rt, h, NULL, 0), OK);
    CHECK_ST(polyio_udp_peer_addr(rt, h, &peer), POLYIO_STATUS_NOT_CONNECTED);
    CHECK_ST(polyio_close(rt, h), OK);
done:
    if (pfd >= 0)
        close(pfd);
    if (ofd >= 0)
        close(ofd);
    free_runtime(rt);
}

/* udp_try_send hands a datagram to the kernel with no completion, returns false while a
 * queued send would be overtaken, and reports the send's own error; bad arguments leave
 * `*sent` untouched. */
static void test_udp_try_send(void) {
    char got[32];
    polyio_completion c;
    polyio_addr local, to;
    uint16_t pport = 0;
    int pfd = -1;
    bool sent = false;
    polyio_runtime *rt = new_runtime(POLYIO_BACKEND_AUTO);
    REQUIRE(rt);
    polyio_handle h = udp_bind_local(rt, "127.0.0.1", 0, &local);
    REQUIRE(h != POLYIO_HANDLE_NONE);
    pfd = peer_udp(AF_INET, &pport);
    REQUIRE(pfd >= 0);
    memset(&to, 0, sizeof to);
    strcpy(to.ip, "127.0.0.1");
    to.port = pport;
    to.family = 4;
    /* A fresh socket is writable once the runtime has polled it: a turn or a few. */
    for (int i = 0; i < 100 && !sent; i++) {
        REQUIRE_ST(polyio_udp_try_send(rt, h, (const uint8_t *)"now", 3, &to, &sent), OK);
        if (!sent)
            CHECK_EQ(polyio_reap(rt, &c, 1, 10), 0);
    }
    CHECK(sent);
    CHECK_EQ(recv(pfd, got, sizeof got, 0), 3);
    CHECK(memcmp(got, "now", 3) == 0);
    CHECK_EQ(polyio_turn(rt, &c, 1), 0); /* no completion for it */
    /* A queued send is not overtaken: try_send declines while it is pending. */
    uint64_t s = ud_next();
    REQUIRE_ST(polyio_udp_send(rt, h, (const uint8_t *)"queued", 6, &to, s), OK);
    REQUIRE_ST(polyio_udp_try_send(rt, h, (const uint8_t *)"later", 5, &to, &sent), OK);
    REQUIRE(WAIT_FOR(rt, s, &c));
    CHECK_EQ(c.result, 6);
    CHECK_EQ(recv(pfd, got, sizeof got, 0), 6);
    CHECK(memcmp(got, "queued", 6) == 0);
    if (sent) {
        CHECK_EQ(recv(pfd, got, sizeof got, 0), 5);
        CHECK(memcmp(got, "later", 5) == 0);
    }
    /* Without an address on an unconnected socket: the kernel's error, nothing sent. */
    sent = true;
    CHECK(polyio_udp_try_send(rt, h, (const uint8_t *)"x", 1, NULL, &sent) != POLYIO_STATUS_OK);
    CHECK(sent);
    CHECK_ST(polyio_udp_try_send(NULL, h, (const uint8_t *)"x", 1, &to, &sent), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_udp_try_send(rt, h, (const uint8_t *)"x", 1, &to, NULL), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_udp_try_send(rt, h, NULL, 1, &to, &sent), POLYIO_STATUS_INVALID_ARGUMENT);
    strcpy(to.ip, "not an ip");
    CHECK_ST(polyio_udp_try_send(rt, h, (const uint8_t *)"x", 1, &to, &sent), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK(sent);
    CHECK_ST(polyio_close(rt, h), OK);
done:
    if (pfd >= 0)
        close(pfd);
    free_runtime(rt);
}

/* IPv6: addresses come back in IPv6 form (skipped where ::1 is unavailable). */
static void test_udp_ipv6(void) {
    uint8_t buf[16];
    char back[16];
    polyio_completion c;
    polyio_addr local;
    uint16_t pport = 0;
    int pfd = peer_udp(AF_INET6, &pport);
    polyio_runtime *rt = NULL;
    if (pfd < 0) {
        printf("     (no IPv6 loopback here: skipped)\n");
        return;
    }
    rt = new_runtime(POLYIO_BACKEND_AUTO);
    REQUIRE(rt);
    polyio_handle h = udp_bind_local(rt, "::1", POLYIO_UDP_IPV6ONLY, &local);
    REQUIRE(h != POLYIO_HANDLE_NONE);
    CHECK_EQ(local.family, 6);
    CHECK(strcmp(local.ip, "::1") == 0);
    REQUIRE(peer_send(pfd, &local, "six", 3));
    uint64_t r = ud_next(), s = ud_next();
    REQUIRE_ST(polyio_udp_recv(rt, h, buf, sizeof buf, r), OK);
    REQUIRE(WAIT_FOR(rt, r, &c));
    CHECK_EQ(c.result, 3);
    CHECK_EQ(c.addr.family, 6);
    CHECK(strcmp(c.addr.ip, "::1") == 0);
    CHECK_EQ(c.addr.port, pport);
    REQUIRE_ST(polyio_udp_send(rt, h, (const uint8_t *)"back", 4, &c.addr, s), OK);
    REQUIRE(WAIT_FOR(rt, s, &c));
    CHECK_EQ(recv(pfd, back, sizeof back, 0), 4);
    CHECK_ST(polyio_udp_set_ttl(rt, h, 9), OK);
    CHECK_ST(polyio_close(rt, h), OK);
done:
    close(pfd);
    free_runtime(rt);
}

/* Options and hostile arguments: every refused call posts no completion. */
static void test_udp_options_and_invalid_arguments(void) {
    uint8_t buf[8] = {0};
    polyio_completion c;
    polyio_addr local, bad;
    polyio_handle out = 77;
    polyio_runtime *rt = new_runtime(POLYIO_BACKEND_AUTO);
    REQUIRE(rt);
    polyio_handle h = udp_bind_local(rt, "127.0.0.1", POLYIO_UDP_REUSEADDR | POLYIO_UDP_REUSEPORT, &local);
    REQUIRE(h != POLYIO_HANDLE_NONE);
    /* SO_REUSEPORT lets a second socket share the port; without it, ADDRESS_IN_USE. */
    polyio_handle h2 = POLYIO_HANDLE_NONE;
    CHECK_ST(polyio_udp_bind(rt, "127.0.0.1", local.port, POLYIO_UDP_REUSEADDR | POLYIO_UDP_REUSEPORT, &h2), OK);
    CHECK_ST(polyio_udp_bind(rt, "127.0.0.1", local.port, 0, &out), POLYIO_STATUS_ADDRESS_IN_USE);
    CHECK_EQ(out, 77);
    CHECK_ST(polyio_close(rt, h2), OK);
    uint64_t bc = ud_next();
    polyio_addr broadcast = {.ip = "255.255.255.255", .port = 9, .family = 4};
    REQUIRE_ST(polyio_udp_send(rt, h, buf, 1, &broadcast, bc), OK);
    REQUIRE(WAIT_FOR(rt, bc, &c));
    CHECK_ST(c.result, POLYIO_STATUS_PERMISSION_DENIED);
    CHECK_ST(polyio_udp_set_broadcast(rt, h, true), OK);
    CHECK_ST(polyio_udp_set_ttl(rt, h, 17), OK);
    CHECK_ST(polyio_udp_set_ttl(rt, h, 0), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_udp_set_multicast_ttl(rt, h, 256), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_udp_set_multicast_ttl(rt, h, 4), OK);
    CHECK_ST(polyio_udp_set_multicast_loop(rt, h, false), OK);
    CHECK_ST(polyio_udp_membership(rt, h, "10.0.0.1", NULL, true), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_udp_membership(rt, h, NULL, NULL, true), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_udp_membership(rt, h, "239.1.2.3", "not an ip", true), POLYIO_STATUS_INVALID_ARGUMENT);
    /* Joining needs a multicast route, which some sandboxes lack; when it works, so does
     * leaving. */
    if (polyio_udp_membership(rt, h, "239.255.0.9", "127.0.0.1", true) == OK)
        CHECK_ST(polyio_udp_membership(rt, h, "239.255.0.9", "127.0.0.1", false), OK);

    uint64_t ud = ud_next();
    CHECK_ST(polyio_udp_bind(NULL, "127.0.0.1", 0, 0, &out), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_udp_bind(rt, NULL, 0, 0, &out), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_udp_bind(rt, "localhost", 0, 0, &out), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_udp_bind(rt, "127.0.0.1", 0, 0x100, &out), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_udp_bind(rt, "127.0.0.1", 0, 0, NULL), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(out, 77);
    CHECK_ST(polyio_udp_connect(rt, h, "nope", 1), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_udp_recv(rt, h, NULL, 8, ud), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_udp_recv(rt, h, buf, 0, ud), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_udp_recv_multishot(rt, h, 0, ud), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_udp_send(rt, h, NULL, 1, &local, ud), POLYIO_STATUS_INVALID_ARGUMENT);
    memset(&bad, 'z', sizeof bad); /* no NUL inside ip */
    CHECK_ST(polyio_udp_send(rt, h, buf, 1, &bad, ud), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_udp_recv(rt, h ^ 0x10000, buf, 8, ud), POLYIO_STATUS_BAD_HANDLE);
    CHECK_ST(polyio_udp_local_addr(rt, h, NULL), POLYIO_STATUS_INVALID_ARGUMENT);
    /* Stream ops on a UDP socket and UDP ops on a listener are refused. */
    CHECK_ST(polyio_read(rt, h, buf, sizeof buf, ud), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_accept(rt, h, ud), POLYIO_STATUS_INVALID_ARGUMENT);
    polyio_handle l = POLYIO_HANDLE_NONE;
    REQUIRE_ST(polyio_tcp_listen(rt, "127.0.0.1", 0, 0, 0, &l), OK);
    CHECK_ST(polyio_udp_recv(rt, l, buf, sizeof buf, ud), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_close(rt, l), OK);
    CHECK_EQ(reap_for(rt, 20), 0);
    CHECK_EQ(in_flight(rt), 0);
    CHECK_ST(polyio_close(rt, h), OK);
done:
    free_runtime(rt);
}

/* ---- tests: files ------------------------------------------------------------------- */

/* Memcheck does not know what io_uring writes: bytes the kernel put into a buffer through
 * the ring look uninitialised to it. Tell it they are defined before a test reads them. */
#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define FS_DEFINED(p, n) ((void)VALGRIND_MAKE_MEM_DEFINED((p), (n)))
#endif
#endif
#ifndef FS_DEFINED
#define FS_DEFINED(p, n) ((void)(p), (void)(n))
#endif

/* Every file test runs on both file backends. */
static const uint32_t FS_BACKENDS[] = {POLYIO_FS_BACKEND_URING, POLYIO_FS_BACKEND_THREADS};

static polyio_runtime *new_fs_runtime(uint32_t fs_backend) {
    polyio_options opts;
    polyio_options_init(&opts);
    CHECK_EQ(opts.fs_backend, POLYIO_FS_BACKEND_AUTO);
    opts.fs_backend = fs_backend;
    polyio_runtime *rt = NULL;
    if (!CHECK_ST(polyio_runtime_new(&opts, &rt), OK))
        return NULL;
    return rt;
}

/* A fresh directory under /tmp; fs_rmdir removes it and the files in it. */
static bool fs_mkdtemp(char *dir, size_t cap) {
    snprintf(dir, cap, "/tmp/polyio-c-XXXXXX");
    return CHECK(mkdtemp(dir) != NULL);
}

static void fs_rmdir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char path[512];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

/* Submits nothing; waits for `ud` and returns its result (status or count). */
static int64_t fs_wait(polyio_runtime *rt, uint64_t ud, polyio_completion *c) {
    if (!WAIT_FOR(rt, ud, c))
        return INT64_MIN;
    return c->result;
}

static polyio_handle fs_open(polyio_runtime *rt, const char *path, int flags) {
    polyio_completion c;
    uint64_t ud = ud_next();
    if (!CHECK_ST(polyio_fs_open(rt, path, flags, 0644, ud), OK))
        return POLYIO_HANDLE_NONE;
    if (!CHECK_EQ(fs_wait(rt, ud, &c), 0))
        return POLYIO_HANDLE_NONE;
    CHECK_EQ(c.op, POLYIO_OP_FS_OPEN);
    CHECK(c.handle != POLYIO_HANDLE_NONE);
    return c.handle;
}

static void fs_close(polyio_runtime *rt, polyio_handle f) {
    polyio_completion c;
    uint64_t ud = ud_next();
    if (CHECK_ST(polyio_fs_close(rt, f, ud), OK)) {
        CHECK_EQ(fs_wait(rt, ud, &c), 0);
        CHECK_EQ(c.op, POLYIO_OP_FS_CLOSE);
        CHECK_EQ(c.handle, f);
    }
}

static void fs_roundtrip(uint32_t fsb) {
    char dir[64] = "", path[128];
    polyio_completion c;
    uint8_t *data = malloc(300 * KiB), *back = malloc(400 * KiB);
    polyio_handle f = POLYIO_HANDLE_NONE;
    polyio_runtime *rt = new_fs_runtime(fsb);
    REQUIRE(rt && data && back);
    REQUIRE(fs_mkdtemp(dir, sizeof dir));
    snprintf(path, sizeof path, "%s/data", dir);
    fill_random(data, 300 * KiB, 42);

    /* Whole file: written (data copied at submission), read back as a lent payload. */
    uint64_t ud = ud_next();
    REQUIRE_ST(polyio_fs_write_file(rt, path, data, 300 * KiB, O_WRONLY | O_CREAT | O_TRUNC, 0600, ud), OK);
    CHECK_EQ(fs_wait(rt, ud, &c), (int64_t)(300 * KiB));
    CHECK_EQ(c.op, POLYIO_OP_FS_WRITE_FILE);
    CHECK(c.payload == NULL);
    polyio_stats st;
    REQUIRE_ST(polyio_runtime_stats(rt, &st), OK);
    CHECK_EQ(st.fs_backend, fsb);
    ud = ud_next();
    REQUIRE_ST(polyio_fs_read_file(rt, path, ud), OK);
    CHECK_EQ(fs_wait(rt, ud, &c), (int64_t)(300 * KiB));
    CHECK_EQ(c.op, POLYIO_OP_FS_READ_FILE);
    if (CHECK(c.payload != NULL) && CHECK_EQ(c.payload_len, 300 * KiB)) {
        FS_DEFINED(c.payload, c.payload_len);
        CHECK_EQ(fnv1a(c.payload, c.payload_len), fnv1a(data, 300 * KiB));
    }
    CHECK_ST(polyio_buffer_release(c.payload_id), OK);

    /* Reads and writes at offsets and at the position, into the caller's buffers. */
    f = fs_open(rt, path, O_RDWR);
    REQUIRE(f != POLYIO_HANDLE_NONE);
    ud = ud_next();
    REQUIRE_ST(polyio_fs_write(rt, f, data, 1000, 500000, ud), OK);
    CHECK_EQ(fs_wait(rt, ud, &c), 1000);
    CHECK_EQ(c.op, POLYIO_OP_FS_WRITE);
    ud = ud_next();
    REQUIRE_ST(polyio_fs_read(rt, f, back, 400 * KiB, 0, ud), OK);
    CHECK_EQ(fs_wait(rt, ud, &c), (int64_t)(400 * KiB));
    CHECK_EQ(c.op, POLYIO_OP_FS_READ);
    CHECK_EQ(c.handle, f);
    CHECK(c.payload == NULL);
    FS_DEFINED(back, 400 * KiB);
    CHECK_EQ(fnv1a(back, 300 * KiB), fnv1a(data, 300 * KiB));
    ud = ud_next();
    REQUIRE_ST(polyio_fs_read(rt, f, back, 100, POLYIO_FS_AT_POSITION, ud), OK);
    CHECK_EQ(fs_wait(rt, ud, &c), 100);
    FS_DEFINED(back, 100);
    CHECK(memcmp(back, data, 100) == 0);
    ud = ud_next();
    REQUIRE_ST(polyio_fs_read(rt, f, back, 100, POLYIO_FS_AT_POSITION, ud), OK);
    CHECK_EQ(fs_wait(rt, ud, &c), 100);
    FS_DEFINED(back, 100);
    CHECK(memcmp(back, data + 100, 100) == 0);
    ud = ud_next();
    REQUIRE_ST(polyio_fs_read(rt, f, back, 100, 500950, ud), OK);
    CHECK_EQ(fs_wait(rt, ud, &c), 50); /* short at EOF */
    ud = ud_next();
    REQUIRE_ST(polyio_fs_read(rt, f, back, 100, 1LL << 40, ud), OK);
    CHECK_EQ(fs_wait(rt, ud, &c), 0); /* past EOF */

    /* Cached bytes read now, without an op (io_uring backend only); never a short read. */
    bool full = false;
    REQUIRE_ST(polyio_runtime_stats(rt, &st), OK);
    uint64_t done_before = st.completions;
    memset(back, 0, 4096);
    CHECK_ST(polyio_fs_try_read(rt, f, back, 4096, 8192, &full), OK);
    CHECK_EQ(full, fsb == POLYIO_FS_BACKEND_URING);
    if (full)
        CHECK(memcmp(back, data + 8192, 4096) == 0);
    full = true;
    CHECK_ST(polyio_fs_try_read(rt, f, back, 100, 500950, &full), OK);
    CHECK(!full); /* short at EOF: left to polyio_fs_read */
    CHECK_ST(polyio_fs_try_read(rt, f, back, 100, -1, &full), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_fs_try_read(rt, f, NULL, 100, 0, &full), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_fs_try_read(rt, f, back, 100, 0, NULL), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_fs_try_read(rt, POLYIO_HANDLE_NONE, back, 100, 0, &full), POLYIO_STATUS_BAD_HANDLE);
    REQUIRE_ST(polyio_runtime_stats(rt, &st), OK);
    CHECK_EQ(st.completions, done_before); /* no completion */

    polyio_stat s;
    memset(&s, 0, sizeof s);
    ud = ud_next();
    REQUIRE_ST(polyio_fs_fstat(rt, f, &s, ud), OK);
    CHECK_EQ(fs_wait(rt, ud, &c), 0);
    CHECK_EQ(c.op, POLYIO_OP_FS_STAT);
    CHECK_EQ(s.size, 501000);
    CHECK((s.mode & S_IFMT) == S_IFREG);
    CHECK_EQ(s.mode & 0777, 0600);
    polyio_stat ds;
    ud = ud_next();
    REQUIRE_ST(polyio_fs_stat(rt, dir, &ds, ud), OK);
    CHECK_EQ(fs_wait(rt, ud, &c), 0);
    CHECK((ds.mode & S_IFMT) == S_IFDIR);
    ud = ud_next();
    REQUIRE_ST(polyio_fs_fsync(rt, f, 0, ud), OK);
    CHECK_EQ(fs_wait(rt, ud, &c), 0);
    ud = ud_next();
    REQUIRE_ST(polyio_fs_fsync(rt, f, 1, ud), OK);
    CHECK_EQ(fs_wait(rt, ud, &c), 0);
    CHECK_EQ(c.op, POLYIO_OP_FS_FSYNC);
    ud = ud_next();
    REQUIRE_ST(polyio_fs_truncate(rt, f, 1234, ud), OK);
    CHECK_EQ(fs_wait(rt, ud, &c), 0);
    CHECK_EQ(c.op, POLYIO_OP_FS_TRUNCATE);
    ud = ud_next();
    REQUIRE_ST(polyio_fs_fstat(rt, f, &s, ud), OK);
    CHECK_EQ(fs_wait(rt, ud, &c), 0);
    CHECK_EQ(s.size, 1234);
    CHECK_ST(polyio_fs_truncate(rt, f, UINT64_MAX, 1), POLYIO_STATUS_INVALID_ARGUMENT);
    fs_close(rt, f);
    f = POLYIO_HANDLE_NONE;
    CHECK_EQ(in_flight(rt), 0);
done:
    free_runtime(rt);
    free(data);
    free(back);
    if (dir[0])
        fs_rmdir(dir);
}

static void test_fs_roundtrip(void) {
    for (size_t i = 0; i < 2; i++)
        fs_roundtrip(FS_BACKENDS[i]);
}

static void fs_vectored(uint32_t fsb) {
    char dir[64] = "", path[128];
    polyio_completion c;
    uint8_t a[100], b[3000], x[50], y[4000];
    fill_random(a, sizeof a, 1);
    fill_random(b, sizeof b, 2);
    polyio_runtime *rt = new_fs_runtime(fsb);
    REQUIRE(rt);
    REQUIRE(fs_mkdtemp(dir, sizeof dir));
    snprintf(path, sizeof path, "%s/v", dir);
    polyio_handle f = fs_open(rt, path, O_RDWR | O_CREAT);
    REQUIRE(f != POLYIO_HANDLE_NONE);
    polyio_iovec w[2] = {{a, sizeof a}, {b, sizeof b}};
    uint64_t ud = ud_next();
    REQUIRE_ST(polyio_fs_writev(rt, f, w, 2, 0, ud), OK);
    CHECK_EQ(fs_wait(rt, ud, &c), 3100);
    CHECK_EQ(c.op, POLYIO_OP_FS_WRITE);
    polyio_iovec r[2] = {{x, sizeof x}, {y, sizeof y}};
    ud = ud_next();
    REQUIRE_ST(polyio_fs_readv(rt, f, r, 2, 0, ud), OK);
    CHECK_EQ(fs_wait(rt, ud, &c), 3100);
    FS_DEFINED(x, sizeof x);
    FS_DEFINED(y, 3050);
    CHECK(memcmp(x, a, 50) == 0);
    CHECK(memcmp(y, a + 50, 50) == 0);
    CHECK(memcmp(y + 50, b, sizeof b) == 0);
    CHECK_ST(polyio_fs_readv(rt, f, r, 0, 0, 1), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_fs_readv(rt, f, NULL, 2, 0, 1), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_fs_writev(rt, f, w, POLYIO_FS_MAX_IOV + 1, 0, 1), POLYIO_STATUS_INVALID_ARGUMENT);
    fs_close(rt, f);
done:
    free_runtime(rt);
    if (dir[0])
        fs_rmdir(dir);
}

static void test_fs_vectored(void) {
    for (size_t i = 0; i < 2; i++)
        fs_vectored(FS_BACKENDS[i]);
}

static void fs_errors(uint32_t fsb) {
    char dir[64] = "", path[128];
    polyio_completion c;
    uint8_t buf[16];
    polyio_stat s;
    polyio_runtime *rt = new_fs_runtime(fsb);
    REQUIRE(rt);
    REQUIRE(fs_mkdtemp(dir, sizeof dir));
    snprintf(path, sizeof path, "%s/missing", dir);
    uint64_t ud = ud_next();
    REQUIRE_ST(polyio_fs_open(rt, path, O_RDONLY, 0, ud), OK);
    CHECK_EQ(fs_wait(rt, ud, &c), POLYIO_STATUS_NOT_FOUND);
    CHECK_EQ(c.handle, POLYIO_HANDLE_NONE);
    ud = ud_next();
    REQUIRE_ST(polyio_fs_read_file(rt, path, ud), OK);
    CHECK_EQ(fs_wait(rt, ud, &c), POLYIO_STATUS_NOT_FOUND);
    CHECK(c.payload == NULL);
    ud = ud_next();
    REQUIRE_ST(polyio_fs_stat(rt, path, &s, ud), OK);
    CHECK_EQ(fs_wait(rt, ud, &c), POLYIO_STATUS_NOT_FOUND);
    ud = ud_next();
    REQUIRE_ST(polyio_fs_read_file(rt, dir, ud), OK);
    CHECK_EQ(fs_wait(rt, ud, &c), POLYIO_STATUS_IS_A_DIRECTORY);
    ud = ud_next();
    REQUIRE_ST(polyio_fs_open(rt, dir, O_WRONLY, 0, ud), OK);
    CHECK_EQ(fs_wait(rt, ud, &c), POLYIO_STATUS_IS_A_DIRECTORY);
    ud = ud_next();
    REQUIRE_ST(polyio_fs_open(rt, dir, O_RDONLY | O_CREAT | O_EXCL, 0600, ud), OK);
    CHECK_EQ(fs_wait(rt, ud, &c), POLYIO_STATUS_ALREADY_EXISTS);

    /* Submissions that fail post nothing. */
    snprintf(path, sizeof path, "%s/f", dir);
    polyio_handle f = fs_open(rt, path, O_RDWR | O_CREAT);
    REQUIRE(f != POLYIO_HANDLE_NONE);
    CHECK_ST(polyio_fs_open(NULL, path, O_RDONLY, 0, 1), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_fs_open(rt, NULL, O_RDONLY, 0, 1), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_fs_open(rt, "", O_RDONLY, 0, 1), POLYIO_STATUS_NOT_FOUND);
    CHECK_ST(polyio_fs_read(rt, f, NULL, 16, 0, 1), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_fs_read(rt, f, buf, 16, -2, 1), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_fs_write(rt, f, NULL, 1, 0, 1), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_fs_stat(rt, path, NULL, 1), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_fs_fstat(rt, f, NULL, 1), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_fs_read_file(rt, NULL, 1), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_fs_write_file(rt, path, NULL, 1, O_WRONLY, 0, 1), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_fs_read(rt, 12345, buf, 16, 0, 1), POLYIO_STATUS_BAD_HANDLE);
    fs_close(rt, f);
    CHECK_ST(polyio_fs_read(rt, f, buf, 16, 0, 1), POLYIO_STATUS_BAD_HANDLE);
    CHECK_ST(polyio_fs_close(rt, f, 1), POLYIO_STATUS_BAD_HANDLE);
    /* A socket is not a file, and a file is not a socket. */
    polyio_handle l;
    uint16_t port;
    REQUIRE(listen_local(rt, 0, &l, &port));
    CHECK_ST(polyio_fs_read(rt, l, buf, 16, 0, 1), POLYIO_STATUS_INVALID_ARGUMENT);
    f = fs_open(rt, path, O_RDONLY);
    CHECK_ST(polyio_read(rt, f, buf, 16, 1), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK_ST(polyio_close(rt, f), OK);
    CHECK_ST(polyio_close(rt, l), OK);
    CHECK_EQ(reap_for(rt, 20), 0);
    CHECK_EQ(stash_count(rt, 1), 0);
done:
    free_runtime(rt);
    if (dir[0])
        fs_rmdir(dir);
}

static void test_fs_errors(void) {
    for (size_t i = 0; i < 2; i++)
        fs_errors(FS_BACKENDS[i]);
}

/* Offsets past 2 GiB on a sparse file; O_APPEND; 64 concurrent reads of one file. */
static void fs_offsets(uint32_t fsb) {
    char dir[64] = "", path[128];
    polyio_completion c;
    uint8_t data[4096], back[8192];
    uint8_t *bufs = malloc(64 * 4096), *all = malloc(64 * 4096);
    polyio_runtime *rt = new_fs_runtime(fsb);
    REQUIRE(rt && bufs && all);
    REQUIRE(fs_mkdtemp(dir, sizeof dir));
    snprintf(path, sizeof path, "%s/sparse", dir);
    fill_random(data, sizeof data, 7);
    polyio_handle f = fs_open(rt, path, O_RDWR | O_CREAT);
    REQUIRE(f != POLYIO_HANDLE_NONE);
    const int64_t far = 5LL << 30;
    uint64_t ud = ud_next();
    REQUIRE_ST(polyio_fs_write(rt, f, data, sizeof data, far, ud), OK);
    CHECK_EQ(fs_wait(rt, ud, &c), 4096);
    ud = ud_next();
    REQUIRE_ST(polyio_fs_read(rt, f, back, sizeof back, far, ud), OK);
    CHECK_EQ(fs_wait(rt, ud, &c), 4096);
    FS_DEFINED(back, 4096);
    CHECK(memcmp(back, data, sizeof data) == 0);
    fs_close(rt, f);

    snprintf(path, sizeof path, "%s/log", dir);
    f = fs_open(rt, path, O_WRONLY | O_CREAT | O_APPEND);
    REQUIRE(f != POLYIO_HANDLE_NONE);
    for (int i = 0; i < 3; i++) {
        ud = ud_next();
        /* The offset is ignored with O_APPEND on Linux only for pwrite: use the position. */
        REQUIRE_ST(polyio_fs_write(rt, f, (const uint8_t *)"abc", 3, POLYIO_FS_AT_POSITION, ud), OK);
        CHECK_EQ(fs_wait(rt, ud, &c), 3);
    }
    fs_close(rt, f);
    ud = ud_next();
    REQUIRE_ST(polyio_fs_write_file(rt, path, (const uint8_t *)"!", 1, O_WRONLY | O_APPEND, 0, ud), OK);
    CHECK_EQ(fs_wait(rt, ud, &c), 1);
    ud = ud_next();
    REQUIRE_ST(polyio_fs_read_file(rt, path, ud), OK);
    CHECK_EQ(fs_wait(rt, ud, &c), 10);
    if (CHECK(c.payload != NULL)) {
        FS_DEFINED(c.payload, 10);
        CHECK(memcmp(c.payload, "abcabcabc!", 10) == 0);
    }
    CHECK_ST(polyio_buffer_release(c.payload_id), OK);

    snprintf(path, sizeof path, "%s/many", dir);
    fill_random(all, 64 * 4096, 3);
    ud = ud_next();
    REQUIRE_ST(polyio_fs_write_file(rt, path, all, 64 * 4096, O_WRONLY | O_CREAT | O_TRUNC, 0644, ud), OK);
    CHECK_EQ(fs_wait(rt, ud, &c), 64 * 4096);
    f = fs_open(rt, path, O_RDONLY);
    REQUIRE(f != POLYIO_HANDLE_NONE);
    uint64_t base = ud_next();
    for (int i = 1; i < 64; i++)
        ud_next();
    for (int i = 0; i < 64; i++)
        REQUIRE_ST(polyio_fs_read(rt, f, bufs + i * 4096, 4096, (int64_t)i * 4096, base + (uint64_t)i), OK);
    for (int i = 0; i < 64; i++) {
        CHECK_EQ(fs_wait(rt, base + (uint64_t)i, &c), 4096);
        FS_DEFINED(bufs + i * 4096, 4096);
        CHECK_EQ(fnv1a(bufs + i * 4096, 4096), fnv1a(all + i * 4096, 4096));
    }
    fs_close(rt, f);
done:
    free_runtime(rt);
    free(bufs);
    free(all);
    if (dir[0])
        fs_rmdir(dir);
}

static void test_fs_offsets(void) {
    for (size_t i = 0; i < 2; i++)
        fs_offsets(FS_BACKENDS[i]);
}

/* A FIFO opened read-write: reads block until someone writes. Cancel, deadline, and the
 * buffer of a cancelled read stays untouched when bytes arrive later. */
static void fs_cancel(uint32_t fsb) {
    char dir[64] = "", path[128];
    polyio_completion c;
    uint8_t buf1[16], buf2[16], buf3[128];
    memset(buf1, 0, sizeof buf1);
    memset(buf2, 0, sizeof buf2);
    polyio_runtime *rt = new_fs_runtime(fsb);
    REQUIRE(rt);
    REQUIRE(fs_mkdtemp(dir, sizeof dir));
    snprintf(path, sizeof path, "%s/fifo", dir);
    REQUIRE(mkfifo(path, 0600) == 0);
    polyio_handle f = fs_open(rt, path, O_RDWR);
    REQUIRE(f != POLYIO_HANDLE_NONE);
    uint64_t a = ud_next(), b = ud_next();
    REQUIRE_ST(polyio_fs_read(rt, f, buf1, sizeof buf1, POLYIO_FS_AT_POSITION, a), OK);
    REQUIRE_ST(polyio_fs_read(rt, f, buf2, sizeof buf2, POLYIO_FS_AT_POSITION, b), OK);
    CHECK_EQ(reap_for(rt, 50), 0); /* both blocked */
    CHECK_ST(polyio_cancel(rt, a), OK);
    CHECK_ST(polyio_deadline(rt, b, 10), OK);
    CHECK_EQ(fs_wait(rt, a, &c), POLYIO_STATUS_CANCELED);
    CHECK_EQ(fs_wait(rt, b, &c), POLYIO_STATUS_TIMED_OUT);
    CHECK_ST(polyio_cancel(rt, a), POLYIO_STATUS_NOT_FOUND);
    /* Bytes that arrive now never land in the buffers given back. */
    int w = open(path, O_WRONLY | O_NONBLOCK);
    REQUIRE(w >= 0);
    uint8_t junk[64];
    memset(junk, 0xAA, sizeof junk);
    CHECK_EQ(write(w, junk, sizeof junk), 64);
    close(w);
    usleep(50 * 1000);
    CHECK_EQ(reap_for(rt, 20), 0); /* exactly once */
    static const uint8_t zero[16];
    CHECK(memcmp(buf1, zero, 16) == 0);
    CHECK(memcmp(buf2, zero, 16) == 0);
    /* The next read gets what no stale read took (on the blocking pool, the abandoned
     * jobs may have taken some: a blocking read cannot be stopped). */
    uint64_t d = ud_next();
    REQUIRE_ST(polyio_fs_read(rt, f, buf3, sizeof buf3, POLYIO_FS_AT_POSITION, d), OK);
    int64_t n = fs_wait(rt, d, &c);
    if (fsb == POLYIO_FS_BACKEND_URING)
        CHECK_EQ(n, 64);
    else
        CHECK(n == 64 || n == 48 || n == 32);
    fs_close(rt, f);
done:
    free_runtime(rt);
    if (dir[0])
        fs_rmdir(dir);
}

static void test_fs_cancel(void) {
    for (size_t i = 0; i < 2; i++)
        fs_cancel(FS_BACKENDS[i]);
}

/* Freeing a runtime with file ops in flight returns promptly, and no byte lands in a
 * caller's buffer afterwards (ASan and valgrind watch the freed memory). */
static void test_fs_free_in_flight(void) {
    for (size_t i = 0; i < 2; i++) {
        uint32_t fsb = FS_BACKENDS[i];
        char dir[64] = "", path[128], fifo[128];
        uint8_t *big = malloc(MiB), *raw = malloc(64);
        polyio_runtime *rt = new_fs_runtime(fsb);
        REQUIRE(rt && big && raw);
        REQUIRE(fs_mkdtemp(dir, sizeof dir));
        snprintf(path, sizeof path, "%s/big", dir);
        fill_random(big, MiB, 1);
        polyio_completion c;
        uint64_t ud = ud_next();
        REQUIRE_ST(polyio_fs_write_file(rt, path, big, MiB, O_WRONLY | O_CREAT | O_TRUNC, 0644, ud), OK);
        CHECK_EQ(fs_wait(rt, ud, &c), (int64_t)MiB);
        polyio_handle f = fs_open(rt, path, O_RDONLY);
        REQUIRE(f != POLYIO_HANDLE_NONE);
        for (int k = 0; k < 8; k++)
            REQUIRE_ST(polyio_fs_read(rt, f, big, MiB, 0, ud_next()), OK);
        REQUIRE_ST(polyio_fs_read_file(rt, path, ud_next()), OK);
        memset(raw, 0, 64);
        {
            /* Blocked until cancelled: the ring cancels it in the kernel; a pool job waiting
             * for a pipe sees that its op is gone. */
            snprintf(fifo, sizeof fifo, "%s/fifo", dir);
            REQUIRE(mkfifo(fifo, 0600) == 0);
            polyio_handle p = fs_open(rt, fifo, O_RDWR);
            REQUIRE(p != POLYIO_HANDLE_NONE);
            REQUIRE_ST(polyio_fs_read(rt, p, raw, 64, POLYIO_FS_AT_POSITION, ud_next()), OK);
            reap_for(rt, 20);
        }
        int64_t t0 = now_ms();
        free_runtime(rt);
        rt = NULL;
        CHECK(now_ms() - t0 < 5000);
        static const uint8_t zero[64];
        CHECK(memcmp(raw, zero, 64) == 0);
    done:
        free_runtime(rt);
        free(big);
        free(raw);
        if (dir[0])
            fs_rmdir(dir);
    }
}

/* POLYIO_FS_BACKEND=threads (read when a runtime is created) picks the blocking pool for
 * AUTO; an unknown fs_backend is refused. */
static void test_fs_backend_selection(void) {
    polyio_options opts;
    polyio_options_init(&opts);
    opts.fs_backend = 7;
    polyio_runtime *rt = NULL;
    CHECK_ST(polyio_runtime_new(&opts, &rt), POLYIO_STATUS_INVALID_ARGUMENT);
    CHECK(rt == NULL);
    setenv("POLYIO_FS_BACKEND", "threads", 1);
    rt = new_fs_runtime(POLYIO_FS_BACKEND_AUTO);
    unsetenv("POLYIO_FS_BACKEND");
    REQUIRE(rt);
    polyio_stats st;
    REQUIRE_ST(polyio_runtime_stats(rt, &st), OK);
    CHECK_EQ(st.fs_backend, POLYIO_FS_BACKEND_AUTO); /* not chosen yet */
    polyio_stat s;
    polyio_completion c;
    uint64_t ud = ud_next();
    REQUIRE_ST(polyio_fs_stat(rt, "/", &s, ud), OK);
    CHECK_EQ(fs_wait(rt, ud, &c), 0);
    REQUIRE_ST(polyio_runtime_stats(rt, &st), OK);
    CHECK_EQ(st.fs_backend, POLYIO_FS_BACKEND_THREADS);
done:
    free_runtime(rt);
}

static const struct {
    const char *name;
    void (*fn)(void);


} TESTS[] = {
    {"version", test_version},
    {"status_strings", test_status_strings},
    {"backend_selection", test_backend_selection},
    {"echo_epoll", test_echo_epoll},
    {"echo_thread", test_echo_thread},
    {"half_close", test_half_close},
    {"connect_refused", test_connect_refused},
    {"close_cancels_pending", test_close_cancels_pending},
    {"write_to_closed_peer", test_write_to_closed_peer},
    {"write_zero_length", test_write_zero_length},
    {"try_write", test_try_write},
    {"read_after_peer_reset", test_read_after_peer_reset},
    {"buffers_released", test_buffers_released},
    {"cancel_epoll", test_cancel_epoll},
    {"cancel_thread", test_cancel_thread},
    {"deadline_read_accept", test_deadline_read},
    {"deadline_connect", test_deadline_connect},
    {"timers_in_order", test_timers_in_order},
    {"next_timeout", test_next_timeout},
    {"reap_small_array", test_reap_small_array},
    {"queue_full", test_queue_full},
    {"bad_handles", test_bad_handles},
    {"handles_across_many_runtimes", test_handles_across_many_runtimes},
    {"null_and_invalid_arguments", test_null_and_invalid_arguments},
    {"free_in_flight_epoll", test_free_in_flight_epoll},
    {"free_in_flight_thread", test_free_in_flight_thread},
    {"shutdown_cancels_all", test_shutdown_cancels_all},
    {"shutdown_then_free_unreaped", test_shutdown_then_free_unreaped},
    {"wake_epoll", test_wake_epoll},
    {"wake_thread", test_wake_thread},
    {"foreign_loop_epoll", test_foreign_loop_epoll},
    {"foreign_loop_thread", test_foreign_loop_thread},
    {"reads_in_order", test_reads_in_order},
    {"accepts_in_order", test_accepts_in_order},
    {"inline_epoll", test_inline_epoll},
    {"inline_thread", test_inline_thread},
    {"ipv6_loopback", test_ipv6_loopback},
    {"connect_by_name", test_connect_by_name},
    {"getaddrinfo_localhost", test_getaddrinfo_localhost},
    {"garbage_hosts", test_garbage_hosts},
    {"lookup_cancel_and_deadline", test_lookup_cancel_and_deadline},
    {"shutdown_slow_lookups_epoll", test_shutdown_slow_lookups_epoll},
    {"shutdown_slow_lookups_thread", test_shutdown_slow_lookups_thread},
    {"reuseport_across_runtimes", test_reuseport_across_runtimes},
    {"runtimes_on_threads", test_runtimes_on_threads},
    {"runtime_moves_between_threads", test_runtime_moves_between_threads},
    {"wake_interrupts_reap", test_wake_interrupts_reap},
    {"wake_during_turn_epoll", test_wake_during_turn_epoll},
    {"wake_during_turn_thread", test_wake_during_turn_thread},
    {"backend_fd_not_app_epoll", test_backend_fd_not_app_epoll},
    {"multishot_in_order_epoll", test_multishot_in_order_epoll},
    {"multishot_in_order_thread", test_multishot_in_order_thread},
    {"multishot_cancel_loses_nothing", test_multishot_cancel_loses_nothing},
    {"multishot_deadline_close_reset", test_multishot_deadline_close_reset},
    {"multishot_hostile_releases", test_multishot_hostile_releases},
    {"partial_write_reports_bytes", test_partial_write_reports_bytes},
    {"wake_remembered", test_wake_remembered},
    {"cancel_completed_unreaped", test_cancel_completed_unreaped},
    {"keepalive_bounds", test_keepalive_bounds},
    {"unix_echo_epoll", test_unix_echo_epoll},
    {"unix_echo_thread", test_unix_echo_thread},
    {"unix_abstract", test_unix_abstract},
    {"unix_connect_missing", test_unix_connect_missing},
    {"unix_listen_busy_and_free_removes", test_unix_listen_busy_and_free_removes},
    {"unix_hostile_arguments", test_unix_hostile_arguments},
    {"udp_echo_epoll", test_udp_echo_epoll},
    {"udp_echo_thread", test_udp_echo_thread},
    {"udp_multishot_order_and_truncation", test_udp_multishot_order_and_truncation},
    {"udp_cancel_deadline_close", test_udp_cancel_deadline_close},
    {"udp_connected", test_udp_connected},
    {"udp_try_send", test_udp_try_send},
    {"udp_ipv6", test_udp_ipv6},
    {"udp_options_and_invalid_arguments", test_udp_options_and_invalid_arguments},
    {"fs_roundtrip", test_fs_roundtrip},
    {"fs_errors", test_fs_errors},
    {"fs_vectored", test_fs_vectored},
    {"fs_offsets", test_fs_offsets},
    {"fs_cancel", test_fs_cancel},
    {"fs_free_in_flight", test_fs_free_in_flight},
    {"fs_backend_selection", test_fs_backend_selection},
};

static void on_alarm(int sig) {
    (void)sig;
    static const char pre[] = "\nwatchdog: test ";
    static const char post[] = " hung inside a library call; aborting the run\n";
    ssize_t r = write(2, pre, sizeof pre - 1);
    r = write(2, g_test, strlen(g_test));
    r = write(2, post, sizeof post - 1);
    (void)r;
    _exit(3);
}

int main(int argc, char **argv) {
    const char *filter = argc > 1 ? argv[1] : NULL;
    const char *quick = getenv("POLYIO_TEST_QUICK");
    g_quick = quick && strcmp(quick, "1") == 0;
    unsigned watchdog = g_quick ? 600 : 120;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    setvbuf(stdout, NULL, _IOLBF, 0);

    int passed = 0, failed = 0;
    for (size_t i = 0; i < sizeof TESTS / sizeof TESTS[0]; i++) {
        if (filter && !strstr(TESTS[i].name, filter))
            continue;
        g_test = TESTS[i].name;
        atomic_store(&g_failed, false);
        g_nstash = 0;
        int64_t t0 = now_ms();
        alarm(watchdog);
        TESTS[i].fn();
        alarm(0);
        if (g_nstash > 0) /* a test must account for every completion it caused */
            fprintf(stderr, "[%s] note: %zu completion(s) left unclaimed\n", g_test, g_nstash);
        bool failed_now = atomic_load(&g_failed);
        printf("%s %s (%" PRId64 " ms)\n", failed_now ? "FAIL" : "ok  ", g_test, now_ms() - t0);
        if (failed_now)
            failed++;
        else
            passed++;
    }
    g_test = "(none)";
    if (passed + failed == 0)
        fprintf(stderr, "no test name contains \"%s\"\n", filter ? filter : "");
    printf("%d passed, %d failed\n", passed, failed);
    return failed > 0 || passed + failed == 0 ? 1 : 0;
}
