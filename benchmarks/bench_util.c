#include "bench_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

double bench_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void bench_quiet_log(void *ctx, weft_log_level level, const char *msg)
{
    (void)ctx;
    (void)level;
    (void)msg;
}

int bench_connect_loopback(int port, int timeout_s)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int on = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    if (timeout_s > 0) {
        struct timeval tv = {timeout_s, 0};
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    }
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int bench_server_args(int argc, char **argv, const char **host, int *port, const char **path)
{
    static const struct option longopts[] = {{"port", required_argument, NULL, 'p'},
                                             {"host", required_argument, NULL, 'h'},
                                             {"unix", required_argument, NULL, 'u'},
                                             {NULL, 0, NULL, 0}};
    const char *unix_path = NULL;
    int ch;
    *host = "127.0.0.1";
    *port = -1;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'p':
            *port = atoi(optarg);
            break;
        case 'h':
            *host = optarg;
            break;
        case 'u':
            if (path == NULL)
                return -1;
            unix_path = optarg;
            break;
        default:
            return -1;
        }
    }
    if (path != NULL)
        *path = unix_path;
    if (optind != argc || (!unix_path && (*port < 0 || *port > 65535)))
        return -1;
    return 0;
}

int bench_listen(const char *prog, const char *host, int port, const char *path, int type_flags,
                 bool nodelay)
{
    int fd;
    if (path) {
        struct sockaddr_un un = {.sun_family = AF_UNIX};
        if (strlen(path) >= sizeof(un.sun_path)) {
            fprintf(stderr, "%s: unix socket path too long\n", prog);
            return -1;
        }
        strcpy(un.sun_path, path);
        unlink(path);
        fd = socket(AF_UNIX, SOCK_STREAM | type_flags, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *)&un, sizeof(un)) < 0)
            goto fail;
    } else {
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
            fprintf(stderr, "%s: not an IPv4 address: %s\n", prog, host);
            return -1;
        }
        fd = socket(AF_INET, SOCK_STREAM | type_flags, 0);
        int one = 1;
        if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
            (nodelay && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0) ||
            bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
            goto fail;
    }
    if (listen(fd, SOMAXCONN) < 0)
        goto fail;
    return fd;
fail:
    fprintf(stderr, "%s: cannot listen: %s\n", prog, strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

void bench_stop_on_signals(void (*on_stop)(int))
{
    struct sigaction sa = {.sa_handler = on_stop}; /* no SA_RESTART */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* ---- latency histogram ---- */

static unsigned hist_index(uint64_t v)
{
    if (v < BENCH_HIST_SUB)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v); /* >= 6 */
    unsigned shift = msb - 6u;
    unsigned idx =
        BENCH_HIST_SUB + shift * BENCH_HIST_SUB + (unsigned)((v >> shift) - BENCH_HIST_SUB);
    return idx < BENCH_HIST_BUCKETS ? idx : BENCH_HIST_BUCKETS - 1;
}

/* The middle of bucket idx, in nanoseconds. */
static double hist_value(unsigned idx)
{
    if (idx < BENCH_HIST_SUB)
        return idx;
    unsigned shift = (idx - BENCH_HIST_SUB) / BENCH_HIST_SUB;
    uint64_t m = (idx - BENCH_HIST_SUB) % BENCH_HIST_SUB + BENCH_HIST_SUB;
    double lo = (double)(m << shift);
    double width = (double)(1ull << shift);
    return lo + (width - 1) / 2;
}

void bench_hist_add(struct bench_hist *h, uint64_t v)
{
    h->count[hist_index(v)]++;
    h->total++;
}

double bench_hist_percentile(const struct bench_hist *h, unsigned permille)
{
    if (h->total == 0)
        return 0;
    uint64_t want = (h->total * permille + 999) / 1000;
    if (want == 0)
        want = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++) {
        seen += h->count[i];
        if (seen >= want)
            return hist_value(i);
    }
    return hist_value(BENCH_HIST_BUCKETS - 1);
}

void bench_hist_merge(struct bench_hist *into, const struct bench_hist *h)
{
    for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++)
        into->count[i] += h->count[i];
    into->total += h->total;
}
