/* Opens many echo connections that each do one verified echo and then sit idle, so that
 * idle_mem.sh can read the server's memory growth per idle connection.
 *
 *   idle_conns --port PORT [--host ADDR] [--conns N] [--warmup W] [--size BYTES] [--hold S]
 *              [--burst] [--tls-ca FILE] [--redis]
 *
 * First opens W warm-up connections (so one-time costs such as the server's read buffer and
 * its first fd-table growth are paid before the baseline) and prints "WARM W". On SIGUSR1 it
 * opens N more and prints "READY N", then holds them all until SIGUSR1, SIGINT or SIGTERM,
 * or --hold seconds, and exits 0. A failed connect or a wrong echo exits 1 with a message.
 *
 * The N connections are opened in batches whose echoes are awaited, so the server has
 * accepted and served each batch before the next one starts ("spread"). With --burst they
 * all connect first, then each sends its message, and only then are the echoes read: the
 * server sees every connection write at about the same moment, which is what an
 * attacker's (or a reconnect storm's) burst looks like. The warm-up is always spread.
 *
 * --tls-ca FILE speaks TLS: each connection does its handshake (blocking, the server verified
 * against the CA in FILE and its certificate checked for ADDR) right after connecting, then
 * the same echo. With --burst the handshakes still run one after the other; the burst is in
 * the echoes that follow. --redis sends an inline PING and expects +PONG instead of an echo,
 * for a Redis server.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifdef BENCH_HAVE_OPENSSL
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#else
typedef struct ssl_st SSL; /* never made: without OpenSSL --tls-ca is refused */
#endif

#define BATCH   256
#define WAIT_MS 10000

static struct sockaddr_in server;
static const char *server_host;
static size_t msg_size = 64;
static bool redis_ping; /* --redis: PING, +PONG */
static SSL **ssls;      /* --tls-ca: each connection's TLS state, by index */
#ifdef BENCH_HAVE_OPENSSL
static SSL_CTX *tls_ctx;
#endif

static const char PING[] = "PING\r\n", PONG[] = "+PONG\r\n";

static uint8_t pattern_byte(unsigned conn, size_t off)
{
    return (uint8_t)(conn * 131u + off * 7u + (off >> 8));
}

/* What connection conn sends (byte off of len) and what it must get back. */
static size_t out_len(void)
{
    return redis_ping ? sizeof(PING) - 1 : msg_size;
}
static size_t in_len(void)
{
    return redis_ping ? sizeof(PONG) - 1 : msg_size;
}
static uint8_t out_byte(unsigned conn, size_t off)
{
    return redis_ping ? (uint8_t)PING[off] : pattern_byte(conn, off);
}
static uint8_t in_byte(unsigned conn, size_t off)
{
    return redis_ping ? (uint8_t)PONG[off] : pattern_byte(conn, off);
}

static void die(const char *what, unsigned conn)
{
    fprintf(stderr, "idle_conns: conn %u: %s: %s\n", conn, what, strerror(errno));
    exit(1);
}

#ifdef BENCH_HAVE_OPENSSL
static void tls_die(const char *what, unsigned conn, SSL *ssl, int rc)
{
    char why[256];
    unsigned long e = ERR_peek_last_error();
    long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    if (v != X509_V_OK)
        snprintf(why, sizeof(why), "certificate verify failed: %s",
                 X509_verify_cert_error_string(v));
    else if (e != 0)
        ERR_error_string_n(e, why, sizeof(why));
    else if (ssl && SSL_get_error(ssl, rc) == SSL_ERROR_ZERO_RETURN)
        snprintf(why, sizeof(why), "the server closed the connection (close_notify)");
    else if (errno == EAGAIN || errno == EWOULDBLOCK)
        snprintf(why, sizeof(why), "no answer in %d ms", WAIT_MS);
    else
        snprintf(why, sizeof(why), "%s",
                 errno ? strerror(errno) : "the server closed the connection");
    fprintf(stderr, "idle_conns: conn %u: %s: %s\n", conn, what, why);
    exit(1);
}

static int tls_init(const char *ca)
{
    tls_ctx = SSL_CTX_new(TLS_client_method());
    if (!tls_ctx || !SSL_CTX_set_min_proto_version(tls_ctx, TLS1_2_VERSION) ||
        SSL_CTX_load_verify_locations(tls_ctx, ca, NULL) != 1) {
        char why[256];
        ERR_error_string_n(ERR_get_error(), why, sizeof(why));
        fprintf(stderr, "idle_conns: cannot set up TLS with CA file %s: %s\n", ca, why);
        return -1;
    }
    SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_session_cache_mode(tls_ctx, SSL_SESS_CACHE_OFF);
    return 0;
}

