/* The engine's worker pool and cross-thread writes at their limits: connections that close
 * under the writers neither crash nor leak, and every zero-copy buffer is freed exactly once
 * when (and only when) the call took it; a write refused at the hard cap closes the
 * connection (no stream with a hole), and a writer that holds back by
 * weft_async_get_pending_out keeps it; and stopping the engine under writers cancels what
 * is queued. Ordering, latency and coalescing are in test_net_workers.c.
 *
 * The server, its client commands and the drainer thread are in support/workers_support.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "workers_support.h"

/* ---- 1. connections closing under the writers ---- */

#define CHURN_CONNS  60
#define CHURN_WRITES 6000

static _Atomic long churn_reached;   /* workers a third of the way through */
static _Atomic int churn_all_closed; /* the server closed every connection */

typedef struct churn_task {
    weft_engine *engine;
    unsigned w;
    weft_conn_ref refs[CHURN_CONNS];
    wk_call_rec *recs;
    _Atomic long *done;
    bool waited_out; /* gave up waiting for the closes */
} churn_task;

static void churn_writer(void *arg, int status)
{
    churn_task *t = arg;
    for (unsigned i = 0; i < CHURN_WRITES && status == 0; i++) {
        if (i == CHURN_WRITES / 3)
            atomic_fetch_add(&churn_reached, 1);
        if (i == 2 * CHURN_WRITES / 3) {
            /* The last third runs against connections that are certainly gone. */
            int64_t end = wt_now_ms() + WT_TIMEOUT_MS;
            while (!atomic_load(&churn_all_closed) && wt_now_ms() < end)
                wt_sleep_ms(1);
            t->waited_out = !atomic_load(&churn_all_closed);
        }
        unsigned conn = wk_target_conn(t->w, i, CHURN_CONNS);
        uint8_t m[WK_MSG_HDR + 48];
        size_t n = wk_msg_build(m, t->w, conn, i);
        wk_call_rec *r = &t->recs[i];
        r->after_close = i >= 2 * CHURN_WRITES / 3;
        if (i % 3 == 0) {
            r->rc = weft_async_write(t->engine, t->refs[conn], m, n);
        } else {
            r->rc = wk_write_zc_copy(t->engine, t->refs[conn], m, n, r);
        }
    }
    atomic_fetch_add(t->done, 1);
}

