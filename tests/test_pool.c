/* Worker pool: every accepted task is called exactly once, with 0 or WEFT_ECANCELED, and a
 * refused one never is. Workers are held on a gate wherever a test needs a full queue, so
 * nothing depends on how fast the threads happen to run. */
#ifndef _GNU_SOURCE /* the build defines it already; a bare redefinition is -Werror */
#define _GNU_SOURCE
#endif
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "weft/pool.h"

/* Every wait in this file gives up after this long, so a bug fails a test instead of hanging. */
#define WAIT_LIMIT_MS 10000

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- a task that records how often and with which status it was called ---- */

typedef struct probe {
    atomic_int calls;
    atomic_int status;
} probe;

static void probe_task(void *arg, int status)
{
    probe *p = arg;
    atomic_store(&p->status, status);
    atomic_fetch_add(&p->calls, 1);
}

static void probes_init(probe *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        atomic_init(&p[i].calls, 0);
        atomic_init(&p[i].status, 1);
    }
}

/* Polls until p has been called at least once, for up to WAIT_LIMIT_MS. */
static bool probe_wait_called(probe *p)
{
    int64_t end = now_ms() + WAIT_LIMIT_MS;
    while (atomic_load(&p->calls) == 0) {
        if (now_ms() > end)
            return false;
        sleep_ms(1);
    }
    return true;
}

/* ---- a gate that holds workers inside a task until the test opens it ---- */

typedef struct gate {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool open;
    atomic_int entered;
    atomic_int calls;
    atomic_int status;
} gate;

static void gate_init(gate *g)
{
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->cond, NULL);
    g->open = false;
    atomic_init(&g->entered, 0);
    atomic_init(&g->calls, 0);
    atomic_init(&g->status, 1);
}

