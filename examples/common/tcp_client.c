/* The blocking TCP client of tcp_client.h: one block per system. */
#include "tcp_client.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h>
typedef SOCKET sock_t;
#define BAD_SOCK INVALID_SOCKET
#else
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>
typedef int sock_t;
#define BAD_SOCK (-1)
#endif

struct example_tcp {
    sock_t fd;
    char err[128];
};

#ifdef _WIN32
static int sys_start(void)
{
    WSADATA wsa;
    return WSAStartup(MAKEWORD(2, 2), &wsa) == 0 ? 0 : -1;
}

/* Winsock's own text for its last error. */
static void last_error(char *buf, size_t len)
{
    int code = WSAGetLastError();
    DWORD n = FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, NULL,
                             (DWORD)code, 0, buf, (DWORD)len, NULL);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == '.'))
        buf[--n] = '\0';
    if (n == 0)
        snprintf(buf, len, "Winsock error %d", code);
}

static void sock_close(sock_t fd)
{
    closesocket(fd);
}

static void set_timeouts(sock_t fd, int timeout_s)
{
    DWORD ms = (DWORD)timeout_s * 1000u; /* Winsock's are in milliseconds */
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, (const char *)&ms, sizeof(ms));
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, (const char *)&ms, sizeof(ms));
}

/* One WSASend of both buffers; Winsock's blocking send takes them whole or fails. */
static int send_two(sock_t fd, const void *a, size_t alen, const void *b, size_t blen)
{
    if (alen > UINT32_MAX || blen > UINT32_MAX)
        return -1;
    WSABUF v[2] = {{(ULONG)alen, (char *)a}, {(ULONG)blen, (char *)b}};
    DWORD sent = 0;
    if (WSASend(fd, v, 2, &sent, 0, NULL, NULL) != 0)
        return -1;
    return sent == alen + blen ? 0 : -1;
}

static long recv_some(sock_t fd, void *buf, size_t n)
{
    return recv(fd, buf, n > INT32_MAX ? INT32_MAX : (int)n, 0);
}

static int interrupted(void)
{
    return 0; /* Winsock calls are not interrupted by signals */
}

double example_now_s(void)
{
    LARGE_INTEGER f, c;
    QueryPerformanceFrequency(&f);
    QueryPerformanceCounter(&c);
    return (double)c.QuadPart / (double)f.QuadPart;
}
#else
static int sys_start(void)
{
    return 0;
}

static void last_error(char *buf, size_t len)
{
    snprintf(buf, len, "%s", strerror(errno));
}

static void sock_close(sock_t fd)
{
    close(fd);
}

static void set_timeouts(sock_t fd, int timeout_s)
{
    struct timeval tv = {timeout_s, 0};
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* sendmsg of both buffers, again from where a partial one stopped. */
static int send_two(sock_t fd, const void *a, size_t alen, const void *b, size_t blen)
{
    struct iovec iov[2] = {{(void *)a, alen}, {(void *)b, blen}};
    struct iovec *v = iov;
    int cnt = 2;
    while (cnt > 0) {
        struct msghdr mh;
        memset(&mh, 0, sizeof(mh));
        mh.msg_iov = v;
        mh.msg_iovlen = (size_t)cnt;
        ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        size_t left = (size_t)n;
        while (cnt > 0 && left >= v->iov_len) {
            left -= v->iov_len;
            v++;
            cnt--;
        }
        if (cnt > 0) {
            v->iov_base = (uint8_t *)v->iov_base + left;
            v->iov_len -= left;
        }
    }
    return 0;
}

static long recv_some(sock_t fd, void *buf, size_t n)
{
    return (long)recv(fd, buf, n, 0);
}

static int interrupted(void)
{
    return errno == EINTR;
}

double example_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
#endif

example_tcp *example_tcp_dial(const char *host, const char *port, int timeout_s, char *why,
                              size_t len)
{
    example_tcp *t = calloc(1, sizeof(*t));
    if (t == NULL || sys_start() != 0) {
        snprintf(why, len, "%s", t == NULL ? "out of memory" : "no sockets (WSAStartup)");
        free(t);
        return NULL;
    }
    struct addrinfo hints, *res;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        snprintf(why, len, "%s:%s: %s", host, port, gai_strerror(rc));
        free(t);
        return NULL;
    }
    t->fd = BAD_SOCK;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        t->fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (t->fd == BAD_SOCK) {
            last_error(t->err, sizeof(t->err));
            continue;
        }
        if (connect(t->fd, ai->ai_addr, (int)ai->ai_addrlen) == 0)
            break;
        last_error(t->err, sizeof(t->err));
        sock_close(t->fd);
        t->fd = BAD_SOCK;
    }
    freeaddrinfo(res);
    if (t->fd == BAD_SOCK) {
        snprintf(why, len, "connect %s:%s: %s", host, port, t->err);
        free(t);
        return NULL;
    }
    /* Small frames go out at once rather than wait for Nagle; a dead server does not hang
     * the client forever. */
    int on = 1;
    (void)setsockopt(t->fd, IPPROTO_TCP, TCP_NODELAY, (const void *)&on, sizeof(on));
    set_timeouts(t->fd, timeout_s);
    return t;
}

int example_tcp_send2(example_tcp *t, const void *a, size_t alen, const void *b, size_t blen)
{
    if (send_two(t->fd, a, alen, b, blen) != 0) {
        last_error(t->err, sizeof(t->err));
        return -1;
    }
    return 0;
}

int example_tcp_recv_exact(example_tcp *t, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        long r = recv_some(t->fd, (char *)buf + got, n - got);
        if (r == 0)
            return 1;
        if (r < 0) {
            if (interrupted())
                continue;
            last_error(t->err, sizeof(t->err));
            return -1;
        }
        got += (size_t)r;
    }
    return 0;
}

const char *example_tcp_error(const example_tcp *t)
{
    return t->err;
}

void example_tcp_close(example_tcp *t)
{
    if (t != NULL) {
        sock_close(t->fd);
        free(t);
    }
}