static void test_connections_closing_under_writers(void **state)
{
    (void)state;
    weft_config cfg;
    wk_base_config(&cfg);
    wt_server s;
    wk_start_server(&s, &cfg);
    int fds[CHURN_CONNS];
    wk_connect_clients(&s, fds, CHURN_CONNS);
    atomic_store(&churn_reached, 0);
    atomic_store(&churn_all_closed, 0);

    /* A third close from the client (half of those with a reset), a third are closed by
     * the server at the client's request, a third by weft_async_close from here. */
    int plan[CHURN_CONNS];
    for (unsigned c = 0; c < CHURN_CONNS; c++) {
        switch (c % 3) {
        case 0:
            plan[c] = c % 2 ? WK_PEER_RESET : WK_PEER_CLOSE;
            break;
        case 1:
            plan[c] = WK_PEER_ASK_CLOSE;
            break;
        default:
            plan[c] = WK_PEER_KEEP;
        }
    }
    wk_drainer *d = wk_drainer_start(fds, CHURN_CONNS, false, NULL, plan);

    static churn_task tasks[WK_WORKERS];
    _Atomic long done = 0;
    wk_call_rec *recs = calloc((size_t)WK_WORKERS * CHURN_WRITES, sizeof(*recs));
    assert_non_null(recs);
    for (unsigned w = 0; w < WK_WORKERS; w++) {
        tasks[w].engine = s.engine;
        tasks[w].w = w;
        tasks[w].waited_out = false;
        for (unsigned c = 0; c < CHURN_CONNS; c++)
            tasks[w].refs[c] = wk_ref_of(c);
        tasks[w].recs = recs + (size_t)w * CHURN_WRITES;
        tasks[w].done = &done;
        assert_int_equal(weft_pool_submit(weft_engine_get_pool(s.engine), churn_writer, &tasks[w]),
                         0);
    }

    /* Close while every worker is busy writing. */
    assert_true(wt_wait_count(&churn_reached, WK_WORKERS, WT_TIMEOUT_MS));
    atomic_store(&d->act, 1);
    for (unsigned c = 2; c < CHURN_CONNS; c += 3)
        assert_int_equal(weft_async_close(s.engine, wk_ref_of(c)), 0);
    assert_true(wt_wait_count(&wk_closed_count, CHURN_CONNS, WT_TIMEOUT_MS));
    atomic_store(&churn_all_closed, 1);

    assert_true(wt_wait_count(&done, WK_WORKERS, WT_TIMEOUT_MS));
    wk_drainer_finish(d);
    assert_false(d->timed_out);
    for (unsigned w = 0; w < WK_WORKERS; w++)
        assert_false(tasks[w].waited_out);
    wt_server_stop(&s);

    /* After weft_engine_wait nothing can still hold a buffer: each accepted one was freed
     * exactly once, each refused one never. */
    long ok = 0, stale = 0;
    for (size_t i = 0; i < (size_t)WK_WORKERS * CHURN_WRITES; i++) {
        wk_call_rec *r = &recs[i];
        if (r->rc == 0) {
            assert_false(r->after_close);
            ok++;
        } else {
            assert_int_equal(r->rc, WEFT_ESTALE);
            stale++;
        }
        assert_int_equal(atomic_load(&r->frees), (r->zc && r->rc == 0) ? 1 : 0);
    }
    assert_true(ok >= (long)WK_WORKERS * CHURN_WRITES / 3);
    assert_true(stale >= (long)WK_WORKERS * CHURN_WRITES / 3);
    wk_drainer_free(d);
    free(recs);
}
/* ---- 2. the hard cap reaches the caller ---- */

#define CAP_CHUNK (64u * 1024u)

/* Starts a server whose write queues are capped as given and connects one client to it:
 * returns the client's fd, whose server-side ref is wk_ref_of(0). */
static int start_capped_server(wt_server *s, weft_config *cfg, size_t high_water, size_t hard_cap)
{
    wk_base_config(cfg);
    cfg->write_high_water = high_water;
    cfg->write_hard_cap = hard_cap;
    wk_start_server(s, cfg);
    int fd;
    wk_connect_clients(s, &fd, 1);
    return fd;
}