static void gate_open(gate *g)
{
    pthread_mutex_lock(&g->lock);
    g->open = true;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

static void gate_destroy(gate *g)
{
    pthread_cond_destroy(&g->cond);
    pthread_mutex_destroy(&g->lock);
}

static void gate_task(void *arg, int status)
{
    gate *g = arg;
    atomic_store(&g->status, status);
    atomic_fetch_add(&g->entered, 1);
    pthread_mutex_lock(&g->lock);
    while (!g->open)
        pthread_cond_wait(&g->cond, &g->lock);
    pthread_mutex_unlock(&g->lock);
    atomic_fetch_add(&g->calls, 1);
}

/* Polls until n workers sit inside the gate. */
static bool gate_wait_entered(gate *g, int n)
{
    int64_t end = now_ms() + WAIT_LIMIT_MS;
    while (atomic_load(&g->entered) < n) {
        if (now_ms() > end)
            return false;
        sleep_ms(1);
    }
    return true;
}

static weft_pool *make_pool(size_t threads, size_t capacity)
{
    weft_pool_config cfg;
    weft_pool_config_init(&cfg);
    cfg.threads = threads;
    cfg.queue_capacity = capacity;
    cfg.name = "weft-test";
    weft_pool *pool = NULL;
    assert_int_equal(weft_pool_create(&cfg, &pool), 0);
    assert_non_null(pool);
    return pool;
}

/* Holds every worker on g, so whatever is submitted next stays queued. */
static void hold_workers(weft_pool *pool, gate *g, int threads)
{
    for (int i = 0; i < threads; i++)
        assert_int_equal(weft_pool_submit(pool, gate_task, g), 0);
    assert_true(gate_wait_entered(g, threads));
}

/* ---- shutdown on a thread of its own, for stories where tasks must finish meanwhile ---- */

typedef struct closer {
    pthread_t thread;
    weft_pool *pool;
    weft_pool_shutdown_mode mode;
    int rc;
} closer;

static void *closer_main(void *arg)
{
    closer *c = arg;
    c->rc = weft_pool_shutdown(c->pool, c->mode);
    return NULL;
}

static void closer_start(closer *c, weft_pool *pool, weft_pool_shutdown_mode mode)
{
    c->pool = pool;
    c->mode = mode;
    c->rc = 1;
    assert_int_equal(pthread_create(&c->thread, NULL, closer_main, c), 0);
}

/* Polls until submit reports the shutdown; the refused probe must never be called. */
static bool wait_shutdown_began(weft_pool *pool, probe *refused)
{
    int64_t end = now_ms() + WAIT_LIMIT_MS;
    while (weft_pool_submit(pool, probe_task, refused) != WEFT_ESHUTDOWN) {
        if (now_ms() > end)
            return false;
        sleep_ms(1);
    }
    return true;
}

/* ================================ stories ================================ */

static void test_config_init_fills_defaults(void **state)
{
    (void)state;
    weft_pool_config cfg;
    memset(&cfg, 0xab, sizeof(cfg));
    weft_pool_config_init(&cfg);
    assert_int_equal(cfg.threads, 4);
    assert_int_equal(cfg.queue_capacity, 1024);
    assert_string_equal(cfg.name, "weft-worker");
    weft_pool_config_init(NULL); /* harmless */
}

static void test_bad_arguments_are_einval_not_crashes(void **state)
{
    (void)state;
    weft_pool_config cfg;
    weft_pool *pool = (weft_pool *)&cfg; /* must be reset to NULL on failure */

    assert_int_equal(weft_pool_create(NULL, &pool), WEFT_EINVAL);
    assert_null(pool);
    weft_pool_config_init(&cfg);
    assert_int_equal(weft_pool_create(&cfg, NULL), WEFT_EINVAL);

    cfg.threads = 0;
    assert_int_equal(weft_pool_create(&cfg, &pool), WEFT_EINVAL);
    cfg.threads = 1000000;
    assert_int_equal(weft_pool_create(&cfg, &pool), WEFT_EINVAL);
    weft_pool_config_init(&cfg);
    cfg.queue_capacity = 0;
    assert_int_equal(weft_pool_create(&cfg, &pool), WEFT_EINVAL);
    cfg.queue_capacity = SIZE_MAX;
    assert_int_equal(weft_pool_create(&cfg, &pool), WEFT_EINVAL);
    assert_null(pool);

    probe p;
    probes_init(&p, 1);
    assert_int_equal(weft_pool_submit(NULL, probe_task, &p), WEFT_EINVAL);
    assert_int_equal(weft_pool_submit_wait(NULL, probe_task, &p, 10), WEFT_EINVAL);
    assert_int_equal(weft_pool_shutdown(NULL, WEFT_POOL_DRAIN), WEFT_EINVAL);
    weft_pool_get_stats(NULL, NULL);
    weft_pool_stats st;
    memset(&st, 0xff, sizeof(st));
    weft_pool_get_stats(NULL, &st);
    assert_int_equal(st.completed, 0);

    /* A NULL name falls back to the default rather than crashing a worker. */
    weft_pool_config_init(&cfg);
    cfg.threads = 1;
    cfg.queue_capacity = 1;
    cfg.name = NULL;
    assert_int_equal(weft_pool_create(&cfg, &pool), 0);
    assert_int_equal(weft_pool_submit(pool, NULL, &p), WEFT_EINVAL);
    assert_int_equal(weft_pool_submit_wait(pool, NULL, &p, 0), WEFT_EINVAL);
    assert_int_equal(weft_pool_shutdown(pool, (weft_pool_shutdown_mode)42), WEFT_EINVAL);
    /* Argument errors are not "refused by submit": they never reached the queue. */
    weft_pool_get_stats(pool, &st);
    assert_int_equal(st.rejected, 0);
    assert_int_equal(weft_pool_shutdown(pool, WEFT_POOL_DRAIN), 0);
    assert_int_equal(atomic_load(&p.calls), 0);
}

/* N producers push M tasks each through a small queue; every task runs exactly once. */
#define PRODUCERS          4
#define TASKS_PER_PRODUCER 2000

typedef struct producer {
    pthread_t thread;
    weft_pool *pool;
    probe *probes;
    int failures;
} producer;

static void *producer_main(void *arg)
{
    producer *pr = arg;
    for (int i = 0; i < TASKS_PER_PRODUCER; i++) {
        /* Alternate both entry points; a full queue is flow, so retry on WEFT_EAGAIN. */
        int rc;
        if (i % 2 == 0) {
            while ((rc = weft_pool_submit(pr->pool, probe_task, &pr->probes[i])) == WEFT_EAGAIN)
                sched_yield();
        } else {
            rc = weft_pool_submit_wait(pr->pool, probe_task, &pr->probes[i], -1);
        }
        if (rc != 0)
            pr->failures++;
    }
    return NULL;
}

static void test_many_producers_every_task_runs_exactly_once(void **state)
{
    (void)state;
    const size_t total = (size_t)PRODUCERS * TASKS_PER_PRODUCER;
    probe *probes = calloc(total, sizeof(*probes));
    assert_non_null(probes);
    probes_init(probes, total);
    weft_pool *pool = make_pool(3, 16);

    producer prs[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        prs[i] = (producer){.pool = pool, .probes = probes + (size_t)i * TASKS_PER_PRODUCER};
        assert_int_equal(pthread_create(&prs[i].thread, NULL, producer_main, &prs[i]), 0);
    }

    /* Meanwhile the stats stay within their bounds and completed never goes backwards. */
    uint64_t last_completed = 0;
    weft_pool_stats st;
    int64_t end = now_ms() + WAIT_LIMIT_MS;
    do {
        weft_pool_get_stats(pool, &st);
        assert_true(st.queued <= 16);
        assert_true(st.running <= 3);
        assert_true(st.completed >= last_completed);
        assert_true(st.queued + st.running + st.completed <= total);
        last_completed = st.completed;
        assert_true(now_ms() < end);
        sleep_ms(1);
    } while (st.completed < total);

    for (int i = 0; i < PRODUCERS; i++) {
        pthread_join(prs[i].thread, NULL);
        assert_int_equal(prs[i].failures, 0);
    }
    weft_pool_get_stats(pool, &st);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.running, 0);
    assert_int_equal(st.completed, total);
    assert_int_equal(weft_pool_shutdown(pool, WEFT_POOL_DRAIN), 0);

    for (size_t i = 0; i < total; i++) {
        assert_int_equal(atomic_load(&probes[i].calls), 1);
        assert_int_equal(atomic_load(&probes[i].status), 0);
    }
    free(probes);
}

