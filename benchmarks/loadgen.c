/* Echo load generator for the weft benchmarks.
 *
 * Opens --conns connections to an echo server and keeps --pipeline messages of --size bytes
 * in flight on each for --duration seconds, spread over --threads threads with one epoll
 * each. Every echoed byte is checked against a pattern derived from the connection id and
 * the byte's offset in that connection's stream, so a lost, duplicated, reordered or
 * misrouted byte is caught; a mismatch is a hard error and the exit status is 1.
 *
 * --churn instead runs each of the --conns slots through connect, one echo, close, again
 * and again, which measures accept and teardown rather than steady throughput.
 *
 * --tls --tls-ca FILE speaks TLS (OpenSSL, non-blocking, the server verified against the CA in
 * FILE and its certificate checked for --host or --tls-name). Steady mode does each
 * connection's handshake before the clock starts; churn does a full handshake for every
 * connection (no session is ever resumed), so it measures handshakes. The echo is verified
 * the same way on the plaintext.
 *
 * Prints a human line and one machine-readable line:
 *   RESULT msgs_per_s=... mb_per_s=... p50_us=... p99_us=... msgs=... errors=0
 * MB/s counts echoed payload in one direction (10^6 bytes). Latency is per message, from the
 * moment it is handed to the socket to the moment its last byte has come back; in churn mode
 * it is the whole cycle from connect() to the echo's last byte.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "loadgen_tls.h"

/* The pattern: a table of pseudo-random bytes whose period is a prime, so that a stream
 * shifted by any amount short of a multiple of 65521 bytes no longer matches. It is longer
 * than one period by WRITE_MAX so any write or comparison of up to WRITE_MAX bytes is one
 * contiguous span of the table. */
#define PATTERN_PERIOD 65521u
#define WRITE_MAX      (256u * 1024u)
#define READ_BUF       (256u * 1024u)
#define MAX_THREADS    64
#define CONNECT_MS     5000

/* With --frame the stream is a run of framed messages (a line ending in "\n", or a 4-byte
 * big-endian length and its payload) so a codec server can echo frame by frame; the table
 * then repeats every whole number of messages and each connection starts on a message. */
enum frame_kind { FRAME_NONE, FRAME_LINE, FRAME_LENGTH_FIELD };
static uint8_t *pattern;
static uint32_t period = PATTERN_PERIOD; /* the table repeats every period bytes */
static size_t table_len;                 /* period + WRITE_MAX */

enum conn_state { CONN_IDLE, CONN_CONNECTING, CONN_HANDSHAKE, CONN_ACTIVE };

struct conn {
    int fd;
    struct ssl_st *ssl; /* --tls: this connection's TLS state, NULL otherwise */
    enum conn_state state;
    bool want_out;      /* EPOLLOUT is registered */
    uint32_t id;        /* names the pattern; a new one for each churn connection */
    uint32_t phase;     /* where byte 0 of this stream sits in the table */
    uint64_t sent;      /* bytes written */
    uint64_t queued;    /* messages handed out (sent or waiting to be) */
    uint64_t recvd;     /* bytes echoed back and verified */
    uint64_t done;      /* messages fully echoed */
    uint64_t t_connect; /* churn: when connect() was called */
    uint64_t *stamps;   /* send time of message m at m % pipeline */
};

struct options {
    const char *host;
    int port;
    int conns;
    size_t size;
    int pipeline;
    double duration;
    bool churn;
    int threads;
    int src_spread;
    enum frame_kind frame;
    bool tls;
    const char *tls_ca;   /* the CA file the server's certificate must chain to */
    const char *tls_name; /* the name (or IP) checked in it; --host by default */
};

struct worker {
    int index;
    int epfd;
    pthread_t tid;
    struct conn *conns; /* this worker's connections */
    int nconns;
    uint8_t *buf;
    struct bench_hist hist;
    uint64_t msgs;     /* messages completed inside the window */
    uint64_t bytes;    /* echoed payload bytes inside the window */
    uint64_t connects; /* churn: connections completed inside the window */
    uint32_t next_id;
};