/* The handshake on the connected, blocking socket fd (whose timeouts bound it). */
static SSL *tls_connect(int fd, unsigned conn)
{
    SSL *ssl = SSL_new(tls_ctx);
    if (!ssl || !SSL_set_fd(ssl, fd) ||
        !X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), server_host))
        tls_die("cannot make a TLS connection", conn, ssl, 0);
    ERR_clear_error();
    errno = 0;
    int rc = SSL_connect(ssl);
    if (rc != 1)
        tls_die("TLS handshake", conn, ssl, rc);
    return ssl;
}
#else
static int tls_init(const char *ca)
{
    (void)ca;
    fprintf(stderr, "idle_conns: built without OpenSSL; --tls-ca is not available\n");
    return -1;
}
#endif

/* write()/read() on connection conn, through TLS when it has it. */
static ssize_t conn_write(int fd, unsigned conn, const uint8_t *p, size_t n)
{
    (void)conn; /* names the TLS state, when there is one */
#ifdef BENCH_HAVE_OPENSSL
    if (ssls && ssls[conn]) {
        ERR_clear_error();
        errno = 0;
        int rc = SSL_write(ssls[conn], p, (int)n);
        if (rc <= 0)
            tls_die("TLS write", conn, ssls[conn], rc);
        return rc;
    }
#endif
    return write(fd, p, n);
}
static ssize_t conn_read(int fd, unsigned conn, uint8_t *p, size_t n)
{
    (void)conn; /* names the TLS state, when there is one */
#ifdef BENCH_HAVE_OPENSSL
    if (ssls && ssls[conn]) {
        ERR_clear_error();
        errno = 0;
        int rc = SSL_read(ssls[conn], p, (int)n);
        if (rc <= 0) {
            int e = SSL_get_error(ssls[conn], rc);
            if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno == 0))
                return 0;
            tls_die("TLS read", conn, ssls[conn], rc);
        }
        return rc;
    }
#endif
    return read(fd, p, n);
}

static int connect_one(unsigned conn)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket", conn);
    /* Blocking connect on loopback returns once the kernel has completed the handshake; the
     * batch's echoes are what prove the server accepted it. */
    if (connect(fd, (struct sockaddr *)&server, sizeof(server)) < 0)
        die("cannot connect", conn);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
#ifdef BENCH_HAVE_OPENSSL
    if (ssls) {
        /* The handshake and TLS reads block, bounded by these. */
        struct timeval tv = {.tv_sec = WAIT_MS / 1000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        ssls[conn] = tls_connect(fd, conn);
    }
#endif
    return fd;
}

static void send_msg(int fd, unsigned conn)
{
    uint8_t buf[65536];
    size_t len = out_len();
    for (size_t i = 0; i < len; i++)
        buf[i] = out_byte(conn, i);
    size_t done = 0;
    while (done < len) {
        ssize_t n = conn_write(fd, conn, buf + done, len - done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("write", conn);
        }
        done += (size_t)n;
    }
}

static void await_echo(int fd, unsigned conn)
{
    uint8_t buf[65536];
    size_t got = 0, len = in_len();
    while (got < len) {
        /* A TLS read blocks with the socket's timeout: OpenSSL may hold the bytes already. */
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int rc = ssls ? 1 : poll(&p, 1, WAIT_MS);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc == 0) {
            errno = ETIMEDOUT;
            die("no echo", conn);
        }
        ssize_t n = conn_read(fd, conn, buf + got, len - got);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die(errno == EAGAIN ? "no echo in time" : "read", conn);
        }
        if (n == 0) {
            errno = ECONNRESET;
            die("server closed the connection before echoing", conn);
        }
        for (size_t i = got; i < got + (size_t)n; i++) {
            if (buf[i] != in_byte(conn, i)) {
                fprintf(stderr, "idle_conns: conn %u: echoed byte %zu is 0x%02x, expected 0x%02x\n",
                        conn, i, buf[i], in_byte(conn, i));
                exit(1);
            }
        }
        got += (size_t)n;
    }
}

/* Opens fds[first .. first+count) in batches, each connection doing one echo. */
static void open_conns(int *fds, unsigned first, unsigned count)
{
    for (unsigned b = 0; b < count; b += BATCH) {
        unsigned end = b + BATCH < count ? b + BATCH : count;
        for (unsigned i = b; i < end; i++) {
            fds[first + i] = connect_one(first + i);
            send_msg(fds[first + i], first + i);
        }
        for (unsigned i = b; i < end; i++)
            await_echo(fds[first + i], first + i);
    }
}