/* Holds both of pool's workers at g and fills the queue behind them with queued[0..n). */
static void fill_behind_held_workers(weft_pool *pool, gate *g, probe *queued, int n)
{
    hold_workers(pool, g, 2);
    for (int i = 0; i < n; i++)
        assert_int_equal(weft_pool_submit(pool, probe_task, &queued[i]), 0);
}

static void test_full_queue_refuses_with_eagain_and_never_calls(void **state)
{
    (void)state;
    gate g;
    gate_init(&g);
    probe queued[4], refused;
    probes_init(queued, 4);
    probes_init(&refused, 1);
    weft_pool *pool = make_pool(2, 4);

    fill_behind_held_workers(pool, &g, queued, 4);
    assert_int_equal(weft_pool_submit(pool, probe_task, &refused), WEFT_EAGAIN);
    assert_int_equal(weft_pool_submit(pool, probe_task, &refused), WEFT_EAGAIN);

    weft_pool_stats st;
    weft_pool_get_stats(pool, &st);
    assert_int_equal(st.queued, 4);
    assert_int_equal(st.running, 2);
    assert_int_equal(st.completed, 0);
    assert_int_equal(st.rejected, 2);

    gate_open(&g);
    assert_int_equal(weft_pool_shutdown(pool, WEFT_POOL_DRAIN), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(atomic_load(&queued[i].calls), 1);
    assert_int_equal(atomic_load(&refused.calls), 0);
    assert_int_equal(atomic_load(&g.calls), 2);
    gate_destroy(&g);
}

static void test_submit_wait_times_out_while_queue_stays_full(void **state)
{
    (void)state;
    gate g;
    gate_init(&g);
    probe queued, refused;
    probes_init(&queued, 1);
    probes_init(&refused, 1);
    weft_pool *pool = make_pool(1, 1);

    hold_workers(pool, &g, 1);
    assert_int_equal(weft_pool_submit(pool, probe_task, &queued), 0);

    int64_t t0 = now_ms();
    assert_int_equal(weft_pool_submit_wait(pool, probe_task, &refused, 50), WEFT_ETIMEDOUT);
    int64_t waited = now_ms() - t0;
    assert_true(waited >= 49); /* ms rounding of the two clock reads */
    assert_true(waited < WAIT_LIMIT_MS);
    /* A zero timeout is a non-blocking try. */
    assert_int_equal(weft_pool_submit_wait(pool, probe_task, &refused, 0), WEFT_ETIMEDOUT);

    weft_pool_stats st;
    weft_pool_get_stats(pool, &st);
    assert_int_equal(st.rejected, 2);

    gate_open(&g);
    assert_int_equal(weft_pool_shutdown(pool, WEFT_POOL_DRAIN), 0);
    assert_int_equal(atomic_load(&queued.calls), 1);
    assert_int_equal(atomic_load(&refused.calls), 0);
    gate_destroy(&g);
}

static void *open_gate_later(void *arg)
{
    sleep_ms(50);
    gate_open(arg);
    return NULL;
}

static void test_submit_wait_succeeds_when_room_appears(void **state)
{
    (void)state;
    gate g;
    gate_init(&g);
    probe queued, waiting;
    probes_init(&queued, 1);
    probes_init(&waiting, 1);
    weft_pool *pool = make_pool(1, 1);

    hold_workers(pool, &g, 1);
    assert_int_equal(weft_pool_submit(pool, probe_task, &queued), 0);
    assert_int_equal(weft_pool_submit(pool, probe_task, &waiting), WEFT_EAGAIN);

    /* The gate opens while we wait; the worker takes the queued task and frees our slot. */
    pthread_t opener;
    assert_int_equal(pthread_create(&opener, NULL, open_gate_later, &g), 0);
    assert_int_equal(weft_pool_submit_wait(pool, probe_task, &waiting, WAIT_LIMIT_MS), 0);
    pthread_join(opener, NULL);

    assert_true(probe_wait_called(&waiting));
    assert_int_equal(weft_pool_shutdown(pool, WEFT_POOL_DRAIN), 0);
    assert_int_equal(atomic_load(&queued.calls), 1);
    assert_int_equal(atomic_load(&waiting.calls), 1);
    assert_int_equal(atomic_load(&waiting.status), 0);
    gate_destroy(&g);
}

static void test_drain_runs_every_task_queued_at_shutdown(void **state)
{
    (void)state;
    enum { N = 8 };
    gate g;
    gate_init(&g);
    probe queued[N], refused;
    probes_init(queued, N);
    probes_init(&refused, 1);
    weft_pool *pool = make_pool(2, N);

    fill_behind_held_workers(pool, &g, queued, N);

    /* Shutdown has begun while every task is still queued; only then may the workers go. */
    closer c;
    closer_start(&c, pool, WEFT_POOL_DRAIN);
    assert_true(wait_shutdown_began(pool, &refused));
    for (int i = 0; i < N; i++)
        assert_int_equal(atomic_load(&queued[i].calls), 0);
    gate_open(&g);
    pthread_join(c.thread, NULL);
    assert_int_equal(c.rc, 0);

    for (int i = 0; i < N; i++) {
        assert_int_equal(atomic_load(&queued[i].calls), 1);
        assert_int_equal(atomic_load(&queued[i].status), 0);
    }
    assert_int_equal(atomic_load(&g.calls), 2);
    assert_int_equal(atomic_load(&refused.calls), 0);
    gate_destroy(&g);
}

static void test_cancel_tells_queued_tasks_and_lets_running_ones_finish(void **state)
{
    (void)state;
    enum { N = 6 };
    gate g;
    gate_init(&g);
    probe queued[N], refused;
    probes_init(queued, N);
    probes_init(&refused, 1);
    weft_pool *pool = make_pool(2, N);

    fill_behind_held_workers(pool, &g, queued, N);

    closer c;
    closer_start(&c, pool, WEFT_POOL_CANCEL);
    assert_true(wait_shutdown_began(pool, &refused));
    /* The queued tasks hear WEFT_ECANCELED while the running ones are still held... */
    for (int i = 0; i < N; i++)
        assert_true(probe_wait_called(&queued[i]));
    assert_int_equal(atomic_load(&g.calls), 0);
    /* ...and shutdown waits for those to finish normally. */
    gate_open(&g);
    pthread_join(c.thread, NULL);
    assert_int_equal(c.rc, 0);

    for (int i = 0; i < N; i++) {
        assert_int_equal(atomic_load(&queued[i].calls), 1);
        assert_int_equal(atomic_load(&queued[i].status), WEFT_ECANCELED);
    }
    assert_int_equal(atomic_load(&g.calls), 2);
    assert_int_equal(atomic_load(&g.status), 0);
    assert_int_equal(atomic_load(&refused.calls), 0);
    gate_destroy(&g);
}

/* A waiter blocked on a full queue is woken by shutdown and told so. */
typedef struct waiter {
    pthread_t thread;
    weft_pool *pool;
    probe *p;
    atomic_int rc;
} waiter;

static void *waiter_main(void *arg)
{
    waiter *w = arg;
    atomic_store(&w->rc, weft_pool_submit_wait(w->pool, probe_task, w->p, -1));
    return NULL;
}

static void test_shutdown_wakes_blocked_submitters_with_eshutdown(void **state)
{
    (void)state;
    gate g;
    gate_init(&g);
    probe queued, waiting, refused;
    probes_init(&queued, 1);
    probes_init(&waiting, 1);
    probes_init(&refused, 1);
    weft_pool *pool = make_pool(1, 1);

    hold_workers(pool, &g, 1);
    assert_int_equal(weft_pool_submit(pool, probe_task, &queued), 0);
    waiter w = {.pool = pool, .p = &waiting};
    atomic_init(&w.rc, 1);
    assert_int_equal(pthread_create(&w.thread, NULL, waiter_main, &w), 0);
    /* Give the waiter time to block; if it has not yet, it sees the shutdown on entry,
     * which is the same story. */
    sleep_ms(20);

    closer c;
    closer_start(&c, pool, WEFT_POOL_DRAIN);
    pthread_join(w.thread, NULL);
    assert_int_equal(atomic_load(&w.rc), WEFT_ESHUTDOWN);
    assert_true(wait_shutdown_began(pool, &refused));
    gate_open(&g);
    pthread_join(c.thread, NULL);
    assert_int_equal(c.rc, 0);

    assert_int_equal(atomic_load(&queued.calls), 1);
    assert_int_equal(atomic_load(&waiting.calls), 0);
    assert_int_equal(atomic_load(&refused.calls), 0);
    gate_destroy(&g);
}

/* Producers keep submitting while the pool shuts down. Each sees 0 or WEFT_ESHUTDOWN (or
 * a full queue, which it retries), and every accepted task is called exactly once. One
 * worker is held on a gate that opens only after the producers have stopped, so the pool
 * cannot be freed under a producer that is still calling it. */
#define RACE_PRODUCERS 3
#define RACE_MAX_TASKS (1 << 16)
#define RACE_START_AT  500

typedef struct race {
    weft_pool *pool;
    probe *probes;
    atomic_int next;     /* next probe index to hand out */
    atomic_int accepted; /* tasks the pool took */
    atomic_int odd;      /* answers other than 0, EAGAIN, ETIMEDOUT, ESHUTDOWN */
    atomic_int overflow; /* producers that ran out of probes */
} race;

typedef struct race_producer {
    pthread_t thread;
    race *r;
    int seed;
} race_producer;

static void *race_producer_main(void *arg)
{
    race_producer *rp = arg;
    race *r = rp->r;
    int id = atomic_fetch_add(&r->next, 1);
    for (unsigned n = (unsigned)rp->seed;; n++) {
        if (id >= RACE_MAX_TASKS) {
            atomic_fetch_add(&r->overflow, 1);
            return NULL;
        }
        int rc = n % 3 == 0 ? weft_pool_submit_wait(r->pool, probe_task, &r->probes[id], 1)
                            : weft_pool_submit(r->pool, probe_task, &r->probes[id]);
        if (rc == 0) {
            atomic_fetch_add(&r->accepted, 1);
            id = atomic_fetch_add(&r->next, 1);
        } else if (rc == WEFT_ESHUTDOWN) {
            return NULL;
        } else if (rc != WEFT_EAGAIN && rc != WEFT_ETIMEDOUT) {
            atomic_fetch_add(&r->odd, 1);
            return NULL;
        }
        /* A refused probe is retried as is, so it is never counted twice. */
    }
}

static void shutdown_under_producers(weft_pool_shutdown_mode mode)
{
    gate g;
    gate_init(&g);
    race r = {.pool = make_pool(2, 16)};
    r.probes = calloc(RACE_MAX_TASKS, sizeof(*r.probes));
    assert_non_null(r.probes);
    probes_init(r.probes, RACE_MAX_TASKS);
    atomic_init(&r.next, 0);
    atomic_init(&r.accepted, 0);
    atomic_init(&r.odd, 0);
    atomic_init(&r.overflow, 0);

    hold_workers(r.pool, &g, 1);
    race_producer rps[RACE_PRODUCERS];
    for (int i = 0; i < RACE_PRODUCERS; i++) {
        rps[i] = (race_producer){.r = &r, .seed = i};
        assert_int_equal(pthread_create(&rps[i].thread, NULL, race_producer_main, &rps[i]), 0);
    }
    int64_t end = now_ms() + WAIT_LIMIT_MS;
    while (atomic_load(&r.accepted) < RACE_START_AT) {
        assert_true(now_ms() < end);
        sleep_ms(1);
    }

    closer c;
    closer_start(&c, r.pool, mode);
    for (int i = 0; i < RACE_PRODUCERS; i++)
        pthread_join(rps[i].thread, NULL);
    gate_open(&g);
    pthread_join(c.thread, NULL);
    assert_int_equal(c.rc, 0);

    assert_int_equal(atomic_load(&r.odd), 0);
    assert_int_equal(atomic_load(&r.overflow), 0);
    int called = 0, cancelled = 0;
    for (int i = 0; i < RACE_MAX_TASKS; i++) {
        int calls = atomic_load(&r.probes[i].calls);
        assert_true(calls == 0 || calls == 1);
        called += calls;
        if (calls == 1 && atomic_load(&r.probes[i].status) == WEFT_ECANCELED)
            cancelled++;
        else if (calls == 1)
            assert_int_equal(atomic_load(&r.probes[i].status), 0);
    }
    assert_int_equal(called, atomic_load(&r.accepted));
    if (mode == WEFT_POOL_DRAIN)
        assert_int_equal(cancelled, 0);
    assert_int_equal(atomic_load(&g.calls), 1);
    assert_int_equal(atomic_load(&g.status), 0);
    free(r.probes);
    gate_destroy(&g);
}

static void test_drain_while_producers_still_submit(void **state)
{
    (void)state;
    shutdown_under_producers(WEFT_POOL_DRAIN);
}

static void test_cancel_while_producers_still_submit(void **state)
{
    (void)state;
    shutdown_under_producers(WEFT_POOL_CANCEL);
}

static void test_stats_add_up_through_a_pools_life(void **state)
{
    (void)state;
    gate g;
    gate_init(&g);
    probe queued[3], refused;
    probes_init(queued, 3);
    probes_init(&refused, 1);
    weft_pool *pool = make_pool(2, 3);

    weft_pool_stats st;
    weft_pool_get_stats(pool, &st);
    assert_int_equal(st.queued + st.running + st.completed + st.rejected, 0);

    fill_behind_held_workers(pool, &g, queued, 3);
    assert_int_equal(weft_pool_submit(pool, probe_task, &refused), WEFT_EAGAIN);
    assert_int_equal(weft_pool_submit_wait(pool, probe_task, &refused, 0), WEFT_ETIMEDOUT);
    weft_pool_get_stats(pool, &st);
    assert_int_equal(st.queued, 3);
    assert_int_equal(st.running, 2);
    assert_int_equal(st.completed, 0);
    assert_int_equal(st.rejected, 2);

    gate_open(&g);
    int64_t end = now_ms() + WAIT_LIMIT_MS;
    do {
        assert_true(now_ms() < end);
        sleep_ms(1);
        weft_pool_get_stats(pool, &st);
    } while (st.completed < 5);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.running, 0);
    assert_int_equal(st.completed, 5);
    assert_int_equal(st.rejected, 2);
    assert_int_equal(weft_pool_shutdown(pool, WEFT_POOL_DRAIN), 0);
    assert_int_equal(atomic_load(&refused.calls), 0);
    gate_destroy(&g);
}

