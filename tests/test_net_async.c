/* Reaching a connection from other threads by ref: writes arrive whole and in the order of
 * the calls, a zero-copy buffer is freed exactly once, close and wake do what they say, and a
 * ref to a connection that is gone answers WEFT_ESTALE without touching anything. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "counters.h"
#include "harness.h"

static _Atomic long wakes;
static pthread_mutex_t ref_mu = PTHREAD_MUTEX_INITIALIZER;
static weft_conn_ref last_ref; /* the ref of the most recently opened connection */

/* The shared counts (wt_counts) and this file's own. */
static void reset_state(void)
{
    wt_counters_reset();
    atomic_store(&wakes, 0);
}

static weft_action remember_ref(weft_conn *c)
{
    pthread_mutex_lock(&ref_mu);
    last_ref = weft_conn_get_ref(c);
    pthread_mutex_unlock(&ref_mu);
    return wt_count_open(c);
}

/* While set, a wake holds its loop inside on_traffic, so a test can queue several tasks
 * and know the loop runs them all together, in order, once it is let go. */
static atomic_int hold_loop;
static atomic_int loop_held;

/* Echoes bytes; a call with nothing buffered can only be a wake, and says so. */
static weft_action echo_or_wake(weft_conn *c)
{
    if (weft_conn_get_buffered(c) == 0) {
        if (atomic_load(&hold_loop)) {
            atomic_store(&loop_held, 1);
            int64_t end = wt_now_ms() + WT_TIMEOUT_MS;
            while (atomic_load(&hold_loop) && wt_now_ms() < end)
                wt_sleep_ms(1);
            atomic_store(&loop_held, 0);
        }
        /* Reading calls see nothing, rather than a span that is not there. */
        const uint8_t *p = (const uint8_t *)"";
        if (weft_conn_peek(c, 0, &p) != 0 || weft_conn_discard(c, 1) != 0)
            weft_conn_write(c, "bad wake\n", 9);
        atomic_fetch_add(&wakes, 1);
        weft_conn_write(c, "woken\n", 6);
        return WEFT_ACTION_NONE;
    }
    return wt_echo_on_traffic(c);
}

typedef struct fixture {
    wt_server s;
    int fd;
    weft_conn_ref ref;
} fixture;

/* An engine with two loops and one connected client whose ref the test holds. */
static void fixture_start(fixture *f)
{
    reset_state();
    weft_config cfg;
    wt_config(&cfg, echo_or_wake, 2);
    cfg.handler.on_open = remember_ref;
    cfg.handler.on_close = wt_count_close;
    assert_int_equal(wt_server_start(&f->s, &cfg), 0);
    f->fd = wt_connect_tcp(f->s.port);
    assert_true(f->fd >= 0);
    assert_true(wt_wait_count(&wt_counts.opened, 1, WT_TIMEOUT_MS));
    pthread_mutex_lock(&ref_mu);
    f->ref = last_ref;
    pthread_mutex_unlock(&ref_mu);
    assert_true(f->ref.gen != 0);
}

static void fixture_stop(fixture *f)
{
    if (f->fd >= 0)
        wt_close(f->fd);
    wt_server_stop(&f->s);
}

/* ---- several threads writing to one live connection ---- */

#define WRITERS           4
#define WRITES_PER_THREAD 3000

typedef struct record {
    uint32_t thread;
    uint32_t seq;
} record;

typedef struct async_writer {
    weft_engine *engine;
    weft_conn_ref ref;
    uint32_t id;
    int failures;
} async_writer;

static void *async_writer_main(void *arg)
{
    async_writer *w = arg;
    for (uint32_t i = 0; i < WRITES_PER_THREAD; i++) {
        record r = {w->id, i};
        int rc;
        if (w->id % 2 == 0) {
            rc = weft_async_write(w->engine, w->ref, &r, sizeof(r));
        } else { /* the record in two pieces, sent as one */
            struct iovec iov[2] = {{&r.thread, sizeof(r.thread)}, {&r.seq, sizeof(r.seq)}};
            rc = weft_async_writev(w->engine, w->ref, iov, 2);
        }
        if (rc != 0)
            w->failures++;
    }
    return NULL;
}

static void test_async_writes_from_threads_arrive_in_order(void **state)
{
    (void)state;
    fixture f;
    fixture_start(&f);
    async_writer ws[WRITERS];
    pthread_t th[WRITERS];

    for (uint32_t i = 0; i < WRITERS; i++) {
        ws[i] = (async_writer){f.s.engine, f.ref, i, 0};
        assert_int_equal(pthread_create(&th[i], NULL, async_writer_main, &ws[i]), 0);
    }
    size_t total = (size_t)WRITERS * WRITES_PER_THREAD;
    record *got = malloc(total * sizeof(*got));
    assert_non_null(got);
    assert_int_equal(wt_recv_exact(f.fd, got, total * sizeof(*got), WT_TIMEOUT_MS), 0);
    for (int i = 0; i < WRITERS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(ws[i].failures, 0);
    }

    /* Records are never torn, and each thread's come in the order it wrote them. */
    uint32_t next[WRITERS] = {0};
    for (size_t k = 0; k < total; k++) {
        assert_in_range(got[k].thread, 0, WRITERS - 1);
        assert_int_equal(got[k].seq, next[got[k].thread]);
        next[got[k].thread]++;
    }
    for (int i = 0; i < WRITERS; i++)
        assert_int_equal(next[i], WRITES_PER_THREAD);
    free(got);
    fixture_stop(&f);
}

