/*
 * libuv_echo: the libuv peer of the polyio echo benchmarks (tests/bench/run.py).
 * A plain uv_tcp echo server (TCP_NODELAY), or with --unix a uv_pipe one on a Unix socket
 * path: 64 KiB read buffers, one uv_write per read. With --udp, a uv_udp_t that sends each
 * datagram back with uv_udp_send (uv_udp_recv_start's buffers, one per datagram).
 *
 * Usage: libuv_echo HOST PORT | libuv_echo --unix PATH | libuv_echo --udp HOST PORT
 * Build: gcc -O2 -Wall -Wextra -Werror tests/bench/libuv_echo.c -luv -o build/bench/libuv_echo
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define READ_BUF_SIZE (64 * 1024)

/* One write in flight: the request and the read buffer it sends (freed in on_write). */
typedef struct {
    uv_write_t req;
    uv_buf_t buf;
} write_req_t;

static void die(const char *what, int err) {
    fprintf(stderr, "libuv_echo: %s: %s\n", what, uv_strerror(err));
    exit(1);
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
    (void)handle;
    (void)suggested;
    buf->base = malloc(READ_BUF_SIZE);
    buf->len = buf->base ? READ_BUF_SIZE : 0; /* len 0 makes libuv report UV_ENOBUFS */
}

static void on_close(uv_handle_t *handle) { free(handle); }

static void on_write(uv_write_t *req, int status) {
    write_req_t *wr = (write_req_t *)req;
    uv_handle_t *stream = (uv_handle_t *)req->handle;
    free(wr->buf.base);
    free(wr);
    if (status < 0 && !uv_is_closing(stream))
        uv_close(stream, on_close);
}

static void on_read(uv_stream_t *client, ssize_t nread, const uv_buf_t *buf) {
    if (nread > 0) {
        write_req_t *wr = malloc(sizeof *wr);
        if (!wr) {
            free(buf->base);
            uv_close((uv_handle_t *)client, on_close);
            return;
        }
        wr->buf = uv_buf_init(buf->base, (unsigned int)nread);
        int rc = uv_write(&wr->req, client, &wr->buf, 1, on_write);
        if (rc < 0) {
            free(wr->buf.base);
            free(wr);
            uv_close((uv_handle_t *)client, on_close);
        }
        return;
    }
    free(buf->base);
    /* nread == 0 is EAGAIN: nothing to do. Negative is EOF or an error: close. */
    if (nread < 0 && !uv_is_closing((uv_handle_t *)client))
        uv_close((uv_handle_t *)client, on_close);
}

/* A new client handle of the listener's kind (a TCP socket or a pipe), or NULL. */
static uv_stream_t *new_client(uv_stream_t *server) {
    if (server->type == UV_NAMED_PIPE) {
        uv_pipe_t *pipe = malloc(sizeof *pipe);
        if (pipe)
            uv_pipe_init(server->loop, pipe, 0);
        return (uv_stream_t *)pipe;
    }
    uv_tcp_t *tcp = malloc(sizeof *tcp);
    if (tcp)
        uv_tcp_init(server->loop, tcp);
    return (uv_stream_t *)tcp;
}

static void on_connection(uv_stream_t *server, int status) {
    if (status < 0) {
        fprintf(stderr, "libuv_echo: connection error: %s\n", uv_strerror(status));
        return;
    }
    uv_stream_t *client = new_client(server);
    if (!client)
        return;
    if (uv_accept(server, client) != 0) {
        uv_close((uv_handle_t *)client, on_close);
        return;
    }
    if (client->type == UV_TCP)
        uv_tcp_nodelay((uv_tcp_t *)client, 1);
    int rc = uv_read_start(client, on_alloc, on_read);
    if (rc < 0)
        uv_close((uv_handle_t *)client, on_close);
}

/* One datagram send in flight: the request and the receive buffer it sends back. */
typedef struct {
    uv_udp_send_t req;
    uv_buf_t buf;
} udp_send_t;

static void on_udp_send(uv_udp_send_t *req, int status) {
    (void)status; /* a datagram that cannot go back is dropped */
    udp_send_t *s = (udp_send_t *)req;
    free(s->buf.base);
    free(s);
}

static void on_udp_recv(uv_udp_t *sock, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *from,
                        unsigned flags) {
    (void)flags;
    if (nread < 0 || from == NULL) { /* an error, or nothing more to read now */
        free(buf->base);
        return;
    }
    udp_send_t *s = malloc(sizeof *s);
    if (!s) {
        free(buf->base);
        return;
    }
    s->buf = uv_buf_init(buf->base, (unsigned int)nread);
    if (uv_udp_send(&s->req, sock, &s->buf, 1, from, on_udp_send) < 0) {
        free(s->buf.base);
        free(s);
    }
}

/* Serves UDP on `addr`. */
static int serve_udp(const struct sockaddr *addr) {
    uv_loop_t *loop = uv_default_loop();
    uv_udp_t sock;
    int rc;
    uv_udp_init(loop, &sock);
    if ((rc = uv_udp_bind(&sock, addr, 0)) < 0)
        die("bind", rc);
    if ((rc = uv_udp_recv_start(&sock, on_alloc, on_udp_recv)) < 0)
        die("recv_start", rc);
    return uv_run(loop, UV_RUN_DEFAULT);
}

/* Serves on the Unix socket at `path` (which must not exist yet). */
static int serve_pipe(const char *path) {
    uv_loop_t *loop = uv_default_loop();
    uv_pipe_t server;
    int rc;
    uv_pipe_init(loop, &server, 0);
    if ((rc = uv_pipe_bind(&server, path)) < 0)
        die("bind", rc);
    if ((rc = uv_listen((uv_stream_t *)&server, 1024, on_connection)) < 0)
        die("listen", rc);
    return uv_run(loop, UV_RUN_DEFAULT);
}

int main(int argc, char **argv) {
    int udp = argc == 4 && strcmp(argv[1], "--udp") == 0;
    if (argc != 3 && !udp) {
        fprintf(stderr, "usage: libuv_echo HOST PORT | libuv_echo --unix PATH | libuv_echo --udp HOST PORT\n");
        return 2;
    }
    /* A client that exits with an echo in flight must not kill the server. */
    signal(SIGPIPE, SIG_IGN);
    if (!udp && strcmp(argv[1], "--unix") == 0)
        return serve_pipe(argv[2]);
    if (udp) {
        argv++;
        argc--;
    }

    const char *host = argv[1];
    char *end = NULL;
    errno = 0;
    long port = strtol(argv[2], &end, 10);
    if (errno != 0 || end == argv[2] || *end != '\0' || port < 1 || port > 65535) {
        fprintf(stderr, "libuv_echo: invalid port \"%s\"\n", argv[2]);
        return 2;
    }

    struct sockaddr_storage addr;
    int rc;
    if (strchr(host, ':'))
        rc = uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)&addr);
    else
        rc = uv_ip4_addr(host, (int)port, (struct sockaddr_in *)&addr);
    if (rc < 0) {
        fprintf(stderr, "libuv_echo: invalid address \"%s\": %s\n", host, uv_strerror(rc));
        return 2;
    }

    if (udp)
        return serve_udp((const struct sockaddr *)&addr);
    uv_loop_t *loop = uv_default_loop();
    uv_tcp_t server;
    uv_tcp_init(loop, &server);
    if ((rc = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0)) < 0)
        die("bind", rc);
    if ((rc = uv_listen((uv_stream_t *)&server, 1024, on_connection)) < 0)
        die("listen", rc);
    return uv_run(loop, UV_RUN_DEFAULT);
}
