/* lb_churn — connection churn through each balancer: connect, one echo, close, repeat.
 *
 * Usage: lb_churn [seconds per run]   (default 0.6, at most 10)
 *
 * For each balancer an in-process echo engine with 4 loops is started and a few client
 * threads churn connections against it. Clients bind to 64 loopback source addresses in turn
 * (127.0.0.2 ...) so that consistent-hash, which hashes the peer address, has addresses to
 * spread; every balancer sees the same mix. Clients close with a reset (SO_LINGER 0) so that
 * hundreds of thousands of short connections do not exhaust the ephemeral ports in
 * TIME_WAIT. Each balancer runs twice, in the order rr lc ch random random ch lc rr, and the
 * mean is reported, which evens out drift in the machine's load; the table gives
 * connections per second, the ratio to round-robin and how evenly the loops were used (the
 * accepted counts of the least and the most used loop, summed over both runs).
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <weft/weft.h>

#include "bench_util.h"

#define LOOPS   4
#define CLIENTS 3
#define SOURCES 64
#define MSG     8

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

static weft_action echo(weft_conn *c)
{
    const uint8_t *p;
    int n = weft_conn_peek(c, 0, &p);
    if (n > 0 && weft_conn_write(c, p, (size_t)n) == 0)
        weft_conn_discard(c, (size_t)n);
    return WEFT_ACTION_NONE;
}

typedef struct client {
    int port;
    unsigned id;
    double seconds;
    uint64_t done;
    uint64_t failed;
} client;

/* One connection's life: 0, or -1 when any step failed. */
static int churn_once(int port, unsigned src)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int on = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    /* Choose the source address now and the port at connect, as an unbound socket does. */
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &on, sizeof(on));
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(0x7f000002u + src);
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (rc == 0)
        rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    uint8_t out[MSG] = "churn!\n", in[MSG];
    if (rc == 0)
        rc = send(fd, out, MSG, MSG_NOSIGNAL) == MSG ? 0 : -1;
    size_t got = 0;
    while (rc == 0 && got < MSG) {
        ssize_t r = recv(fd, in + got, MSG - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            rc = -1;
        else
            got += (size_t)r;
    }
    if (rc == 0 && memcmp(in, out, MSG) != 0)
        rc = -1;
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
    return rc;
}

static void *client_main(void *arg)
{
    client *cl = arg;
    double end = bench_now_s() + cl->seconds;
    unsigned src = cl->id;
    while (bench_now_s() < end) {
        if (churn_once(cl->port, src % SOURCES) == 0)
            cl->done++;
        else
            cl->failed++;
        src += CLIENTS;
    }
    return NULL;
}

typedef struct run {
    double conns_per_s;
    uint64_t failed;
    uint64_t min_loop, max_loop; /* connections accepted by the least and the most used loop */
} run;

static run churn(weft_lb_kind kind, double seconds)
{
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.listen[0] = "tcp://127.0.0.1:0";
    cfg.loops = LOOPS;
    cfg.lb.kind = kind;
    cfg.handler.on_traffic = echo;
    cfg.log_cb = bench_quiet_log;
    weft_engine *e;
    int rc = weft_engine_start(&cfg, &e);
    if (rc != 0) {
        fprintf(stderr, "weft_engine_start: %s\n", weft_strerror(rc));
        exit(1);
    }
    int port = weft_engine_get_listen_port(e, 0);
    client cls[CLIENTS];
    pthread_t th[CLIENTS];
    double t0 = bench_now_s();
    for (unsigned i = 0; i < CLIENTS; i++) {
        cls[i] = (client){port, i, seconds, 0, 0};
        pthread_create(&th[i], NULL, client_main, &cls[i]);
    }
    run r;
    memset(&r, 0, sizeof(r));
    uint64_t total = 0;
    for (unsigned i = 0; i < CLIENTS; i++) {
        pthread_join(th[i], NULL);
        total += cls[i].done;
        r.failed += cls[i].failed;
    }
    r.conns_per_s = (double)total / (bench_now_s() - t0);
    weft_stats st;
    weft_loop_stats pl[LOOPS];
    weft_engine_get_stats(e, &st, pl);
    r.min_loop = UINT64_MAX;
    for (unsigned k = 0; k < LOOPS; k++) {
        if (pl[k].accepted < r.min_loop)
            r.min_loop = pl[k].accepted;
        if (pl[k].accepted > r.max_loop)
            r.max_loop = pl[k].accepted;
    }
    weft_engine_stop(e);
    weft_engine_wait(e);
    return r;
}

int main(int argc, char **argv)
{
    double seconds = 0.6;
    if (argc > 1) {
        seconds = atof(argv[1]);
        if (!(seconds > 0 && seconds <= 10)) {
            fprintf(stderr, "usage: %s [seconds per run, 0 < s <= 10]\n", argv[0]);
            return 2;
        }
    }
    static const struct {
        const char *label;
        weft_lb_kind kind;
    } rows[] = {
        {"round-robin", WEFT_LB_ROUND_ROBIN},
        {"least-connections", WEFT_LB_LEAST_CONNECTIONS},
        {"consistent-hash", WEFT_LB_CONSISTENT_HASH},
        {"random", WEFT_LB_RANDOM},
    };
    enum { NROWS = sizeof(rows) / sizeof(rows[0]) };
    run res[NROWS][2];
    for (int pass = 0; pass < 2; pass++)
        for (int j = 0; j < NROWS; j++) {
            int i = pass == 0 ? j : NROWS - 1 - j;
            res[i][pass] = churn(rows[i].kind, seconds);
        }

    printf("connection churn: connect, one %d-byte echo, close; %d client threads, %d source "
           "addresses, %d loops, 2 x %.1f s each\n\n",
           MSG, CLIENTS, SOURCES, LOOPS, seconds);
    printf("| balancer          | conns/s | vs round-robin | loop min/max accepted | failed |\n");
    printf("|-------------------|--------:|---------------:|----------------------:|-------:|\n");
    double rr = (res[0][0].conns_per_s + res[0][1].conns_per_s) / 2;
    for (int i = 0; i < NROWS; i++) {
        double mean = (res[i][0].conns_per_s + res[i][1].conns_per_s) / 2;
        uint64_t mn = res[i][0].min_loop + res[i][1].min_loop;
        uint64_t mx = res[i][0].max_loop + res[i][1].max_loop;
        printf("| %-17s | %7.0f | %14.2f | %9llu / %-9llu | %6llu |\n", rows[i].label, mean,
               mean / rr, (unsigned long long)mn, (unsigned long long)mx,
               (unsigned long long)(res[i][0].failed + res[i][1].failed));
    }
    return 0;
}