/* ---- zero-copy writes ---- */

#define ZC_BUFFERS 64
#define ZC_SIZE    4000

static _Atomic int zc_frees[ZC_BUFFERS];
static _Atomic long zc_total_frees;

static void zc_free(void *data, void *ctx)
{
    atomic_fetch_add(&zc_frees[(intptr_t)ctx], 1);
    atomic_fetch_add(&zc_total_frees, 1);
    free(data);
}

static void reset_zc(void)
{
    for (int i = 0; i < ZC_BUFFERS; i++)
        atomic_store(&zc_frees[i], 0);
    atomic_store(&zc_total_frees, 0);
}

static void test_async_write_zc_frees_each_buffer_once(void **state)
{
    (void)state;
    fixture f;
    fixture_start(&f);
    reset_zc();
    uint8_t *want = malloc((size_t)ZC_BUFFERS * ZC_SIZE);
    uint8_t *got = malloc((size_t)ZC_BUFFERS * ZC_SIZE);
    assert_non_null(want);
    assert_non_null(got);
    wt_fill(want, (size_t)ZC_BUFFERS * ZC_SIZE, 11);

    for (intptr_t i = 0; i < ZC_BUFFERS; i++) {
        uint8_t *b = malloc(ZC_SIZE);
        assert_non_null(b);
        memcpy(b, want + i * ZC_SIZE, ZC_SIZE);
        assert_int_equal(weft_async_write_zc(f.s.engine, f.ref, b, ZC_SIZE, zc_free, (void *)i), 0);
    }
    assert_int_equal(wt_recv_exact(f.fd, got, (size_t)ZC_BUFFERS * ZC_SIZE, WT_TIMEOUT_MS), 0);

    assert_memory_equal(got, want, (size_t)ZC_BUFFERS * ZC_SIZE);
    assert_true(wt_wait_count(&zc_total_frees, ZC_BUFFERS, WT_TIMEOUT_MS));
    /* Once the engine has stopped, every free it was ever going to make is made. */
    fixture_stop(&f);
    for (int i = 0; i < ZC_BUFFERS; i++)
        assert_int_equal(atomic_load(&zc_frees[i]), 1);
    free(want);
    free(got);
}

static void test_async_write_zc_behind_a_close_is_freed_not_sent(void **state)
{
    (void)state;
    fixture f;
    fixture_start(&f);
    reset_zc();
    uint8_t *b = malloc(100);
    assert_non_null(b);
    memset(b, 'z', 100);

    /* Hold the loop so that all three calls find the connection live and are accepted;
     * once let go, the loop runs the close first, so the zero-copy write finds the
     * connection closing and must drop it, freeing the buffer. */
    atomic_store(&hold_loop, 1);
    assert_int_equal(weft_async_wake(f.s.engine, f.ref), 0);
    int64_t end = wt_now_ms() + WT_TIMEOUT_MS;
    while (!atomic_load(&loop_held)) {
        assert_true(wt_now_ms() < end);
        wt_sleep_ms(1);
    }
    assert_int_equal(weft_async_write(f.s.engine, f.ref, "first", 5), 0);
    assert_int_equal(weft_async_close(f.s.engine, f.ref), 0);
    assert_int_equal(weft_async_write_zc(f.s.engine, f.ref, b, 100, zc_free, (void *)0), 0);
    atomic_store(&hold_loop, 0);

    char in[11];
    assert_int_equal(wt_recv_exact(f.fd, in, 11, WT_TIMEOUT_MS), 0);
    assert_memory_equal(in, "woken\nfirst", 11);
    assert_int_equal(wt_recv_eof(f.fd, WT_TIMEOUT_MS), 0); /* nothing after the close */
    assert_true(wt_wait_count(&zc_total_frees, 1, WT_TIMEOUT_MS));
    assert_true(wt_wait_count(&wt_counts.closed, 1, WT_TIMEOUT_MS));
    assert_int_equal(atomic_load(&wt_counts.last_err), 0);
    fixture_stop(&f); /* no free can come after this */
    assert_int_equal(atomic_load(&zc_frees[0]), 1);
}

/* ---- refs to connections that are gone ---- */