/* A task that tries to shut its own pool down is refused instead of joining itself. */
typedef struct self_stop {
    weft_pool *pool;
    atomic_int shutdown_rc;
    atomic_int submit_rc;
    probe follow_up;
} self_stop;

static void self_stop_task(void *arg, int status)
{
    self_stop *s = arg;
    (void)status;
    atomic_store(&s->shutdown_rc, weft_pool_shutdown(s->pool, WEFT_POOL_DRAIN));
    /* The pool is untouched, so the task may keep using it. */
    atomic_store(&s->submit_rc, weft_pool_submit(s->pool, probe_task, &s->follow_up));
}

static void test_shutdown_from_a_pool_thread_is_ebusy(void **state)
{
    (void)state;
    self_stop s = {.pool = make_pool(2, 4)};
    atomic_init(&s.shutdown_rc, 1);
    atomic_init(&s.submit_rc, 1);
    probes_init(&s.follow_up, 1);

    assert_int_equal(weft_pool_submit(s.pool, self_stop_task, &s), 0);
    assert_true(probe_wait_called(&s.follow_up));
    assert_int_equal(atomic_load(&s.shutdown_rc), WEFT_EBUSY);
    assert_int_equal(atomic_load(&s.submit_rc), 0);
    assert_int_equal(weft_pool_shutdown(s.pool, WEFT_POOL_DRAIN), 0);
    assert_int_equal(atomic_load(&s.follow_up.calls), 1);
}

