/* The C worker of `make bench-files` (tests/bench/files/run.py drives it): runs one workload
 * for one row and prints {"secs": .., "cpu": ..}, every byte verified. Rows: polyio's C API
 * (polyio_fs_*) through io_uring and through its blocking pool, and libuv's uv_fs_* (its
 * thread pool, UV_THREADPOOL_SIZE as the runner sets it).
 *
 * Usage: files_c ROW WORKLOAD DIR COUNT, DIR laid out by run.py (pattern.bin, small/<i>,
 * big, offsets.bin, out/). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <polyio.h>
#include <uv.h>

#define IN_FLIGHT 64
#define SMALL 4096
#define CHUNK 65536
#define PERIOD 1048573ull

static const char *dir;
static uint8_t *pattern;
static uint64_t *offsets;
static size_t count;
static uint64_t big_len;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "files_c: %s:%d: failed: %s\n", __FILE__, __LINE__, #cond); \
            exit(1);                                                                 \
        }                                                                            \
    } while (0)

static const uint8_t *big_at(uint64_t offset) { return pattern + offset % PERIOD; }
static const uint8_t *small_file(size_t i) { return pattern + (uint64_t)i * 4099 % PERIOD; }

static void path_of(char *out, size_t cap, const char *sub, size_t i) {
    CHECK(snprintf(out, cap, "%s/%s/%zu", dir, sub, i) < (int)cap);
}

static uint8_t *slurp(const char *name, size_t *len) {
    char p[4096];
    CHECK(snprintf(p, sizeof p, "%s/%s", dir, name) < (int)sizeof p);
    int fd = open(p, O_RDONLY);
    CHECK(fd >= 0);
    struct stat st;
    CHECK(fstat(fd, &st) == 0);
    uint8_t *b = malloc((size_t)st.st_size + 1);
    CHECK(b != NULL);
    CHECK(read(fd, b, (size_t)st.st_size) == st.st_size);
    close(fd);
    *len = (size_t)st.st_size;
    return b;
}

static double cpu_secs(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- polyio C API ----------------------------------------------------------------------- */

static polyio_runtime *rt;

static polyio_completion reap_one(void) {
    polyio_completion c;
    while (polyio_reap(rt, &c, 1, 10000) == 0) {
    }
    return c;
}

static polyio_handle p_open(const char *path, int flags) {
    CHECK(polyio_fs_open(rt, path, flags, 0644, 0) == POLYIO_STATUS_OK);
    polyio_completion c = reap_one();
    CHECK(c.result == 0);
    return c.handle;
}

static void p_close(polyio_handle f) {
    CHECK(polyio_fs_close(rt, f, 0) == POLYIO_STATUS_OK);
    CHECK(reap_one().result == 0);
}

static void p_read_files(void) {
    size_t next = 0, live = 0;
    polyio_completion cs[IN_FLIGHT];
    char p[4096];
    while (next < count || live > 0) {
        for (; live < IN_FLIGHT && next < count; next++, live++) {
            path_of(p, sizeof p, "small", next);
            CHECK(polyio_fs_read_file(rt, p, next) == POLYIO_STATUS_OK);
        }
        size_t n = polyio_reap(rt, cs, IN_FLIGHT, 10000);
        for (size_t k = 0; k < n; k++, live--) {
            CHECK(cs[k].result == SMALL && cs[k].payload_len == SMALL);
            CHECK(memcmp(cs[k].payload, small_file(cs[k].user_data), SMALL) == 0);
            CHECK(polyio_buffer_release(cs[k].payload_id) == POLYIO_STATUS_OK);
        }
    }
}

