/* The engine's worker pool and cross-thread writes under load, when all goes well: many
 * workers writing to many connections keep each worker's order and never tear a message, and
 * every zero-copy buffer is freed exactly once; a loop stays responsive while every worker
 * blocks; and bursts coalesce into few wakeups. The limits (connections closing under the
 * writers, the hard cap, stopping under load) are in test_net_workers_limits.c.
 *
 * The server, its client commands and the drainer thread are in support/workers_support.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "workers_support.h"

/* ---- 1. many workers, many connections: order per worker, messages intact ---- */

#define ORDER_CONNS  100
#define ORDER_WRITES 10000

typedef struct order_task {
    weft_engine *engine;
    unsigned w;
    weft_conn_ref refs[ORDER_CONNS];
    wk_call_rec *recs;
    _Atomic long *done;
} order_task;

static void order_writer(void *arg, int status)
{
    order_task *t = arg;
    uint32_t seq[ORDER_CONNS] = {0};
    for (unsigned i = 0; i < ORDER_WRITES && status == 0; i++) {
        unsigned conn = wk_target_conn(t->w, i, ORDER_CONNS);
        uint8_t m[WK_MSG_HDR + 48];
        size_t n = wk_msg_build(m, t->w, conn, seq[conn]++);
        wk_call_rec *r = &t->recs[i];
        int rc;
        /* All three ways in, so their order against each other is checked too. */
        if (i % 3 == 0) {
            rc = weft_async_write(t->engine, t->refs[conn], m, n);
        } else if (i % 3 == 1) {
            struct iovec iov[2] = {{m, WK_MSG_HDR}, {m + WK_MSG_HDR, n - WK_MSG_HDR}};
            rc = weft_async_writev(t->engine, t->refs[conn], iov, 2);
        } else {
            rc = wk_write_zc_copy(t->engine, t->refs[conn], m, n, r);
        }
        r->rc = rc;
    }
    atomic_fetch_add(t->done, 1);
}

/* Parses one connection's bytes: every message whole, each worker's in sequence. */
static void check_conn_stream(unsigned conn, const uint8_t *p, size_t len,
                              const unsigned want[WK_WORKERS])
{
    unsigned next[WK_WORKERS] = {0};
    size_t pos = 0;
    while (pos < len) {
        assert_true(len - pos >= WK_MSG_HDR);
        uint32_t h[4];
        memcpy(h, p + pos, sizeof(h));
        assert_int_equal(h[0] & 0xffff0000u, WK_MSG_MAGIC);
        unsigned w = h[0] & 0xffffu;
        assert_in_range(w, 0, WK_WORKERS - 1);
        assert_int_equal(h[1], conn);
        assert_int_equal(h[2], next[w]);
        assert_int_equal(h[3], wk_msg_len(w, conn, next[w]));
        assert_true(len - pos >= h[3]);
        for (size_t j = WK_MSG_HDR; j < h[3]; j++)
            assert_int_equal(p[pos + j], wk_msg_byte(w, conn, next[w], j));
        pos += h[3];
        next[w]++;
    }
    for (unsigned w = 0; w < WK_WORKERS; w++)
        assert_int_equal(next[w], want[w]);
}

static void test_workers_writes_arrive_whole_and_in_order(void **state)
{
    (void)state;
    weft_config cfg;
    wk_base_config(&cfg);
    wt_server s;
    wk_start_server(&s, &cfg);
    int fds[ORDER_CONNS];
    wk_connect_clients(&s, fds, ORDER_CONNS);

    /* What each connection must receive, from the same walk the workers take. */
    static unsigned want[ORDER_CONNS][WK_WORKERS];
    static size_t want_bytes[ORDER_CONNS];
    memset(want, 0, sizeof(want));
    memset(want_bytes, 0, sizeof(want_bytes));
    for (unsigned w = 0; w < WK_WORKERS; w++) {
        for (unsigned i = 0; i < ORDER_WRITES; i++) {
            unsigned conn = wk_target_conn(w, i, ORDER_CONNS);
            want_bytes[conn] += wk_msg_len(w, conn, want[conn][w]++);
        }
    }
    wk_drainer *d = wk_drainer_start(fds, ORDER_CONNS, true, want_bytes, NULL);

    static order_task tasks[WK_WORKERS];
    _Atomic long done = 0;
    wk_call_rec *recs = calloc((size_t)WK_WORKERS * ORDER_WRITES, sizeof(*recs));
    assert_non_null(recs);
    for (unsigned w = 0; w < WK_WORKERS; w++) {
        tasks[w].engine = s.engine;
        tasks[w].w = w;
        for (unsigned c = 0; c < ORDER_CONNS; c++)
            tasks[w].refs[c] = wk_ref_of(c);
        tasks[w].recs = recs + (size_t)w * ORDER_WRITES;
        tasks[w].done = &done;
        assert_int_equal(weft_pool_submit(weft_engine_get_pool(s.engine), order_writer, &tasks[w]),
                         0);
    }
    assert_true(wt_wait_count(&done, WK_WORKERS, WT_TIMEOUT_MS));
    wk_drainer_finish(d);
    assert_false(d->timed_out);

    for (size_t i = 0; i < (size_t)WK_WORKERS * ORDER_WRITES; i++)
        assert_int_equal(recs[i].rc, 0);
    for (unsigned c = 0; c < ORDER_CONNS; c++) {
        assert_int_equal(d->len[c], want_bytes[c]);
        check_conn_stream(c, d->data[c], d->len[c], want[c]);
    }
    wt_server_stop(&s);
    /* Every zero-copy buffer was taken and handed back exactly once. */
    for (size_t i = 0; i < (size_t)WK_WORKERS * ORDER_WRITES; i++)
        assert_int_equal(atomic_load(&recs[i].frees), recs[i].zc ? 1 : 0);
    wk_drainer_free(d);
    free(recs);
}