/* Workers carry the configured name, cut so the index survives the 15-byte limit. */
typedef struct name_probe {
    char name[32];
    probe done;
} name_probe;

static void name_task(void *arg, int status)
{
    name_probe *n = arg;
    (void)status;
    if (pthread_getname_np(pthread_self(), n->name, sizeof(n->name)) != 0)
        n->name[0] = '\0';
    probe_task(&n->done, 0);
}

static void test_worker_threads_are_named_from_the_config(void **state)
{
    (void)state;
    weft_pool_config cfg;
    weft_pool_config_init(&cfg);
    cfg.threads = 1;
    cfg.name = "a-rather-long-pool-name";
    weft_pool *pool = NULL;
    assert_int_equal(weft_pool_create(&cfg, &pool), 0);

    name_probe n = {.name = ""};
    probes_init(&n.done, 1);
    assert_int_equal(weft_pool_submit(pool, name_task, &n), 0);
    assert_true(probe_wait_called(&n.done));
    assert_int_equal(weft_pool_shutdown(pool, WEFT_POOL_DRAIN), 0);
    assert_string_equal(n.name, "a-rather-long-0");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_init_fills_defaults),
        cmocka_unit_test(test_bad_arguments_are_einval_not_crashes),
        cmocka_unit_test(test_many_producers_every_task_runs_exactly_once),
        cmocka_unit_test(test_full_queue_refuses_with_eagain_and_never_calls),
        cmocka_unit_test(test_submit_wait_times_out_while_queue_stays_full),
        cmocka_unit_test(test_submit_wait_succeeds_when_room_appears),
        cmocka_unit_test(test_drain_runs_every_task_queued_at_shutdown),
        cmocka_unit_test(test_cancel_tells_queued_tasks_and_lets_running_ones_finish),
        cmocka_unit_test(test_shutdown_wakes_blocked_submitters_with_eshutdown),
        cmocka_unit_test(test_drain_while_producers_still_submit),
        cmocka_unit_test(test_cancel_while_producers_still_submit),
        cmocka_unit_test(test_stats_add_up_through_a_pools_life),
        cmocka_unit_test(test_shutdown_from_a_pool_thread_is_ebusy),
        cmocka_unit_test(test_worker_threads_are_named_from_the_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