static void p_preads(void) {
    char p[4096];
    CHECK(snprintf(p, sizeof p, "%s/big", dir) < (int)sizeof p);
    polyio_handle f = p_open(p, O_RDONLY);
    static uint8_t bufs[IN_FLIGHT][SMALL];
    size_t free_slots[IN_FLIGHT], nfree = IN_FLIGHT, next = 0, live = 0;
    uint64_t slot_off[IN_FLIGHT];
    polyio_completion cs[IN_FLIGHT];
    for (size_t i = 0; i < IN_FLIGHT; i++) free_slots[i] = i;
    while (next < count || live > 0) {
        for (; nfree > 0 && next < count; next++) {
            size_t slot = free_slots[--nfree];
            slot_off[slot] = offsets[next];
            /* Cached bytes now (polyio_fs_try_read), else an op through the ring. */
            bool full = false;
            CHECK(polyio_fs_try_read(rt, f, bufs[slot], SMALL, (int64_t)offsets[next], &full) ==
                  POLYIO_STATUS_OK);
            if (full) {
                CHECK(memcmp(bufs[slot], big_at(slot_off[slot]), SMALL) == 0);
                free_slots[nfree++] = slot;
                continue;
            }
            CHECK(polyio_fs_read(rt, f, bufs[slot], SMALL, (int64_t)offsets[next], slot) ==
                  POLYIO_STATUS_OK);
            live++;
        }
        if (live == 0) continue;
        size_t n = polyio_reap(rt, cs, IN_FLIGHT, 10000);
        for (size_t k = 0; k < n; k++, live--) {
            size_t slot = (size_t)cs[k].user_data;
            CHECK(cs[k].result == SMALL);
            CHECK(memcmp(bufs[slot], big_at(slot_off[slot]), SMALL) == 0);
            free_slots[nfree++] = slot;
        }
    }
    p_close(f);
}

static void p_sequential(void) {
    char p[4096];
    CHECK(snprintf(p, sizeof p, "%s/big", dir) < (int)sizeof p);
    polyio_handle f = p_open(p, O_RDONLY);
    static uint8_t buf[CHUNK];
    for (uint64_t at = 0; at < big_len; at += CHUNK) {
        CHECK(polyio_fs_read(rt, f, buf, CHUNK, POLYIO_FS_AT_POSITION, 0) == POLYIO_STATUS_OK);
        CHECK(reap_one().result == CHUNK);
        CHECK(memcmp(buf, big_at(at), CHUNK) == 0);
    }
    p_close(f);
}

static void p_write_fsync(void) {
    char p[4096];
    for (size_t i = 0; i < count; i++) {
        path_of(p, sizeof p, "out", i);
        polyio_handle f = p_open(p, O_WRONLY | O_CREAT | O_TRUNC);
        CHECK(polyio_fs_write(rt, f, small_file(i), SMALL, 0, 0) == POLYIO_STATUS_OK);
        CHECK(reap_one().result == SMALL);
        CHECK(polyio_fs_fsync(rt, f, 0, 0) == POLYIO_STATUS_OK);
        CHECK(reap_one().result == 0);
        p_close(f);
    }
}

/* ---- libuv uv_fs_* ---------------------------------------------------------------------- */

static uv_loop_t *loop;

/* One slot of the small-file reads: open, read, close, then the next file. */
typedef struct {
    uv_fs_t req;
    size_t file;
    uv_file fd;
    uint8_t buf[SMALL + 1];
} uv_slot;

static size_t uv_next;
static void uv_small_next(uv_slot *s);

static void uv_small_closed(uv_fs_t *req) {
    CHECK(req->result == 0);
    uv_fs_req_cleanup(req);
    uv_small_next((uv_slot *)req->data);
}

static void uv_small_read(uv_fs_t *req) {
    uv_slot *s = req->data;
    CHECK(req->result == SMALL);
    CHECK(memcmp(s->buf, small_file(s->file), SMALL) == 0);
    uv_fs_req_cleanup(req);
    CHECK(uv_fs_close(loop, &s->req, s->fd, uv_small_closed) == 0);
}

static void uv_small_opened(uv_fs_t *req) {
    uv_slot *s = req->data;
    CHECK(req->result >= 0);
    s->fd = (uv_file)req->result;
    uv_fs_req_cleanup(req);
    uv_buf_t b = uv_buf_init((char *)s->buf, sizeof s->buf);
    CHECK(uv_fs_read(loop, &s->req, s->fd, &b, 1, 0, uv_small_read) == 0);
}