static void test_async_write_over_the_hard_cap_closes_the_connection(void **state)
{
    (void)state;
    weft_config cfg;
    wt_server s;
    int fd = start_capped_server(&s, &cfg, 256u * 1024u, 1024u * 1024u);
    weft_conn_ref ref = wk_ref_of(0);

    /* The peer reads nothing: the kernel's buffers fill, then the queue, then the caller is
     * told, and the connection closes: a reader never gets a stream with a hole in it. Chunk
     * k carries pattern k so what did go out can be checked. */
    uint8_t *chunk = malloc(CAP_CHUNK);
    assert_non_null(chunk);
    size_t accepted = 0;
    int rc = 0;
    for (uint32_t k = 0; k < 1024 && rc == 0; k++) {
        wt_fill(chunk, CAP_CHUNK, k);
        rc = weft_async_write(s.engine, ref, chunk, CAP_CHUNK);
        if (rc == 0)
            accepted++;
        /* Uneven pauses let the loop move some writes on and not others, so the check
         * lands at every point of the loop's handling of the one before. */
        usleep((k % 7) * 20);
    }
    print_message("hard cap of %lu bytes: %lu chunks of %lu accepted before WEFT_EOUTCAP\n",
                  (unsigned long)cfg.write_hard_cap, (unsigned long)accepted,
                  (unsigned long)CAP_CHUNK);
    assert_int_equal(rc, WEFT_EOUTCAP);
    assert_true(accepted > 0);
    assert_true(wt_wait_count(&wk_closed_count, 1, WT_TIMEOUT_MS));
    assert_int_equal(atomic_load(&wk_last_close_err), WEFT_EOUTCAP);
    /* Later writes learn the connection is gone. */
    assert_int_equal(weft_async_write(s.engine, ref, chunk, 1), WEFT_ESTALE);

    /* What did arrive is a prefix of the stream, in order, never one with a gap. */
    uint8_t *in = malloc(CAP_CHUNK);
    assert_non_null(in);
    uint32_t got = 0;
    while (got < accepted && wt_recv_exact(fd, in, CAP_CHUNK, WT_TIMEOUT_MS) == 0) {
        wt_fill(chunk, CAP_CHUNK, got);
        assert_memory_equal(in, chunk, CAP_CHUNK);
        got++;
    }
    print_message("%u of them arrived before the close\n", got);
    free(in);
    free(chunk);
    wt_close(fd);

    /* A single write larger than the cap on its own is refused too, and closes too. */
    atomic_store(&wk_registered, 0);
    wk_connect_clients(&s, &fd, 1);
    weft_conn_ref ref2 = wk_ref_of(0);
    assert_false(weft_conn_ref_equal(ref, ref2));
    uint8_t *huge = calloc(1, cfg.write_hard_cap + 1);
    assert_non_null(huge);
    assert_int_equal(weft_async_write(s.engine, ref2, huge, cfg.write_hard_cap + 1), WEFT_EOUTCAP);
    free(huge);
    assert_true(wt_wait_count(&wk_closed_count, 2, WT_TIMEOUT_MS));
    assert_int_equal(atomic_load(&wk_last_close_err), WEFT_EOUTCAP);
    wt_close(fd);
    wt_server_stop(&s);
}

/* A writer that watches weft_async_get_pending_out and holds back below the cap keeps its
 * connection while a slow reader drains it, and every byte arrives in order: the query is
 * how a producer applies its own policy before the cap closes the connection. */
#define HOVER_CHUNK  8192u
#define HOVER_WRITES 1500u

typedef struct hover {
    weft_engine *engine;
    weft_conn_ref ref;
    size_t limit;
    _Atomic long accepted;
    _Atomic long held_back;
    _Atomic int failure;
} hover;

static void *hover_writer(void *arg)
{
    hover *h = arg;
    /* Chunk k is k in its first four bytes and a constant after: cheap to make and check,
     * so tries come quickly and the reader's pace is set by its pause alone. */
    uint8_t *chunk = malloc(HOVER_CHUNK);
    memset(chunk, 'h', HOVER_CHUNK);
    uint32_t seq = 0;
    memcpy(chunk, &seq, sizeof(seq));
    int64_t end = wt_now_ms() + WT_TIMEOUT_MS;
    for (unsigned k = 0; seq < HOVER_WRITES; k++) {
        size_t pending;
        int rc = weft_async_get_pending_out(h->engine, h->ref, &pending);
        if (rc == 0 && pending + HOVER_CHUNK > h->limit && wt_now_ms() < end) {
            atomic_fetch_add(&h->held_back, 1);
            usleep((k % 5) * 10);
            continue;
        }
        if (rc == 0)
            rc = weft_async_write(h->engine, h->ref, chunk, HOVER_CHUNK);
        if (rc != 0) {
            atomic_store(&h->failure, rc);
            break;
        }
        seq++;
        memcpy(chunk, &seq, sizeof(seq));
        atomic_store(&h->accepted, (long)seq);
    }
    free(chunk);
    return NULL;
}

