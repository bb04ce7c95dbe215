/* The raw epoll echo server: the machine's limit reference for the echo benchmark.
 *
 * One thread, level-triggered epoll, non-blocking sockets, one shared 64 KiB read buffer.
 * A connection costs nothing in user space beyond one slot in an fd-indexed table until a
 * write comes up short; then the unsent tail is kept in a malloc'd buffer, the connection
 * stops reading and waits for EPOLLOUT, and the buffer is freed once it drains. This is the
 * least an echo server can do, so it is the yardstick for weft and libevent.
 *
 *   ref_epoll_echo --port PORT [--host ADDR] | --unix PATH
 *
 * Prints nothing per connection; SIGINT or SIGTERM stops it.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_util.h"

#define READ_BUF (64u * 1024u)

/* The unsent tail of a short write. */
struct pending {
    size_t off;
    size_t len;
    char data[];
};

static volatile sig_atomic_t stopping;
static struct pending **pend; /* indexed by fd */
static size_t npend;
static int epfd;
static bool tcp;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static int pend_reserve(int fd)
{
    if ((size_t)fd < npend)
        return 0;
    size_t n = npend ? npend : 1024;
    while (n <= (size_t)fd)
        n *= 2;
    struct pending **p = realloc(pend, n * sizeof(*p));
    if (!p)
        return -1;
    memset(p + npend, 0, (n - npend) * sizeof(*p));
    pend = p;
    npend = n;
    return 0;
}

static void conn_close(int fd)
{
    if ((size_t)fd < npend && pend[fd]) {
        free(pend[fd]);
        pend[fd] = NULL;
    }
    close(fd); /* also drops it from the epoll set */
}

static int watch(int op, int fd, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.fd = fd};
    return epoll_ctl(epfd, op, fd, &ev);
}

static void accept_all(int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int e = errno;
            if (e == EINTR || e == ECONNABORTED)
                continue;
            static bool told;
            if (e != EAGAIN && !told) {
                fprintf(stderr, "ref_epoll_echo: accept: %s\n", strerror(e));
                told = true;
            }
            return; /* EAGAIN, or EMFILE and friends: level-triggered, so we come back */
        }
        if (tcp) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        }
        if (pend_reserve(fd) < 0 || watch(EPOLL_CTL_ADD, fd, EPOLLIN) < 0)
            close(fd);
    }
}

/* Writes buf; keeps what the socket does not take and switches the fd to EPOLLOUT.
 * Returns -1 when the connection is dead. */
static int send_or_keep(int fd, const char *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, buf + done, len - done);
        if (n < 0) {
            int e = errno;
            if (e == EINTR)
                continue;
            if (e == EAGAIN)
                break;
            return -1;
        }
        done += (size_t)n;
    }
    if (done == len)
        return 0;
    struct pending *p = malloc(sizeof(*p) + (len - done));
    if (!p)
        return -1;
    p->off = 0;
    p->len = len - done;
    memcpy(p->data, buf + done, p->len);
    pend[fd] = p;
    return watch(EPOLL_CTL_MOD, fd, EPOLLOUT);
}

static void on_readable(int fd, char *buf)
{
    ssize_t n = read(fd, buf, READ_BUF);
    if (n < 0) {
        int e = errno;
        if (e == EAGAIN || e == EINTR)
            return;
        conn_close(fd);
        return;
    }
    if (n == 0 || send_or_keep(fd, buf, (size_t)n) < 0)
        conn_close(fd);
}

static void on_writable(int fd)
{
    struct pending *p = pend[fd];
    while (p->off < p->len) {
        ssize_t n = write(fd, p->data + p->off, p->len - p->off);
        if (n < 0) {
            int e = errno;
            if (e == EINTR)
                continue;
            if (e == EAGAIN)
                return;
            conn_close(fd);
            return;
        }
        p->off += (size_t)n;
    }
    free(p);
    pend[fd] = NULL;
    if (watch(EPOLL_CTL_MOD, fd, EPOLLIN) < 0)
        conn_close(fd);
}

int main(int argc, char **argv)
{
    const char *host, *path;
    int port;
    if (bench_server_args(argc, argv, &host, &port, &path) != 0)
        goto usage;
    tcp = path == NULL;

    bench_stop_on_signals(on_signal); /* epoll_wait sees EINTR */

    int lfd = bench_listen("ref_epoll_echo", host, port, path, SOCK_NONBLOCK | SOCK_CLOEXEC, false);
    if (lfd < 0)
        return 1;
    epfd = epoll_create1(EPOLL_CLOEXEC);
    static char buf[READ_BUF];
    if (epfd < 0 || watch(EPOLL_CTL_ADD, lfd, EPOLLIN) < 0) {
        fprintf(stderr, "ref_epoll_echo: epoll: %s\n", strerror(errno));
        return 1;
    }

    struct epoll_event evs[512];
    while (!stopping) {
        int n = epoll_wait(epfd, evs, 512, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "ref_epoll_echo: epoll_wait: %s\n", strerror(errno));
            return 1;
        }
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd)
                accept_all(lfd);
            else if ((size_t)fd < npend && pend[fd])
                on_writable(fd);
            else
                on_readable(fd, buf);
        }
    }

    for (size_t fd = 0; fd < npend; fd++)
        free(pend[fd]);
    free(pend);
    close(epfd);
    close(lfd);
    if (path)
        unlink(path);
    return 0;

usage:
    fprintf(stderr, "usage: ref_epoll_echo --port PORT [--host ADDR] | --unix PATH\n");
    return 2;
}