static void uv_small_next(uv_slot *s) {
    if (uv_next >= count) return;
    s->file = uv_next++;
    char p[4096];
    path_of(p, sizeof p, "small", s->file);
    s->req.data = s;
    CHECK(uv_fs_open(loop, &s->req, p, O_RDONLY | O_CLOEXEC, 0, uv_small_opened) == 0);
}

static void uv_read_files(void) {
    static uv_slot slots[IN_FLIGHT];
    for (size_t i = 0; i < IN_FLIGHT; i++) uv_small_next(&slots[i]);
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK(uv_next >= count);
}

/* One slot of the random preads: read at the next offset, then the next. */
typedef struct {
    uv_fs_t req;
    uint64_t offset;
    uint8_t buf[SMALL];
} uv_pslot;

static uv_file big_fd;
static void uv_pread_next(uv_pslot *s);

static void uv_pread_done(uv_fs_t *req) {
    uv_pslot *s = req->data;
    CHECK(req->result == SMALL);
    CHECK(memcmp(s->buf, big_at(s->offset), SMALL) == 0);
    uv_fs_req_cleanup(req);
    uv_pread_next(s);
}

static void uv_pread_next(uv_pslot *s) {
    if (uv_next >= count) return;
    s->offset = offsets[uv_next++];
    s->req.data = s;
    uv_buf_t b = uv_buf_init((char *)s->buf, SMALL);
    CHECK(uv_fs_read(loop, &s->req, big_fd, &b, 1, (int64_t)s->offset, uv_pread_done) == 0);
}

static uv_file uv_open_sync(const char *p, int flags) {
    uv_fs_t req;
    int fd = uv_fs_open(loop, &req, p, flags | O_CLOEXEC, 0644, NULL);
    CHECK(fd >= 0);
    uv_fs_req_cleanup(&req);
    return fd;
}

static void uv_preads(void) {
    char p[4096];
    CHECK(snprintf(p, sizeof p, "%s/big", dir) < (int)sizeof p);
    big_fd = uv_open_sync(p, O_RDONLY);
    static uv_pslot slots[IN_FLIGHT];
    for (size_t i = 0; i < IN_FLIGHT; i++) uv_pread_next(&slots[i]);
    uv_run(loop, UV_RUN_DEFAULT);
    close(big_fd);
}

/* The sequential read: one chunk at a time, each on the thread pool. */
static uint64_t seq_at;
static uint8_t seq_buf[CHUNK];
static uv_fs_t seq_req;

static void uv_seq_done(uv_fs_t *req) {
    CHECK(req->result == CHUNK);
    CHECK(memcmp(seq_buf, big_at(seq_at), CHUNK) == 0);
    uv_fs_req_cleanup(req);
    seq_at += CHUNK;
    if (seq_at < big_len) {
        uv_buf_t b = uv_buf_init((char *)seq_buf, CHUNK);
        CHECK(uv_fs_read(loop, &seq_req, big_fd, &b, 1, -1, uv_seq_done) == 0);
    }
}

static void uv_sequential(void) {
    char p[4096];
    CHECK(snprintf(p, sizeof p, "%s/big", dir) < (int)sizeof p);
    big_fd = uv_open_sync(p, O_RDONLY);
    uv_buf_t b = uv_buf_init((char *)seq_buf, CHUNK);
    CHECK(uv_fs_read(loop, &seq_req, big_fd, &b, 1, -1, uv_seq_done) == 0);
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK(seq_at == big_len);
    close(big_fd);
}

/* Write + fsync, one file at a time: open, write, fsync, close, each on the thread pool. */
static size_t w_file;
static uv_file w_fd;
static uv_fs_t w_req;
static void uv_w_next(void);

static void uv_w_closed(uv_fs_t *req) {
    CHECK(req->result == 0);
    uv_fs_req_cleanup(req);
    w_file++;
    uv_w_next();
}

