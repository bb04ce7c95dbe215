/* pool_echo — request/response answered on the loop vs through the worker pool.
 *
 * Usage: pool_echo [seconds per phase]   (default 1.5, at most 10)
 *
 * An in-process engine (2 loops, 4 workers) serves 16-byte requests. In the direct phase
 * on_traffic answers each one with weft_conn_write; in the pool phase it hands each one to a
 * worker, which answers with weft_async_write — the path a blocking handler takes, here with
 * no blocking work, so what is measured is the cost of the round trip through the pool and
 * the loop's inbox. A few client threads each keep one request in flight on their own
 * connection and time every round trip.
 *
 * Then the wakeup cost of async writes, from the engine's statistics: in the pool phase
 * above (one write in flight per connection, the worst case for coalescing), and for a burst
 * of writes from one thread to one connection.
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

#define LOOPS       2
#define WORKERS     4
#define CLIENTS     4
#define MSG         16
#define MAX_SAMPLES (1u << 21)
#define BURST       100000

typedef enum mode { MODE_DIRECT, MODE_POOL } mode;

static mode g_mode;
static _Atomic long g_refused;

typedef struct job {
    weft_engine *engine;
    weft_conn_ref ref;
    uint8_t msg[MSG];
} job;

static void answer_job(void *arg, int status)
{
    job *j = arg;
    if (status == 0)
        (void)weft_async_write(j->engine, j->ref, j->msg, MSG);
    free(j);
}

static weft_action on_traffic(weft_conn *c)
{
    while (weft_conn_get_buffered(c) >= MSG) {
        if (g_mode == MODE_DIRECT) {
            const uint8_t *p;
            weft_conn_peek(c, MSG, &p);
            weft_conn_write(c, p, MSG);
            weft_conn_discard(c, MSG);
            continue;
        }
        job *j = malloc(sizeof(*j));
        if (j == NULL)
            return WEFT_ACTION_CLOSE;
        weft_conn_read(c, j->msg, MSG);
        j->engine = weft_conn_get_engine(c);
        j->ref = weft_conn_get_ref(c);
        if (weft_pool_submit(weft_engine_get_pool(j->engine), answer_job, j) != 0) {
            /* Never with one request in flight per client; counted so it would show. */
            atomic_fetch_add(&g_refused, 1);
            weft_conn_write(c, j->msg, MSG);
            free(j);
        }
    }
    return WEFT_ACTION_NONE;
}