static struct options opt = {.host = "127.0.0.1",
                             .port = 0,
                             .conns = 64,
                             .size = 64,
                             .pipeline = 1,
                             .duration = 3.0,
                             .churn = false,
                             .threads = 1};

static struct sockaddr_storage server_addr;
static socklen_t server_addrlen;
static bool server_is_unix;
static char server_label[160];
static uint64_t t_start, t_deadline;
static atomic_int failed;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Reports an error and makes every worker stop; the run then exits non-zero. */
static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("loadgen: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    atomic_fetch_add(&failed, 1);
}

static int pattern_init(void)
{
    if (opt.frame != FRAME_NONE) {
        uint64_t msgs = (PATTERN_PERIOD + opt.size - 1) / opt.size;
        period = (uint32_t)(msgs * opt.size);
    }
    table_len = (size_t)period + WRITE_MAX;
    pattern = malloc(table_len);
    if (pattern == NULL)
        return -1;
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (uint32_t i = 0; i < period; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        pattern[i] = (uint8_t)(x >> 32);
        size_t within = i % opt.size;
        if (opt.frame == FRAME_LINE) {
            if (pattern[i] == '\n' || pattern[i] == '\r')
                pattern[i] = 'x';
            if (within == opt.size - 1)
                pattern[i] = '\n';
        } else if (opt.frame == FRAME_LENGTH_FIELD && within < 4) {
            uint32_t payload = (uint32_t)(opt.size - 4);
            pattern[i] = (uint8_t)(payload >> (8 * (3 - within)));
        }
    }
    for (size_t i = period; i < table_len; i++)
        pattern[i] = pattern[i - period];
    return 0;
}

static uint32_t phase_of(uint32_t id)
{
    uint64_t h = (uint64_t)id * 2654435761u;
    if (opt.frame != FRAME_NONE) /* start on a message boundary */
        return (uint32_t)((h % (period / opt.size)) * opt.size);
    return (uint32_t)(h % period);
}

static int resolve(void)
{
    if (opt.host[0] == '/') {
        if (opt.src_spread > 0) {
            fprintf(stderr, "loadgen: --src-spread is for TCP servers only\n");
            return -1;
        }
        struct sockaddr_un *un = (struct sockaddr_un *)&server_addr;
        if (strlen(opt.host) >= sizeof(un->sun_path)) {
            fprintf(stderr, "loadgen: unix socket path too long: %s\n", opt.host);
            return -1;
        }
        un->sun_family = AF_UNIX;
        strcpy(un->sun_path, opt.host);
        server_addrlen = sizeof(*un);
        server_is_unix = true;
        snprintf(server_label, sizeof(server_label), "unix:%s", opt.host);
        return 0;
    }
    if (opt.port <= 0 || opt.port > 65535) {
        fprintf(stderr, "loadgen: --port 1..65535 is required for a TCP host\n");
        return -1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res;
    char port[16];
    snprintf(port, sizeof(port), "%d", opt.port);
    int rc = getaddrinfo(opt.host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "loadgen: cannot resolve %s: %s\n", opt.host, gai_strerror(rc));
        return -1;
    }
    if (opt.src_spread > 0 &&
        (res->ai_family != AF_INET ||
         (ntohl(((struct sockaddr_in *)res->ai_addr)->sin_addr.s_addr) >> 24) != 127)) {
        fprintf(stderr, "loadgen: --src-spread needs an IPv4 loopback server (127.x.x.x)\n");
        freeaddrinfo(res);
        return -1;
    }
    memcpy(&server_addr, res->ai_addr, res->ai_addrlen);
    server_addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    snprintf(server_label, sizeof(server_label), "%s:%d", opt.host, opt.port);
    return 0;
}