static void test_writer_watching_pending_out_keeps_its_connection(void **state)
{
    (void)state;
    weft_config cfg;
    wt_server s;
    int fd = start_capped_server(&s, &cfg, 64u * 1024u, 256u * 1024u);
    hover h;
    h.engine = s.engine;
    h.ref = wk_ref_of(0);
    h.limit = cfg.write_hard_cap / 2; /* its own policy, well below the cap */
    atomic_store(&h.accepted, 0);
    atomic_store(&h.held_back, 0);
    atomic_store(&h.failure, 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, hover_writer, &h), 0);

    /* Read slowly, one chunk at a time, checking each. */
    uint8_t *in = malloc(HOVER_CHUNK), *want = malloc(HOVER_CHUNK);
    assert_non_null(in);
    assert_non_null(want);
    memset(want, 'h', HOVER_CHUNK);
    uint32_t k;
    for (k = 0; k < HOVER_WRITES && atomic_load(&h.failure) == 0; k++) {
        if (wt_recv_exact(fd, in, HOVER_CHUNK, WT_TIMEOUT_MS) != 0)
            break;
        memcpy(want, &k, sizeof(k));
        assert_memory_equal(in, want, HOVER_CHUNK);
        usleep(30);
    }
    pthread_join(th, NULL);
    print_message("%u chunks under the writer's limit: held back %ld times on the way\n", k,
                  atomic_load(&h.held_back));
    assert_int_equal(atomic_load(&h.failure), 0);
    assert_int_equal(k, HOVER_WRITES);
    assert_true(atomic_load(&h.held_back) > 0); /* the slow reader did make it wait */
    assert_int_equal(atomic_load(&wk_closed_count), 0);
    free(in);
    free(want);
    wt_close(fd);
    wt_server_stop(&s);
}

/* ---- 3. stopping the engine under writers ---- */

#define STOP_CONNS      20
#define STOP_MAX_WRITES 20000
#define STOP_VICTIMS    200

static _Atomic long loopers_started;
static _Atomic long looper_writes;
static _Atomic long victims_ran;
static _Atomic long victims_cancelled;
static _Atomic long probes_submitted;
static _Atomic long probe_calls;

typedef struct looper_task {
    weft_engine *engine;
    unsigned w;
    weft_conn_ref refs[STOP_CONNS];
    wk_call_rec *recs;
    unsigned calls;  /* write calls made */
    int status;      /* what the pool told this task */
    _Atomic int ran; /* times the pool called it */
} looper_task;

static void probe_task(void *arg, int status)
{
    (void)arg;
    (void)status;
    atomic_fetch_add(&probe_calls, 1);
}

static void victim_task(void *arg, int status)
{
    if (status == WEFT_ECANCELED)
        atomic_fetch_add(&victims_cancelled, 1);
    else
        atomic_fetch_add(&victims_ran, 1);
    free(arg); /* a task is always called, so it can always free its argument */
}

static void looper(void *arg, int status)
{
    looper_task *t = arg;
    atomic_fetch_add(&t->ran, 1);
    t->status = status;
    if (status != 0)
        return;
    atomic_fetch_add(&loopers_started, 1);
    unsigned i;
    for (i = 0; i < STOP_MAX_WRITES; i++) {
        unsigned conn = wk_target_conn(t->w, i, STOP_CONNS);
        uint8_t m[WK_MSG_HDR + 48];
        size_t n = wk_msg_build(m, t->w, conn, i);
        wk_call_rec *r = &t->recs[i];
        if (i % 2 == 0) {
            r->rc = weft_async_write(t->engine, t->refs[conn], m, n);
        } else {
            r->rc = wk_write_zc_copy(t->engine, t->refs[conn], m, n, r);
        }
        atomic_fetch_add(&looper_writes, 1);
        if (r->rc == WEFT_ESHUTDOWN) {
            i++;
            break;
        }
    }
    t->calls = i;
    /* Hold this worker until the pool itself stops, so what waits in its queue is
     * cancelled rather than run. Probes that get in are counted like any task. */
    weft_pool *pool = weft_engine_get_pool(t->engine);
    int64_t end = wt_now_ms() + WT_TIMEOUT_MS;
    while (wt_now_ms() < end) {
        int rc = weft_pool_submit(pool, probe_task, NULL);
        if (rc == WEFT_ESHUTDOWN)
            break;
        if (rc == 0)
            atomic_fetch_add(&probes_submitted, 1);
        wt_sleep_ms(2);
    }
}