static int io_all(int fd, void *buf, size_t n, bool out)
{
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t r = out ? send(fd, p, n, MSG_NOSIGNAL) : recv(fd, p, n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

typedef struct client {
    int port;
    double seconds;
    double *samples; /* round trips in microseconds */
    size_t n;
    bool failed;
} client;

static void *client_main(void *arg)
{
    client *cl = arg;
    int fd = bench_connect_loopback(cl->port, 0);
    if (fd < 0) {
        cl->failed = true;
        return NULL;
    }
    uint8_t out[MSG], in[MSG];
    memset(out, 'r', sizeof(out));
    double end = bench_now_s() + cl->seconds;
    for (uint32_t i = 0; cl->n < MAX_SAMPLES; i++) {
        memcpy(out, &i, sizeof(i));
        double t0 = bench_now_s();
        if (io_all(fd, out, MSG, true) != 0 || io_all(fd, in, MSG, false) != 0 ||
            memcmp(in, out, MSG) != 0) {
            cl->failed = true;
            break;
        }
        double t1 = bench_now_s();
        cl->samples[cl->n++] = (t1 - t0) * 1e6;
        if (t1 > end)
            break;
    }
    close(fd);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct result {
    double msgs_per_s;
    double p50_us;
    double p99_us;
    uint64_t async_writes; /* loop tasks during the phase */
    uint64_t wakeups;
    bool failed;
} result;

static weft_engine *start_engine(int *port)
{
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.listen[0] = "tcp://127.0.0.1:0";
    cfg.loops = LOOPS;
    cfg.workers = WORKERS;
    cfg.handler.on_traffic = on_traffic;
    cfg.log_cb = bench_quiet_log;
    weft_engine *e;
    int rc = weft_engine_start(&cfg, &e);
    if (rc != 0) {
        fprintf(stderr, "weft_engine_start: %s\n", weft_strerror(rc));
        exit(1);
    }
    *port = weft_engine_get_listen_port(e, 0);
    return e;
}

static result run_phase(mode m, double seconds)
{
    result res;
    memset(&res, 0, sizeof(res));
    g_mode = m;
    int port;
    weft_engine *e = start_engine(&port);
    static client cls[CLIENTS];
    pthread_t th[CLIENTS];
    weft_stats before, after;
    weft_engine_get_stats(e, &before, NULL);
    double t0 = bench_now_s();
    for (int i = 0; i < CLIENTS; i++) {
        cls[i] = (client){port, seconds, malloc(MAX_SAMPLES * sizeof(double)), 0, false};
        if (cls[i].samples == NULL) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
        pthread_create(&th[i], NULL, client_main, &cls[i]);
    }
    size_t total = 0;
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(th[i], NULL);
        total += cls[i].n;
        res.failed |= cls[i].failed;
    }
    double elapsed = bench_now_s() - t0;
    weft_engine_get_stats(e, &after, NULL);
    double *all = malloc((total ? total : 1) * sizeof(double));
    size_t k = 0;
    for (int i = 0; i < CLIENTS; i++) {
        memcpy(all + k, cls[i].samples, cls[i].n * sizeof(double));
        k += cls[i].n;
        free(cls[i].samples);
    }
    qsort(all, total, sizeof(double), cmp_double);
    res.msgs_per_s = (double)total / elapsed;
    res.p50_us = total ? all[total / 2] : 0;
    res.p99_us = total ? all[(size_t)((double)total * 0.99)] : 0;
    /* Besides one hand-off per client, every task of the phase is an async write. */
    res.async_writes = after.total.tasks - before.total.tasks - CLIENTS;
    res.wakeups = after.total.wakeups - before.total.wakeups - CLIENTS;
    free(all);
    weft_engine_stop(e);
    weft_engine_wait(e);
    return res;
}

/* One connection, and BURST async writes to it from this thread while a client drains. */
typedef struct drain_arg {
    int fd;
    size_t want;
} drain_arg;

static void *drain_main(void *arg)
{
    drain_arg *d = arg;
    static uint8_t buf[65536];
    size_t got = 0;
    while (got < d->want) {
        ssize_t r = recv(d->fd, buf, sizeof(buf), 0);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    d->want = got;
    return NULL;
}

static _Atomic int g_burst_ready;
static weft_conn_ref g_burst_ref;

static weft_action burst_open(weft_conn *c)
{
    g_burst_ref = weft_conn_get_ref(c);
    atomic_store_explicit(&g_burst_ready, 1, memory_order_release);
    return WEFT_ACTION_NONE;
}

static void run_burst(uint64_t *writes, uint64_t *wakeups)
{
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.listen[0] = "tcp://127.0.0.1:0";
    cfg.loops = 1;
    cfg.handler.on_traffic = on_traffic;
    cfg.handler.on_open = burst_open;
    cfg.log_cb = bench_quiet_log;
    weft_engine *e;
    if (weft_engine_start(&cfg, &e) != 0)
        exit(1);
    int fd = bench_connect_loopback(weft_engine_get_listen_port(e, 0), 0);
    while (!atomic_load_explicit(&g_burst_ready, memory_order_acquire))
        usleep(100);
    drain_arg d = {fd, (size_t)BURST * MSG};
    pthread_t th;
    pthread_create(&th, NULL, drain_main, &d);
    weft_stats before, after;
    weft_engine_get_stats(e, &before, NULL);
    uint8_t msg[MSG] = {0};
    uint64_t ok = 0;
    for (uint32_t i = 0; i < BURST; i++) {
        memcpy(msg, &i, sizeof(i));
        ok += weft_async_write(e, g_burst_ref, msg, MSG) == 0;
    }
    pthread_join(th, NULL);
    weft_engine_get_stats(e, &after, NULL);
    *writes = ok;
    *wakeups = after.total.wakeups - before.total.wakeups;
    close(fd);
    weft_engine_stop(e);
    weft_engine_wait(e);
}

int main(int argc, char **argv)
{
    double seconds = 1.5;
    if (argc > 1) {
        seconds = atof(argv[1]);
        if (!(seconds > 0 && seconds <= 10)) {
            fprintf(stderr, "usage: %s [seconds per phase, 0 < s <= 10]\n", argv[0]);
            return 2;
        }
    }
    result direct = run_phase(MODE_DIRECT, seconds);
    result pool = run_phase(MODE_POOL, seconds);
    if (direct.failed || pool.failed) {
        fprintf(stderr, "a client failed\n");
        return 1;
    }
    printf("request/response, %d connections, one %d-byte request in flight each, %d loops, "
           "%d workers, %.1f s a phase\n\n",
           CLIENTS, MSG, LOOPS, WORKERS, seconds);
    printf("| path        |    msgs/s | p50 (us) | p99 (us) |\n");
    printf("|-------------|----------:|---------:|---------:|\n");
    printf("| direct      | %9.0f | %8.1f | %8.1f |\n", direct.msgs_per_s, direct.p50_us,
           direct.p99_us);
    printf("| pool        | %9.0f | %8.1f | %8.1f |\n", pool.msgs_per_s, pool.p50_us, pool.p99_us);
    printf("| pool/direct | %9.2f | %8.2f | %8.2f |\n\n", pool.msgs_per_s / direct.msgs_per_s,
           pool.p50_us / direct.p50_us, pool.p99_us / direct.p99_us);

    uint64_t bw, bk;
    run_burst(&bw, &bk);
    printf("| async writes                          |  writes | wakeups | wakeups per 1,000 |\n");
    printf("|---------------------------------------|--------:|--------:|------------------:|\n");
    printf("| request/response (pool phase)         | %7llu | %7llu | %17.1f |\n",
           (unsigned long long)pool.async_writes, (unsigned long long)pool.wakeups,
           pool.async_writes ? 1000.0 * (double)pool.wakeups / (double)pool.async_writes : 0);
    printf("| burst, one thread to one connection   | %7llu | %7llu | %17.1f |\n",
           (unsigned long long)bw, (unsigned long long)bk,
           bw ? 1000.0 * (double)bk / (double)bw : 0);
    if (atomic_load(&g_refused) != 0)
        printf("\n(%ld requests answered on the loop: the pool queue was full)\n",
               atomic_load(&g_refused));
    return 0;
}