/* Opens fds[first .. first+count) all at once: connect all, send on all, read all. */
static void open_conns_burst(int *fds, unsigned first, unsigned count)
{
    for (unsigned i = 0; i < count; i++)
        fds[first + i] = connect_one(first + i);
    for (unsigned i = 0; i < count; i++)
        send_msg(fds[first + i], first + i);
    for (unsigned i = 0; i < count; i++)
        await_echo(fds[first + i], first + i);
}

/* Waits for SIGUSR1, SIGINT or SIGTERM (blocked in main), at most `hold` seconds. */
static int wait_signal(const sigset_t *set, long hold)
{
    struct timespec ts = {.tv_sec = hold};
    int sig;
    do
        sig = sigtimedwait(set, NULL, &ts);
    while (sig < 0 && errno == EINTR);
    return sig;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"host", required_argument, NULL, 'h'},  {"port", required_argument, NULL, 'p'},
        {"conns", required_argument, NULL, 'c'}, {"warmup", required_argument, NULL, 'w'},
        {"size", required_argument, NULL, 's'},  {"hold", required_argument, NULL, 'H'},
        {"burst", no_argument, NULL, 'b'},       {"tls-ca", required_argument, NULL, 'T'},
        {"redis", no_argument, NULL, 'r'},       {NULL, 0, NULL, 0},
    };
    const char *tls_ca = NULL;
    const char *host = "127.0.0.1";
    long port = 0, conns = 10000, warmup = 256, size = 64, hold = 120;
    bool burst = false;
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'h':
            host = optarg;
            break;
        case 'p':
            port = strtol(optarg, NULL, 10);
            break;
        case 'c':
            conns = strtol(optarg, NULL, 10);
            break;
        case 'w':
            warmup = strtol(optarg, NULL, 10);
            break;
        case 's':
            size = strtol(optarg, NULL, 10);
            break;
        case 'H':
            hold = strtol(optarg, NULL, 10);
            break;
        case 'b':
            burst = true;
            break;
        case 'T':
            tls_ca = optarg;
            break;
        case 'r':
            redis_ping = true;
            break;
        default:
            goto usage;
        }
    }
    if (optind != argc || port <= 0 || port > 65535 || conns < 1 || conns > 1000000 || warmup < 0 ||
        warmup > 1000000 || size < 1 || size > 65536 || hold < 1)
        goto usage;
    msg_size = (size_t)size;
    server_host = host;
    server.sin_family = AF_INET;
    server.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &server.sin_addr) != 1) {
        fprintf(stderr, "idle_conns: not an IPv4 address: %s\n", host);
        return 2;
    }

    rlim_t need = (rlim_t)(conns + warmup + 32);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need) {
        if (rl.rlim_max < need) {
            fprintf(stderr, "idle_conns: need %llu open files, the hard limit is %llu\n",
                    (unsigned long long)need, (unsigned long long)rl.rlim_max);
            return 2;
        }
        rl.rlim_cur = need;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
            perror("idle_conns: setrlimit");
            return 2;
        }
    }

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    int *fds = calloc((size_t)(conns + warmup), sizeof(*fds));
    if (!fds)
        return 2;
    if (tls_ca) {
        if (tls_init(tls_ca) < 0)
            return 2;
        ssls = calloc((size_t)(conns + warmup), sizeof(*ssls));
        if (!ssls)
            return 2;
    }
    open_conns(fds, 0, (unsigned)warmup);
    printf("WARM %ld\n", warmup);
    fflush(stdout);
    int sig = wait_signal(&set, hold);
    if (sig != SIGUSR1) {
        fprintf(stderr, "idle_conns: %s before the main batch\n",
                sig < 0 ? "timed out" : "stopped");
        free(fds);
        return 1;
    }
    if (burst)
        open_conns_burst(fds, (unsigned)warmup, (unsigned)conns);
    else
        open_conns(fds, (unsigned)warmup, (unsigned)conns);
    printf("READY %ld\n", conns);
    fflush(stdout);
    wait_signal(&set, hold);
    for (long i = 0; i < conns + warmup; i++) {
#ifdef BENCH_HAVE_OPENSSL
        if (ssls) {
            (void)SSL_shutdown(ssls[i]); /* close_notify: an orderly close for the server */
            SSL_free(ssls[i]);
        }
#endif
        close(fds[i]);
    }
    free(ssls);
    free(fds);
    return 0;

usage:
    fprintf(stderr, "usage: idle_conns --port PORT [--host ADDR] [--conns N] [--warmup W] "
                    "[--size BYTES] [--hold SECONDS] [--burst] [--tls-ca FILE] [--redis]\n");
    return 2;
}