static void test_stop_while_workers_write(void **state)
{
    (void)state;
    weft_config cfg;
    wk_base_config(&cfg);
    wt_server s;
    wk_start_server(&s, &cfg);
    int fds[STOP_CONNS];
    wk_connect_clients(&s, fds, STOP_CONNS);
    wk_drainer *d = wk_drainer_start(fds, STOP_CONNS, false, NULL, NULL);
    atomic_store(&loopers_started, 0);
    atomic_store(&looper_writes, 0);
    atomic_store(&victims_ran, 0);
    atomic_store(&victims_cancelled, 0);
    atomic_store(&probes_submitted, 0);
    atomic_store(&probe_calls, 0);

    static looper_task tasks[WK_WORKERS];
    wk_call_rec *recs = calloc((size_t)WK_WORKERS * STOP_MAX_WRITES, sizeof(*recs));
    assert_non_null(recs);
    weft_pool *pool = weft_engine_get_pool(s.engine);
    for (unsigned w = 0; w < WK_WORKERS; w++) {
        tasks[w].engine = s.engine;
        tasks[w].w = w;
        tasks[w].calls = 0;
        tasks[w].status = 1;
        atomic_store(&tasks[w].ran, 0);
        for (unsigned c = 0; c < STOP_CONNS; c++)
            tasks[w].refs[c] = wk_ref_of(c);
        tasks[w].recs = recs + (size_t)w * STOP_MAX_WRITES;
        assert_int_equal(weft_pool_submit(pool, looper, &tasks[w]), 0);
    }
    assert_true(wt_wait_count(&loopers_started, WK_WORKERS, WT_TIMEOUT_MS));
    /* Every worker is taken: these wait in the queue until the engine stops. */
    for (int i = 0; i < STOP_VICTIMS; i++) {
        int *arg = malloc(sizeof(*arg));
        assert_non_null(arg);
        assert_int_equal(weft_pool_submit(pool, victim_task, arg), 0);
    }
    assert_true(wt_wait_count(&looper_writes, 4000, WT_TIMEOUT_MS));

    weft_engine_stop(s.engine);
    weft_engine_wait(s.engine);
    s.engine = NULL;
    wk_drainer_finish(d);
    assert_false(d->timed_out);

    assert_int_equal(atomic_load(&victims_ran), 0);
    assert_int_equal(atomic_load(&victims_cancelled), STOP_VICTIMS);
    assert_int_equal(atomic_load(&probe_calls), atomic_load(&probes_submitted));
    long ok = 0, shut = 0;
    for (unsigned w = 0; w < WK_WORKERS; w++) {
        assert_int_equal(atomic_load(&tasks[w].ran), 1);
        assert_int_equal(tasks[w].status, 0);
        for (unsigned i = 0; i < tasks[w].calls; i++) {
            wk_call_rec *r = &tasks[w].recs[i];
            /* Calls racing the stop may still see a connection the stop just closed. */
            if (r->rc == 0)
                ok++;
            else if (r->rc == WEFT_ESHUTDOWN)
                shut++;
            else
                assert_int_equal(r->rc, WEFT_ESTALE);
            assert_int_equal(atomic_load(&r->frees), (r->zc && r->rc == 0) ? 1 : 0);
        }
    }
    assert_true(ok > 0);
    assert_true(shut >= 1);
    wk_drainer_free(d);
    free(recs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connections_closing_under_writers),
        cmocka_unit_test(test_async_write_over_the_hard_cap_closes_the_connection),
        cmocka_unit_test(test_writer_watching_pending_out_keeps_its_connection),
        cmocka_unit_test(test_stop_while_workers_write),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