/* ---- 2. a PING is answered while every worker blocks ---- */

#define PINGS      15
#define PING_TRIES 3

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static weft_pool_stats pool_stats(weft_engine *e)
{
    weft_pool_stats ps;
    weft_pool_get_stats(weft_engine_get_pool(e), &ps);
    return ps;
}

static bool all_workers_busy(void *arg)
{
    return pool_stats(arg).running == WK_WORKERS;
}

/* The loop does not wait for the pool: pings on one connection are answered while every
 * worker is still blocked in a job for another. That is asserted on the pool's counters,
 * not on how fast the answers came: no job completed, and none answered, before the last
 * ping's answer. The round trips are printed only. */
static void test_ping_is_answered_while_all_workers_block(void **state)
{
    (void)state;
    weft_config cfg;
    wk_base_config(&cfg);
    wt_server s;
    wk_start_server(&s, &cfg);
    int fds[2];
    wk_connect_clients(&s, fds, 2);
    int slow = fds[0], fast = fds[1];
    atomic_store(&wk_job_sleep_ms, wt_grace_ms(300));

    /* A shared machine may stall this thread for longer than a job, so a run whose pings
     * did not all fall inside the jobs may be tried again. */
    bool overlapped = false;
    for (int attempt = 0; attempt < PING_TRIES && !overlapped; attempt++) {
        char jobs[WK_WORKERS + 4];
        memset(jobs, 'S', sizeof(jobs)); /* every worker busy, and some queued behind */
        assert_int_equal(wt_send_all(slow, jobs, sizeof(jobs), WT_TIMEOUT_MS), 0);
        assert_true(wt_wait_for(all_workers_busy, s.engine, WT_TIMEOUT_MS));
        weft_pool_stats before = pool_stats(s.engine);

        int64_t rtt[PINGS];
        for (int i = 0; i < PINGS; i++) {
            char p;
            int64_t t0 = now_us();
            assert_int_equal(wt_exchange(fast, "P", 1, &p, 1, WT_TIMEOUT_MS), 0);
            rtt[i] = now_us() - t0;
            assert_int_equal(p, 'p');
        }
        /* Every ping overlapped the blocking work: no job has ended, so none has answered
         * (its answer comes before it ends), and every worker is still in one. */
        weft_pool_stats after = pool_stats(s.engine);
        char c;
        bool no_answer = wt_peek_now(slow, &c, 1) < 0 && wt_sock_errno() == EAGAIN;
        overlapped =
            after.completed == before.completed && after.running == WK_WORKERS && no_answer;
        qsort(rtt, PINGS, sizeof(rtt[0]), cmp_i64);

        /* The blocked work still answers, through the loop, all of it. */
        char answers[sizeof(jobs)];
        assert_int_equal(wt_recv_exact(slow, answers, sizeof(answers), WT_TIMEOUT_MS), 0);
        for (size_t i = 0; i < sizeof(answers); i++)
            assert_int_equal(answers[i], 's');
        assert_int_equal(atomic_load(&wk_jobs_refused), 0);
        print_message("ping attempt %d: median %lld us, max %lld us; %s\n", attempt,
                      (long long)rtt[PINGS / 2], (long long)rtt[PINGS - 1],
                      overlapped ? "all while every worker blocked"
                                 : "a job ended before the last answer");
    }
    assert_true(overlapped);
    wt_close(slow);
    wt_close(fast);
    wt_server_stop(&s);
}

/* ---- 3. a burst costs few wakeups ---- */

#define BURST 10000

static void test_a_burst_of_async_writes_coalesces_wakeups(void **state)
{
    (void)state;
    weft_config cfg;
    wk_base_config(&cfg);
    wt_server s;
    wk_start_server(&s, &cfg);
    int fd;
    wk_connect_clients(&s, &fd, 1);
    weft_conn_ref ref = wk_ref_of(0);

    weft_stats before, after;
    assert_int_equal(weft_engine_get_stats(s.engine, &before, NULL), 0);
    for (uint32_t i = 0; i < BURST; i++)
        assert_int_equal(weft_async_write(s.engine, ref, &i, sizeof(i)), 0);
    uint32_t *got = malloc(BURST * sizeof(*got));
    assert_non_null(got);
    assert_int_equal(wt_recv_exact(fd, got, BURST * sizeof(*got), WT_TIMEOUT_MS), 0);
    for (uint32_t i = 0; i < BURST; i++)
        assert_int_equal(got[i], i);
    assert_int_equal(weft_engine_get_stats(s.engine, &after, NULL), 0);

    uint64_t tasks = after.total.tasks - before.total.tasks;
    uint64_t wakeups = after.total.wakeups - before.total.wakeups;
    print_message("burst of %d async writes: %llu tasks, %llu wakeups\n", BURST,
                  (unsigned long long)tasks, (unsigned long long)wakeups);
    assert_int_equal(tasks, BURST);
    assert_true(wakeups >= 1);
    /* A wakeup per write would be the uncoalesced cost. How many writes share one depends
     * on how the two threads are scheduled (tens to thousands here, a dozen at worst under
     * ThreadSanitizer on two busy cores), so ask for four at the least. */
    assert_true(wakeups * 4 <= BURST);
    free(got);
    wt_close(fd);
    wt_server_stop(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_workers_writes_arrive_whole_and_in_order),
        cmocka_unit_test(test_ping_is_answered_while_all_workers_block),
        cmocka_unit_test(test_a_burst_of_async_writes_coalesces_wakeups),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