/* Starts a non-blocking connect for stream `id`. Returns the fd, or -1 with errno set.
 *
 * With --src-spread N the source address cycles through 127.0.0.2 .. 127.0.0.N+1. Churn
 * leaves a TIME_WAIT socket per connection on our side, and with tens of thousands of them
 * on one address pair the kernel's ephemeral-port search in connect() becomes the
 * bottleneck, so churn would measure the client's kernel rather than the server.
 * IP_BIND_ADDRESS_NO_PORT leaves the port choice to connect(), which then sees a fresh
 * address pair. */
static int connect_start(uint32_t id)
{
    int fd = socket(server_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (!server_is_unix) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    if (opt.src_spread > 0) {
        int one = 1;
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(0x7f000002u + id % (uint32_t)opt.src_spread);
        if (setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one)) < 0 ||
            bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
    }
    if (connect(fd, (struct sockaddr *)&server_addr, server_addrlen) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static const char *server_name(void)
{
    return server_label;
}

/* Connects one socket and waits for the handshake, bounded by CONNECT_MS. */
static int connect_blocking(uint32_t id)
{
    int fd = connect_start(id);
    if (fd < 0)
        return -1;
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int rc;
    do
        rc = poll(&p, 1, CONNECT_MS);
    while (rc < 0 && errno == EINTR);
    if (rc == 0) {
        close(fd);
        errno = ETIMEDOUT;
        return -1;
    }
    int err = 0;
    socklen_t len = sizeof(err);
    if (rc < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
        close(fd);
        errno = err ? err : errno;
        return -1;
    }
    return fd;
}

static int ep_set(struct worker *w, struct conn *c, int op, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(w->epfd, op, c->fd, &ev) < 0) {
        fail("epoll_ctl: %s", strerror(errno));
        return -1;
    }
    return 0;
}

static void conn_reset_stream(struct conn *c, uint32_t id)
{
    c->id = id;
    c->phase = phase_of(id);
    c->sent = c->queued = c->recvd = c->done = 0;
}

/* Checks n received bytes against the pattern at the connection's receive offset. */
static int verify(struct conn *c, const uint8_t *p, size_t n)
{
    if (c->recvd + n > c->sent) {
        fail("conn %" PRIu32 ": server sent %zu bytes more than were written to it", c->id,
             (size_t)(c->recvd + n - c->sent));
        return -1;
    }
    uint64_t off = c->recvd;
    while (n > 0) {
        uint32_t pos = (uint32_t)((c->phase + off) % period);
        size_t k = n < table_len - pos ? n : table_len - pos;
        if (memcmp(p, pattern + pos, k) != 0) {
            size_t i = 0;
            while (p[i] == pattern[pos + i])
                i++;
            fail("conn %" PRIu32 ": echoed byte %" PRIu64 " is 0x%02x, expected 0x%02x", c->id,
                 off + i, p[i], pattern[pos + i]);
            return -1;
        }
        p += k;
        n -= k;
        off += k;
    }
    return 0;
}

/* ---- TLS (--tls, loadgen_tls.c) ---- */

static void tls_close(struct conn *c)
{
    lg_tls_close(&c->ssl, c->state == CONN_ACTIVE);
}

/* A new TLS client on c's connected socket; false when none could be made (reported). */
static bool tls_start(struct conn *c)
{
    char why[LG_TLS_WHY];
    c->ssl =
        lg_tls_new(c->fd, opt.tls_name ? opt.tls_name : (server_is_unix ? NULL : opt.host), why);
    if (c->ssl == NULL)
        fail("cannot make a TLS connection: %s", why);
    return c->ssl != NULL;
}

/* One step of c's handshake: 1 done, 0 not yet (*want says for what), -1 failed (reported). */
static int tls_step(struct conn *c, enum lg_tls_want *want)
{
    char why[LG_TLS_WHY];
    int r = lg_tls_step(c->ssl, want, why);
    if (r < 0)
        fail("conn %" PRIu32 ": TLS handshake with %s failed: %s", c->id, server_label, why);
    return r;
}

/* Steady mode: the handshake on a connected socket, before the clock starts, bounded by
 * CONNECT_MS. */
static int tls_handshake_blocking(struct conn *c)
{
    if (!tls_start(c))
        return -1;
    uint64_t deadline = now_ns() + (uint64_t)CONNECT_MS * 1000000u;
    for (;;) {
        enum lg_tls_want want = LG_TLS_WANT_READ;
        int r = tls_step(c, &want);
        if (r != 0)
            return r > 0 ? 0 : -1;
        uint64_t now = now_ns();
        if (now >= deadline) {
            fail("conn %" PRIu32 ": TLS handshake with %s: no answer in %d ms", c->id, server_label,
                 CONNECT_MS);
            return -1;
        }
        struct pollfd p = {.fd = c->fd, .events = want == LG_TLS_WANT_WRITE ? POLLOUT : POLLIN};
        if (poll(&p, 1, (int)((deadline - now) / 1000000u) + 1) < 0 && errno != EINTR) {
            fail("poll: %s", strerror(errno));
            return -1;
        }
    }
}

/* Sends up to len bytes: the count taken, 0 when the socket (or TLS) takes nothing now, -1 on
 * an error (reported). */
static ssize_t conn_send(struct conn *c, const uint8_t *p, size_t len)
{
    if (c->ssl != NULL) {
        char why[LG_TLS_WHY];
        ssize_t n = lg_tls_send(c->ssl, p, len, why); /* len <= WRITE_MAX */
        if (n < 0)
            fail("conn %" PRIu32 ": TLS write: %s", c->id, why);
        return n;
    }
    for (;;) {
        ssize_t n = write(c->fd, p, len);
        if (n >= 0)
            return n;
        int e = errno;
        if (e == EINTR)
            continue;
        if (e == EAGAIN || e == ENOTCONN)
            return 0; /* full, or (churn) the handshake has not finished yet */
        fail("conn %" PRIu32 ": write: %s", c->id, strerror(e));
        return -1;
    }
}

/* Receives into buf: the count, 0 when nothing is there now, -1 when the connection failed or
 * the server closed it (reported). */
static ssize_t conn_recv(struct conn *c, uint8_t *buf, size_t len)
{
    int e;
    if (c->ssl != NULL) {
        char why[LG_TLS_WHY];
        ssize_t n = lg_tls_recv(c->ssl, buf, len, why);
        if (n == -2)
            goto closed;
        if (n == -1)
            fail("conn %" PRIu32 ": TLS read from %s: %s", c->id, server_label, why);
        return n;
    }
    ssize_t n = read(c->fd, buf, len);
    if (n > 0)
        return n;
    if (n == 0)
        goto closed;
    e = errno;
    if (e == EAGAIN || e == EINTR)
        return 0;
    if (c->state == CONN_CONNECTING)
        fail("cannot connect to %s: %s", server_label, strerror(e));
    else
        fail("conn %" PRIu32 ": read from %s: %s", c->id, server_label, strerror(e));
    return -1;
closed:
    fail("conn %" PRIu32 ": %s closed the connection with %" PRIu64 " bytes unechoed", c->id,
         server_label, c->sent - c->recvd);
    return -1;
}

static int conn_want_out(struct worker *w, struct conn *c, bool want)
{
    if (want == c->want_out)
        return 0;
    c->want_out = want;
    return ep_set(w, c, EPOLL_CTL_MOD, EPOLLIN | (want ? EPOLLOUT : 0));
}

/* Writes whatever is queued and not yet sent; registers EPOLLOUT only while some is left. */
static int conn_flush(struct worker *w, struct conn *c)
{
    uint64_t target = c->queued * opt.size;
    while (c->sent < target) {
        uint64_t left = target - c->sent;
        size_t len = left < WRITE_MAX ? (size_t)left : WRITE_MAX;
        uint32_t pos = (uint32_t)((c->phase + c->sent) % period);
        ssize_t n = conn_send(c, pattern + pos, len);
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        c->sent += (uint64_t)n;
    }
    return conn_want_out(w, c, c->sent < target);
}

/* Keeps `pipeline` messages in flight, stamping each with the time it is handed out. */
static void conn_top_up(struct conn *c, uint64_t now)
{
    while (c->queued - c->done < (uint64_t)opt.pipeline) {
        c->stamps[c->queued % (uint64_t)opt.pipeline] = now;
        c->queued++;
    }
}

static void churn_open(struct worker *w, struct conn *c);

static void churn_finish(struct worker *w, struct conn *c, uint64_t now)
{
    tls_close(c);
    close(c->fd);
    c->fd = -1;
    c->state = CONN_IDLE;
    c->want_out = false;
    if (now < t_deadline) {
        bench_hist_add(&w->hist, now - c->t_connect);
        w->msgs++;
        w->bytes += opt.size;
        w->connects++;
        churn_open(w, c);
    }
}

/* Churn: connect, queue the one message and try to send it at once; on loopback the
 * handshake has usually completed by the time connect() returns. With TLS the message waits
 * for the TLS handshake, which starts once the socket is connected. */
static void churn_open(struct worker *w, struct conn *c)
{
    conn_reset_stream(c, w->next_id);
    w->next_id += (uint32_t)opt.threads;
    c->t_connect = now_ns();
    c->fd = connect_start(c->id);
    if (c->fd < 0) {
        int e = errno;
        if (e == EADDRNOTAVAIL)
            fail("cannot connect to %s: %s (out of local ports; too many connections in "
                 "TIME_WAIT?)",
                 server_name(), strerror(e));
        else
            fail("cannot connect to %s: %s", server_name(), strerror(e));
        return;
    }
    c->state = CONN_CONNECTING;
    c->want_out = true;
    if (ep_set(w, c, EPOLL_CTL_ADD, EPOLLIN | EPOLLOUT) < 0)
        return;
    c->queued = 1;
    c->stamps[0] = c->t_connect;
    if (!opt.tls)
        conn_flush(w, c);
}

/* Counts and verifies n echoed bytes. Returns 1 when the connection is done with (churn: it
 * was closed, and the slot may already hold the next one), 0 to go on, -1 on an error. */
static int conn_received(struct worker *w, struct conn *c, size_t n)
{
    if (verify(c, w->buf, n) < 0)
        return -1;
    c->recvd += (uint64_t)n;
    uint64_t now = now_ns();
    if (opt.churn) {
        if (c->recvd == opt.size) {
            churn_finish(w, c, now);
            return 1;
        }
        return 0;
    }
    bool in_window = now < t_deadline;
    while ((c->done + 1) * opt.size <= c->recvd) {
        bench_hist_add(&w->hist, now - c->stamps[c->done % (uint64_t)opt.pipeline]);
        c->done++;
        if (in_window) {
            w->msgs++;
            w->bytes += opt.size;
        }
    }
    if (in_window) {
        conn_top_up(c, now);
        if (conn_flush(w, c) < 0)
            return -1;
    }
    return 0;
}

static void conn_writable(struct worker *w, struct conn *c);

static void conn_readable(struct worker *w, struct conn *c)
{
    if (c->state == CONN_CONNECTING && opt.tls) {
        conn_writable(w, c); /* a failed connect, or the TLS handshake's first step */
        return;
    }
    if (c->state == CONN_HANDSHAKE) {
        conn_writable(w, c);
        return;
    }
    /* Plain: one read per readiness. TLS: until OpenSSL wants more, because with read-ahead
     * it may hold decrypted records the socket no longer signals. */
    do {
        ssize_t n = conn_recv(c, w->buf, READ_BUF);
        if (n <= 0 || conn_received(w, c, (size_t)n) != 0)
            return;
    } while (c->ssl != NULL);
}

static void conn_writable(struct worker *w, struct conn *c)
{
    if (c->state == CONN_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        if (err != 0) {
            fail("cannot connect to %s: %s", server_name(), strerror(err));
            return;
        }
        c->state = CONN_ACTIVE;
        if (opt.tls) {
            if (!tls_start(c))
                return;
            c->state = CONN_HANDSHAKE;
        }
    }
    if (c->state == CONN_HANDSHAKE) {
        enum lg_tls_want want = LG_TLS_WANT_READ;
        int r = tls_step(c, &want);
        if (r < 0)
            return;
        if (r == 0) {
            conn_want_out(w, c, want == LG_TLS_WANT_WRITE);
            return;
        }
        c->state = CONN_ACTIVE; /* the queued message goes now */
    }
    conn_flush(w, c);
}

static void *worker_run(void *arg)
{
    struct worker *w = arg;
    struct epoll_event evs[256];
    uint64_t now = now_ns();

    for (int i = 0; i < w->nconns; i++) {
        struct conn *c = &w->conns[i];
        if (opt.churn) {
            churn_open(w, c);
        } else {
            if (ep_set(w, c, EPOLL_CTL_ADD, EPOLLIN) < 0)
                break;
            conn_top_up(c, now);
            conn_flush(w, c);
        }
        if (atomic_load(&failed))
            break;
    }

    while (!atomic_load_explicit(&failed, memory_order_relaxed)) {
        now = now_ns();
        if (now >= t_deadline)
            break;
        int timeout = (int)((t_deadline - now) / 1000000u) + 1;
        if (timeout > 100)
            timeout = 100;
        int n = epoll_wait(w->epfd, evs, 256, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fail("epoll_wait: %s", strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            uint32_t e = evs[i].events;
            if (c->fd < 0)
                continue;
            if (e & (EPOLLIN | EPOLLERR | EPOLLHUP))
                conn_readable(w, c);
            if ((e & EPOLLOUT) && c->fd >= 0 && c->want_out)
                conn_writable(w, c);
        }
    }
    return NULL;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: loadgen --port PORT [options]\n"
               "  --host ADDR     server address, or a unix socket path starting with '/'"
               " (default 127.0.0.1)\n"
               "  --port PORT     server TCP port\n"
               "  --conns N       concurrent connections (default 64)\n"
               "  --size BYTES    message size (default 64)\n"
               "  --pipeline N    messages in flight per connection (default 1)\n"
               "  --duration S    seconds to run (default 3)\n"
               "  --churn         connect, one echo, close, repeat (per connection slot)\n"
               "  --threads N     threads, one epoll each (default 1)\n"
               "  --src-spread N  use N loopback source addresses 127.0.0.2.. (IPv4 loopback\n"
               "                  server only; keeps churn from exhausting one address pair)\n"
               "  --frame KIND    none (default), line (each message ends in \\n) or\n"
               "                  length-field (4-byte big-endian length + payload), for\n"
               "                  a server that echoes frames through a codec\n"
               "  --tls           speak TLS: handshake once per connection (churn: a full\n"
               "                  handshake for each), then the same verified echo\n"
               "  --tls-ca FILE   the CA (PEM) the server's certificate must chain to;\n"
               "                  required with --tls\n"
               "  --tls-name NAME the name or IP address the certificate must be for\n"
               "                  (default --host), also sent as SNI when it is a name\n");
}

static int parse_int(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv)
{
    static const struct option longopts[] = {{"host", required_argument, NULL, 'h'},
                                             {"port", required_argument, NULL, 'p'},
                                             {"conns", required_argument, NULL, 'c'},
                                             {"size", required_argument, NULL, 's'},
                                             {"pipeline", required_argument, NULL, 'P'},
                                             {"duration", required_argument, NULL, 'd'},
                                             {"churn", no_argument, NULL, 'C'},
                                             {"threads", required_argument, NULL, 't'},
                                             {"src-spread", required_argument, NULL, 'S'},
                                             {"frame", required_argument, NULL, 'F'},
                                             {"tls", no_argument, NULL, 'T'},
                                             {"tls-ca", required_argument, NULL, 'A'},
                                             {"tls-name", required_argument, NULL, 'N'},
                                             {"help", no_argument, NULL, 'H'},
                                             {NULL, 0, NULL, 0}};
    int ch, li = 0;
    long v;
    while ((ch = getopt_long(argc, argv, "", longopts, &li)) != -1) {
        switch (ch) {
        case 'h':
            opt.host = optarg;
            break;
        case 'p':
            if (parse_int(optarg, 1, 65535, &v) < 0)
                goto bad;
            opt.port = (int)v;
            break;
        case 'c':
            if (parse_int(optarg, 1, 1000000, &v) < 0)
                goto bad;
            opt.conns = (int)v;
            break;
        case 's':
            if (parse_int(optarg, 1, 64L * 1024 * 1024, &v) < 0)
                goto bad;
            opt.size = (size_t)v;
            break;
        case 'P':
            if (parse_int(optarg, 1, 1 << 20, &v) < 0)
                goto bad;
            opt.pipeline = (int)v;
            break;
        case 'd': {
            char *end;
            opt.duration = strtod(optarg, &end);
            if (end == optarg || *end || !(opt.duration > 0) || opt.duration > 86400)
                goto bad;
            break;
        }
        case 'C':
            opt.churn = true;
            break;
        case 't':
            if (parse_int(optarg, 1, MAX_THREADS, &v) < 0)
                goto bad;
            opt.threads = (int)v;
            break;
        case 'S':
            if (parse_int(optarg, 0, 254, &v) < 0)
                goto bad;
            opt.src_spread = (int)v;
            break;
        case 'F':
            if (strcmp(optarg, "none") == 0)
                opt.frame = FRAME_NONE;
            else if (strcmp(optarg, "line") == 0)
                opt.frame = FRAME_LINE;
            else if (strcmp(optarg, "length-field") == 0)
                opt.frame = FRAME_LENGTH_FIELD;
            else
                goto bad;
            break;
        case 'T':
            opt.tls = true;
            break;
        case 'A':
            opt.tls_ca = optarg;
            break;
        case 'N':
            opt.tls_name = optarg;
            break;
        case 'H':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
        continue;
    bad:
        fprintf(stderr, "loadgen: bad value for --%s: %s\n", longopts[li].name, optarg);
        usage(stderr);
        return -1;
    }
    if (optind < argc) {
        fprintf(stderr, "loadgen: unexpected argument: %s\n", argv[optind]);
        return -1;
    }
    if (opt.churn)
        opt.pipeline = 1;
    if (opt.tls != (opt.tls_ca != NULL) || (opt.tls_name != NULL && !opt.tls)) {
        fprintf(stderr, "loadgen: --tls needs --tls-ca FILE (the server is always verified), "
                        "and --tls-ca and --tls-name need --tls\n");
        return -1;
    }
    if ((opt.frame == FRAME_LINE && opt.size < 1) ||
        (opt.frame == FRAME_LENGTH_FIELD && opt.size < 4)) {
        fprintf(stderr, "loadgen: --size too small for --frame\n");
        return -1;
    }
    if (opt.threads > opt.conns)
        opt.threads = opt.conns;
    return 0;
}

static void raise_nofile(rlim_t want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want) {
        rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    if (parse_args(argc, argv) < 0)
        return 2;
    if (resolve() < 0)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    raise_nofile((rlim_t)opt.conns + 64);
    if (opt.tls && lg_tls_init(opt.tls_ca) < 0)
        return 2;
    if (pattern_init() < 0) {
        fprintf(stderr, "loadgen: out of memory\n");
        return 2;
    }

    struct conn *conns = calloc((size_t)opt.conns, sizeof(*conns));
    uint64_t *stamps = calloc((size_t)opt.conns * (size_t)opt.pipeline, sizeof(*stamps));
    struct worker *workers = calloc((size_t)opt.threads, sizeof(*workers));
    if (!conns || !stamps || !workers) {
        fprintf(stderr, "loadgen: out of memory\n");
        return 2;
    }

    /* Connections are dealt to workers in contiguous runs. Steady mode connects them all
     * before the clock starts, so the window measures echo traffic only. */
    for (int i = 0; i < opt.conns; i++) {
        struct conn *c = &conns[i];
        c->fd = -1;
        c->stamps = stamps + (size_t)i * (size_t)opt.pipeline;
        conn_reset_stream(c, (uint32_t)i);
        if (!opt.churn) {
            c->fd = connect_blocking((uint32_t)i);
            if (c->fd < 0) {
                fprintf(stderr, "loadgen: cannot connect to %s: %s\n", server_name(),
                        strerror(errno));
                return 2;
            }
            c->state = CONN_ACTIVE;
            if (opt.tls && tls_handshake_blocking(c) < 0)
                return 2;
        }
    }
    int per = opt.conns / opt.threads, extra = opt.conns % opt.threads, at = 0;
    for (int t = 0; t < opt.threads; t++) {
        struct worker *w = &workers[t];
        w->index = t;
        w->conns = conns + at;
        w->nconns = per + (t < extra ? 1 : 0);
        at += w->nconns;
        w->next_id = (uint32_t)opt.conns + (uint32_t)t;
        w->buf = malloc(READ_BUF);
        w->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (!w->buf || w->epfd < 0) {
            fprintf(stderr, "loadgen: cannot set up worker: %s\n", strerror(errno));
            return 2;
        }
    }

    t_start = now_ns();
    t_deadline = t_start + (uint64_t)(opt.duration * 1e9);
    for (int t = 0; t < opt.threads; t++) {
        if (pthread_create(&workers[t].tid, NULL, worker_run, &workers[t]) != 0) {
            fprintf(stderr, "loadgen: cannot start thread\n");
            return 2;
        }
    }
    struct bench_hist *all = calloc(1, sizeof(*all));
    uint64_t msgs = 0, bytes = 0, connects = 0;
    for (int t = 0; t < opt.threads; t++) {
        struct worker *w = &workers[t];
        pthread_join(w->tid, NULL);
        msgs += w->msgs;
        bytes += w->bytes;
        connects += w->connects;
        bench_hist_merge(all, &w->hist);
    }
    double secs = opt.duration;
    double mps = (double)msgs / secs;
    double mbps = (double)bytes / secs / 1e6;
    double p50 = bench_hist_percentile(all, 500) / 1000.0;
    double p99 = bench_hist_percentile(all, 990) / 1000.0;
    int errors = atomic_load(&failed);

    printf("loadgen: %s %s%s conns=%d size=%zu pipeline=%d threads=%d duration=%.2fs\n",
           server_name(), opt.churn ? "churn" : "steady", opt.tls ? " tls" : "", opt.conns,
           opt.size, opt.pipeline, opt.threads, secs);
    printf("  %.0f msgs/s  %.2f MB/s  p50 %.1f us  p99 %.1f us  msgs %" PRIu64, mps, mbps, p50, p99,
           msgs);
    if (opt.churn)
        printf("  conns/s %.0f", (double)connects / secs);
    printf("  errors %d\n", errors);
    printf("RESULT msgs_per_s=%.0f mb_per_s=%.2f p50_us=%.1f p99_us=%.1f msgs=%" PRIu64
           " conns_per_s=%.0f errors=%d\n",
           mps, mbps, p50, p99, msgs, (double)connects / secs, errors);
    fflush(stdout);

    for (int i = 0; i < opt.conns; i++) {
        tls_close(&conns[i]);
        if (conns[i].fd >= 0)
            close(conns[i].fd);
    }
    for (int t = 0; t < opt.threads; t++) {
        close(workers[t].epfd);
        free(workers[t].buf);
    }
    free(all);
    free(workers);
    free(stamps);
    free(conns);
    lg_tls_exit();
    return errors ? 1 : 0;
}
