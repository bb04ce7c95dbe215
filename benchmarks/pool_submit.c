/* Worker pool throughput and hand-off latency with trivial tasks.
 *
 * For 1, 2 and 4 threads:
 *   loaded: one producer submits as fast as submit_wait lets it for a fixed time, then the
 *           pool drains. tasks/s is tasks over the whole run (first submit to drained);
 *           latency (submit -> task start) includes the time spent queued.
 *   idle:   one task at a time, the next submitted once the previous one started, so the
 *           latency is the cost of handing a task to a sleeping worker.
 *
 * Usage: pool_submit [seconds per phase, default 0.5]. Bounded to a few seconds in total.
 */
#ifndef _GNU_SOURCE /* the build defines it already; a bare redefinition is -Werror */
#define _GNU_SOURCE
#endif
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "weft/pool.h"

#define MAX_TASKS  (1u << 21) /* caps memory at 32 MiB of records */
#define IDLE_TASKS 20000u

typedef struct record {
    uint64_t submit_ns;
    _Atomic uint64_t start_ns;
} record;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void trivial_task(void *arg, int status)
{
    record *r = arg;
    (void)status;
    atomic_store_explicit(&r->start_ns, now_ns(), memory_order_release);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Sorts the submit -> start latencies of recs[0..n) into lat and reads two percentiles. */
static void percentiles(const record *recs, uint64_t *lat, size_t n, double *p50_us, double *p99_us)
{
    for (size_t i = 0; i < n; i++)
        lat[i] = atomic_load_explicit(&recs[i].start_ns, memory_order_acquire) - recs[i].submit_ns;
    qsort(lat, n, sizeof(*lat), cmp_u64);
    *p50_us = (double)lat[n / 2] / 1e3;
    *p99_us = (double)lat[(n * 99) / 100] / 1e3;
}

static weft_pool *make_pool(size_t threads)
{
    weft_pool_config cfg;
    weft_pool_config_init(&cfg);
    cfg.threads = threads;
    cfg.queue_capacity = 1024;
    cfg.name = "bench-worker";
    weft_pool *pool = NULL;
    int rc = weft_pool_create(&cfg, &pool);
    if (rc != 0) {
        fprintf(stderr, "weft_pool_create: %s\n", weft_strerror(rc));
        return NULL;
    }
    return pool;
}

static int run(size_t threads, uint64_t phase_ns, record *recs, uint64_t *lat)
{
    /* loaded */
    weft_pool *pool = make_pool(threads);
    if (pool == NULL)
        return 1;
    size_t n = 0;
    uint64_t t0 = now_ns(), stop = t0 + phase_ns;
    while (n < MAX_TASKS) {
        recs[n].submit_ns = now_ns();
        if (recs[n].submit_ns >= stop)
            break;
        atomic_store_explicit(&recs[n].start_ns, 0, memory_order_relaxed);
        int rc = weft_pool_submit_wait(pool, trivial_task, &recs[n], -1);
        if (rc != 0) {
            fprintf(stderr, "weft_pool_submit_wait: %s\n", weft_strerror(rc));
            weft_pool_shutdown(pool, WEFT_POOL_DRAIN);
            return 1;
        }
        n++;
    }
    weft_pool_shutdown(pool, WEFT_POOL_DRAIN);
    double secs = (double)(now_ns() - t0) / 1e9;
    double lp50, lp99;
    percentiles(recs, lat, n, &lp50, &lp99);

    /* idle */
    pool = make_pool(threads);
    if (pool == NULL)
        return 1;
    size_t m = 0;
    stop = now_ns() + phase_ns;
    while (m < IDLE_TASKS && now_ns() < stop) {
        atomic_store_explicit(&recs[m].start_ns, 0, memory_order_relaxed);
        recs[m].submit_ns = now_ns();
        if (weft_pool_submit(pool, trivial_task, &recs[m]) != 0)
            break;
        while (atomic_load_explicit(&recs[m].start_ns, memory_order_acquire) == 0)
            sched_yield();
        m++;
    }
    weft_pool_shutdown(pool, WEFT_POOL_DRAIN);
    double ip50 = 0, ip99 = 0;
    if (m > 0)
        percentiles(recs, lat, m, &ip50, &ip99);

    printf("| %7zu | %10.0f | %9zu | %15.1f | %15.1f | %13.1f | %13.1f |\n", threads,
           (double)n / secs, n, lp50, lp99, ip50, ip99);
    return 0;
}

int main(int argc, char **argv)
{
    double phase_s = argc > 1 ? atof(argv[1]) : 0.5;
    if (phase_s <= 0 || phase_s > 10) {
        fprintf(stderr, "usage: %s [seconds per phase, 0 < s <= 10]\n", argv[0]);
        return 2;
    }
    record *recs = calloc(MAX_TASKS, sizeof(*recs));
    uint64_t *lat = calloc(MAX_TASKS, sizeof(*lat));
    if (recs == NULL || lat == NULL) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }

    printf("| threads |    tasks/s |     tasks | loaded p50 (us) | loaded p99 (us) |"
           " idle p50 (us) | idle p99 (us) |\n");
    printf("|--------:|-----------:|----------:|----------------:|----------------:|"
           "--------------:|--------------:|\n");
    const size_t counts[] = {1, 2, 4};
    int rc = 0;
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]) && rc == 0; i++)
        rc = run(counts[i], (uint64_t)(phase_s * 1e9), recs, lat);
    free(lat);
    free(recs);
    return rc;
}
