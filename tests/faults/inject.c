/* An LD_PRELOAD interposer that makes socket sends fail with a chosen errno, for the fault
 * tests (docs/reliability.md). Linux does not give ENOBUFS on loopback by itself.
 *
 * Read at every call, so a process can aim it after it starts (setenv):
 *   POLYIO_INJECT_ERRNO  the errno to fail with: ENOBUFS, ENOMEM, EMFILE, EPIPE, ECONNRESET
 *                        or a number. Unset: every call goes through.
 *   POLYIO_INJECT_PORT   fail only sends to this port: the socket's peer (connected
 *                        sockets) or the destination given to sendto/sendmsg/sendmmsg.
 *   POLYIO_INJECT_COUNT  fail at most this many calls in all (default: without limit).
 * Interposed: send, sendto, sendmsg, sendmmsg, write, writev (on sockets only). The first
 * 100 failures are each logged on stderr as "inject: <call> fd N -> errno E". */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

static atomic_long failed;

static int errno_from_env(void) {
    const char *e = getenv("POLYIO_INJECT_ERRNO");
    if (e == NULL || *e == '\0') return 0;
    static const struct { const char *name; int value; } names[] = {
        {"ENOBUFS", ENOBUFS}, {"ENOMEM", ENOMEM}, {"EMFILE", EMFILE},
        {"EPIPE", EPIPE}, {"ECONNRESET", ECONNRESET}, {"EIO", EIO},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(e, names[i].name) == 0) return names[i].value;
    return atoi(e);
}

static int port_of(const struct sockaddr *sa) {
    if (sa == NULL) return -1;
    if (sa->sa_family == AF_INET) return ntohs(((const struct sockaddr_in *)(const void *)sa)->sin_port);
    if (sa->sa_family == AF_INET6) return ntohs(((const struct sockaddr_in6 *)(const void *)sa)->sin6_port);
    return -1;
}

/* The errno to fail this call with, or 0 to let it through. `to` is the destination the
 * call names (NULL: the socket's peer). `sockets_only`: the fd must be a socket. */
static int should_fail(const char *call, int fd, const struct sockaddr *to) {
    int err = errno_from_env();
    if (err == 0) return 0;
    int saved = errno;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int port = -1;
    if (to != NULL) {
        port = port_of(to);
    } else if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0) {
        port = port_of((struct sockaddr *)&ss);
    }
    errno = saved;
    if (port < 0) return 0;
    const char *want = getenv("POLYIO_INJECT_PORT");
    if (want != NULL && *want != '\0' && atoi(want) != port) return 0;
    const char *count = getenv("POLYIO_INJECT_COUNT");
    long n = atomic_fetch_add(&failed, 1);
    if (count != NULL && *count != '\0' && n >= atol(count)) return 0;
    if (n < 100) fprintf(stderr, "inject: %s fd %d -> errno %d\n", call, fd, err);
    return err;
}

typedef ssize_t (*send_fn)(int, const void *, size_t, int);
typedef ssize_t (*sendto_fn)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
typedef ssize_t (*sendmsg_fn)(int, const struct msghdr *, int);
typedef int (*sendmmsg_fn)(int, struct mmsghdr *, unsigned int, int);
typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef ssize_t (*writev_fn)(int, const struct iovec *, int);

/* The real function (the next definition of `name` after this library). */
#define NEXT(name) \
    static name##_fn next_##name; \
    if (next_##name == NULL) next_##name = (name##_fn)dlsym(RTLD_NEXT, #name)

ssize_t send(int fd, const void *buf, size_t len, int flags) {
    NEXT(send);
    int err = should_fail("send", fd, NULL);
    if (err) { errno = err; return -1; }
    return next_send(fd, buf, len, flags);
}

ssize_t sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *to, socklen_t tolen) {
    NEXT(sendto);
    int err = should_fail("sendto", fd, to);
    if (err) { errno = err; return -1; }
    return next_sendto(fd, buf, len, flags, to, tolen);
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags) {
    NEXT(sendmsg);
    int err = should_fail("sendmsg", fd, msg->msg_namelen ? (const struct sockaddr *)msg->msg_name : NULL);
    if (err) { errno = err; return -1; }
    return next_sendmsg(fd, msg, flags);
}

int sendmmsg(int fd, struct mmsghdr *msgs, unsigned int n, int flags) {
    NEXT(sendmmsg);
    const struct msghdr *m = n > 0 ? &msgs[0].msg_hdr : NULL;
    int err = m ? should_fail("sendmmsg", fd, m->msg_namelen ? (const struct sockaddr *)m->msg_name : NULL) : 0;
    if (err) { errno = err; return -1; }
    return next_sendmmsg(fd, msgs, n, flags);
}

ssize_t write(int fd, const void *buf, size_t len) {
    NEXT(write);
    int err = should_fail("write", fd, NULL);
    if (err) { errno = err; return -1; }
    return next_write(fd, buf, len);
}

ssize_t writev(int fd, const struct iovec *iov, int n) {
    NEXT(writev);
    int err = should_fail("writev", fd, NULL);
    if (err) { errno = err; return -1; }
    return next_writev(fd, iov, n);
}