static void test_refs_to_a_closed_connection_are_stale(void **state)
{
    (void)state;
    fixture f;
    fixture_start(&f);
    reset_zc();
    wt_close(f.fd);
    f.fd = -1;
    assert_true(wt_wait_count(&wt_counts.closed, 1, WT_TIMEOUT_MS));
    uint8_t *b = malloc(10);
    assert_non_null(b);

    assert_int_equal(weft_async_write(f.s.engine, f.ref, "late", 4), WEFT_ESTALE);
    struct iovec iov = {"late", 4};
    assert_int_equal(weft_async_writev(f.s.engine, f.ref, &iov, 1), WEFT_ESTALE);
    assert_int_equal(weft_async_write_zc(f.s.engine, f.ref, b, 10, zc_free, (void *)0),
                     WEFT_ESTALE);
    assert_int_equal(weft_async_close(f.s.engine, f.ref), WEFT_ESTALE);
    assert_int_equal(weft_async_wake(f.s.engine, f.ref), WEFT_ESTALE);

    /* A failed call never runs its callback: the buffer is still ours (checked once the
     * engine has stopped, when no free can come any more). */

    /* Refs that never named anything are stale too. */
    weft_conn_ref forged = f.ref;
    forged.gen = 0;
    assert_int_equal(weft_async_write(f.s.engine, forged, "x", 1), WEFT_ESTALE);
    forged = f.ref;
    forged.loop = 99;
    assert_int_equal(weft_async_wake(f.s.engine, forged), WEFT_ESTALE);
    forged = f.ref;
    forged.slot = 1u << 30;
    assert_int_equal(weft_async_close(f.s.engine, forged), WEFT_ESTALE);

    /* A new connection may reuse the slot; the old ref still must not reach it. */
    int fd2 = wt_connect_tcp(f.s.port);
    assert_true(fd2 >= 0);
    assert_true(wt_wait_count(&wt_counts.opened, 2, WT_TIMEOUT_MS));
    assert_int_equal(weft_async_write(f.s.engine, f.ref, "late", 4), WEFT_ESTALE);
    char in[3];
    assert_int_equal(wt_exchange(fd2, "abc", 3, in, 3, WT_TIMEOUT_MS), 0);
    assert_memory_equal(in, "abc", 3); /* and nothing of "late" arrived before it */
    wt_close(fd2);
    fixture_stop(&f);
    assert_int_equal(atomic_load(&zc_total_frees), 0);
    free(b);
}

static void test_async_calls_after_stop_are_refused(void **state)
{
    (void)state;
    fixture f;
    fixture_start(&f);

    weft_engine_stop(f.s.engine);

    assert_int_equal(weft_async_write(f.s.engine, f.ref, "x", 1), WEFT_ESHUTDOWN);
    assert_int_equal(weft_async_wake(f.s.engine, f.ref), WEFT_ESHUTDOWN);
    weft_engine_wait(f.s.engine);
    f.s.engine = NULL;
    assert_int_equal(atomic_load(&wt_counts.closed), 1);
    assert_int_equal(atomic_load(&wt_counts.last_err), WEFT_ESHUTDOWN);
    fixture_stop(&f);
}

/* ---- close and wake ---- */

static void test_async_close_sends_what_is_queued_then_closes(void **state)
{
    (void)state;
    fixture f;
    fixture_start(&f);
    uint8_t big[100000];
    wt_fill(big, sizeof(big), 12);

    assert_int_equal(weft_async_write(f.s.engine, f.ref, big, sizeof(big)), 0);
    assert_int_equal(weft_async_close(f.s.engine, f.ref), 0);

    uint8_t *in = malloc(sizeof(big));
    assert_non_null(in);
    assert_int_equal(wt_recv_exact(f.fd, in, sizeof(big), WT_TIMEOUT_MS), 0);
    assert_memory_equal(in, big, sizeof(big));
    assert_int_equal(wt_recv_eof(f.fd, WT_TIMEOUT_MS), 0);
    assert_true(wt_wait_count(&wt_counts.closed, 1, WT_TIMEOUT_MS));
    assert_int_equal(atomic_load(&wt_counts.last_err), 0);
    free(in);
    fixture_stop(&f);
}

static void test_async_wake_runs_on_traffic(void **state)
{
    (void)state;
    fixture f;
    fixture_start(&f);

    assert_int_equal(weft_async_wake(f.s.engine, f.ref), 0);

    char in[6];
    assert_int_equal(wt_recv_exact(f.fd, in, 6, WT_TIMEOUT_MS), 0);
    assert_memory_equal(in, "woken\n", 6);
    assert_int_equal(atomic_load(&wakes), 1);
    /* Bytes still echo as before: a wake changes nothing else. */
    assert_int_equal(wt_exchange(f.fd, "ping", 4, in, 4, WT_TIMEOUT_MS), 0);
    assert_memory_equal(in, "ping", 4);
    assert_int_equal(atomic_load(&wakes), 1);
    fixture_stop(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_async_writes_from_threads_arrive_in_order),
        cmocka_unit_test(test_async_write_zc_frees_each_buffer_once),
        cmocka_unit_test(test_async_write_zc_behind_a_close_is_freed_not_sent),
        cmocka_unit_test(test_refs_to_a_closed_connection_are_stale),
        cmocka_unit_test(test_async_calls_after_stop_are_refused),
        cmocka_unit_test(test_async_close_sends_what_is_queued_then_closes),
        cmocka_unit_test(test_async_wake_runs_on_traffic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