static void uv_w_synced(uv_fs_t *req) {
    CHECK(req->result == 0);
    uv_fs_req_cleanup(req);
    CHECK(uv_fs_close(loop, &w_req, w_fd, uv_w_closed) == 0);
}

static void uv_w_written(uv_fs_t *req) {
    CHECK(req->result == SMALL);
    uv_fs_req_cleanup(req);
    CHECK(uv_fs_fsync(loop, &w_req, w_fd, uv_w_synced) == 0);
}

static void uv_w_opened(uv_fs_t *req) {
    CHECK(req->result >= 0);
    w_fd = (uv_file)req->result;
    uv_fs_req_cleanup(req);
    uv_buf_t b = uv_buf_init((char *)small_file(w_file), SMALL);
    CHECK(uv_fs_write(loop, &w_req, w_fd, &b, 1, 0, uv_w_written) == 0);
}

static void uv_w_next(void) {
    if (w_file >= count) return;
    char p[4096];
    path_of(p, sizeof p, "out", w_file);
    CHECK(uv_fs_open(loop, &w_req, p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644,
                     uv_w_opened) == 0);
}

static void uv_write_fsync(void) {
    uv_w_next();
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK(w_file == count);
}

static uint32_t backend_of(const char *row) {
    return strstr(row, "uring") ? POLYIO_FS_BACKEND_URING : POLYIO_FS_BACKEND_THREADS;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: files_c ROW WORKLOAD DIR COUNT\n");
        return 2;
    }
    const char *row = argv[1], *wl = argv[2];
    dir = argv[3];
    count = strtoull(argv[4], NULL, 10);
    size_t len;
    pattern = slurp("pattern.bin", &len);
    CHECK(len == PERIOD + CHUNK);
    offsets = (uint64_t *)slurp("offsets.bin", &len);
    CHECK(len / 8 >= count || strcmp(wl, "random_pread_4k") != 0);
    char p[4096];
    struct stat st;
    CHECK(snprintf(p, sizeof p, "%s/big", dir) < (int)sizeof p);
    CHECK(stat(p, &st) == 0);
    big_len = (uint64_t)st.st_size;

    void (*run)(void) = NULL;
    int is_uv = strcmp(row, "libuv") == 0;
    if (is_uv) {
        loop = uv_default_loop();
        if (!strcmp(wl, "read_small_files")) run = uv_read_files;
        if (!strcmp(wl, "random_pread_4k")) run = uv_preads;
        if (!strcmp(wl, "sequential_64k")) run = uv_sequential;
        if (!strcmp(wl, "write_fsync_4k")) run = uv_write_fsync;
    } else if (!strcmp(row, "polyio-c-uring") || !strcmp(row, "polyio-c-threads")) {
        polyio_options opts;
        polyio_options_init(&opts);
        opts.fs_backend = backend_of(row);
        CHECK(polyio_runtime_new(&opts, &rt) == POLYIO_STATUS_OK);
        if (!strcmp(wl, "read_small_files")) run = p_read_files;
        if (!strcmp(wl, "random_pread_4k")) run = p_preads;
        if (!strcmp(wl, "sequential_64k")) run = p_sequential;
        if (!strcmp(wl, "write_fsync_4k")) run = p_write_fsync;
    }
    if (run == NULL) {
        fprintf(stderr, "files_c: unknown row %s or workload %s\n", row, wl);
        return 2;
    }
    double cpu = cpu_secs(), t = now();
    run();
    double secs = now() - t;
    printf("{\"secs\": %.6f, \"cpu\": %.6f}\n", secs, cpu_secs() - cpu);
    if (rt != NULL) {
        polyio_stats stats;
        CHECK(polyio_runtime_stats(rt, &stats) == POLYIO_STATUS_OK);
        CHECK(stats.fs_backend == backend_of(row));
        polyio_runtime_free(rt);
    }
    free(pattern);
    free(offsets);
    return 0;
}
