/* Running code on a connection's loop from any thread: weft_async_call, weft_loop_call,
 * weft_async_abort, weft_async_get_pending_out and weft_conn_ref_equal. A call runs exactly
 * once, on the right thread, in order with the async writes around it; a call that fails
 * never runs, and one whose connection went first runs with conn NULL to release its arg. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

static _Atomic long opened;
static _Atomic long closes;
static _Atomic int close_err;
static weft_conn_ref the_ref;
static pthread_t loop_thread;

static weft_action on_open(weft_conn *c)
{
    the_ref = weft_conn_get_ref(c);
    loop_thread = pthread_self();
    atomic_fetch_add(&opened, 1);
    return WEFT_ACTION_NONE;
}

static void on_close(weft_conn *c, int err)
{
    (void)c;
    atomic_store(&close_err, err);
    atomic_fetch_add(&closes, 1);
}

static weft_action quiet_traffic(weft_conn *c)
{
    (void)weft_conn_discard(c, weft_conn_get_buffered(c));
    return WEFT_ACTION_NONE;
}

static void start(wt_server *s, unsigned loops, weft_action (*traffic)(weft_conn *))
{
    atomic_store(&opened, 0);
    atomic_store(&closes, 0);
    atomic_store(&close_err, 0);
    weft_config cfg;
    wt_config(&cfg, traffic, loops);
    cfg.handler.on_open = on_open;
    cfg.handler.on_close = on_close;
    assert_int_equal(wt_server_start(s, &cfg), 0);
}

typedef struct call_rec {
    _Atomic long runs;
    _Atomic long null_runs;
    _Atomic int on_loop; /* ran on the connection's loop thread */
} call_rec;

static void write_b(weft_conn *c, void *arg)
{
    call_rec *r = arg;
    if (c == NULL) {
        atomic_fetch_add(&r->null_runs, 1);
        return;
    }
    atomic_store(&r->on_loop, pthread_equal(pthread_self(), loop_thread) ? 1 : 0);
    (void)weft_conn_write(c, "b", 1);
    atomic_fetch_add(&r->runs, 1);
}

static void test_call_runs_on_its_loop_in_order_with_writes(void **state)
{
    (void)state;
    wt_server s;
    start(&s, 2, quiet_traffic);
    int fd = wt_connect_tcp(s.port);
    assert_true(fd >= 0);
    assert_true(wt_wait_count(&opened, 1, WT_TIMEOUT_MS));
    call_rec r = {0};
    /* From the test's own thread: a write, a call that writes, a write. */
    for (int i = 0; i < 100; i++) {
        assert_int_equal(weft_async_write(s.engine, the_ref, "a", 1), 0);
        assert_int_equal(weft_async_call(s.engine, the_ref, write_b, &r), 0);
        assert_int_equal(weft_async_write(s.engine, the_ref, "c", 1), 0);
    }
    char got[300];
    assert_int_equal(wt_recv_exact(fd, got, sizeof(got), WT_TIMEOUT_MS), 0);
    for (int i = 0; i < 100; i++)
        assert_memory_equal(got + 3 * i, "abc", 3);
    assert_int_equal(atomic_load(&r.runs), 100);
    assert_int_equal(atomic_load(&r.null_runs), 0);
    assert_int_equal(atomic_load(&r.on_loop), 1);

    /* Bad calls fail at once and never run. */
    assert_int_equal(weft_async_call(s.engine, the_ref, NULL, &r), WEFT_EINVAL);
    weft_conn_ref stale = the_ref;
    stale.gen += 2;
    assert_int_equal(weft_async_call(s.engine, stale, write_b, &r), WEFT_ESTALE);
    assert_false(weft_conn_ref_equal(stale, the_ref));
    assert_true(weft_conn_ref_equal(the_ref, the_ref));
    wt_close(fd);
    assert_true(wt_wait_count(&closes, 1, WT_TIMEOUT_MS));
    assert_int_equal(weft_async_call(s.engine, the_ref, write_b, &r), WEFT_ESTALE);
    wt_server_stop(&s);
    assert_int_equal(atomic_load(&r.runs), 100);
    assert_int_equal(atomic_load(&r.null_runs), 0);
}

/* A call accepted while its connection was open, which closes before the loop runs it. */
static call_rec late;

static weft_action call_then_abort(weft_conn *c)
{
    (void)weft_conn_discard(c, weft_conn_get_buffered(c));
    if (weft_async_call(weft_conn_get_engine(c), weft_conn_get_ref(c), write_b, &late) == 0)
        (void)weft_conn_abort(c); /* closes at the end of this iteration, before the call */
    return WEFT_ACTION_NONE;
}

static void test_call_to_a_connection_gone_first_runs_with_null(void **state)
{
    (void)state;
    memset(&late, 0, sizeof(late));
    wt_server s;
    start(&s, 1, call_then_abort);
    int fd = wt_connect_tcp(s.port);
    assert_true(fd >= 0);
    assert_int_equal(wt_send_all(fd, "x", 1, WT_TIMEOUT_MS), 0);
    assert_true(wt_wait_count(&closes, 1, WT_TIMEOUT_MS));
    assert_true(wt_wait_count(&late.null_runs, 1, WT_TIMEOUT_MS));
    assert_int_equal(atomic_load(&late.runs), 0);
    assert_int_equal(atomic_load(&close_err), WEFT_ECANCELED);
    wt_close(fd);
    wt_server_stop(&s);
    assert_int_equal(atomic_load(&late.null_runs), 1);
}

typedef struct loop_rec {
    _Atomic long runs;
    _Atomic long stopped_runs;
    _Atomic unsigned loop;
} loop_rec;

static void note_loop(weft_engine *e, unsigned loop, void *arg, int status)
{
    (void)e;
    loop_rec *r = arg;
    atomic_store(&r->loop, loop);
    atomic_fetch_add(status == 0 ? &r->runs : &r->stopped_runs, 1);
}

static void test_loop_call_runs_exactly_once(void **state)
{
    (void)state;
    wt_server s;
    start(&s, 3, quiet_traffic);
    loop_rec r = {0};
    assert_int_equal(weft_loop_call(s.engine, 2, note_loop, &r), 0);
    assert_true(wt_wait_count(&r.runs, 1, WT_TIMEOUT_MS));
    assert_int_equal(atomic_load(&r.loop), 2);
    assert_int_equal(weft_loop_call(s.engine, 3, note_loop, &r), WEFT_EINVAL);
    assert_int_equal(weft_loop_call(s.engine, 0, NULL, &r), WEFT_EINVAL);
    /* Right before a stop: it runs on its loop or, if the loop stopped first, in
     * weft_engine_wait with WEFT_ESHUTDOWN; either way exactly once. */
    loop_rec last = {0};
    assert_int_equal(weft_loop_call(s.engine, 1, note_loop, &last), 0);
    wt_server_stop(&s);
    assert_int_equal(atomic_load(&last.runs) + atomic_load(&last.stopped_runs), 1);
}

/* The documented order between the two ways to write: a weft_conn_write goes out in its
 * own order, so from a callback on the same loop it overtakes an async write still in the
 * loop's queue; async writes and calls keep their order among themselves. */
static weft_action async_then_direct(weft_conn *c)
{
    (void)weft_conn_discard(c, weft_conn_get_buffered(c));
    weft_engine *e = weft_conn_get_engine(c);
    (void)weft_async_write(e, weft_conn_get_ref(c), "1", 1);
    (void)weft_conn_write(c, "2", 1);
    (void)weft_async_write(e, weft_conn_get_ref(c), "3", 1);
    return WEFT_ACTION_NONE;
}

static void test_direct_write_overtakes_queued_async_write(void **state)
{
    (void)state;
    wt_server s;
    start(&s, 1, async_then_direct);
    int fd = wt_connect_tcp(s.port);
    assert_true(fd >= 0);
    char got[3];
    assert_int_equal(wt_exchange(fd, "x", 1, got, 3, WT_TIMEOUT_MS), 0);
    assert_memory_equal(got, "213", 3);
    wt_close(fd);
    wt_server_stop(&s);
}

static void test_abort_and_pending_out(void **state)
{
    (void)state;
    wt_server s;
    start(&s, 1, quiet_traffic);
    int fd = wt_connect_tcp(s.port);
    assert_true(fd >= 0);
    assert_true(wt_wait_count(&opened, 1, WT_TIMEOUT_MS));
    size_t pending = 1;
    assert_int_equal(weft_async_get_pending_out(s.engine, the_ref, &pending), 0);
    assert_int_equal(pending, 0);
    assert_int_equal(weft_async_abort(s.engine, the_ref), 0);
    assert_true(wt_wait_count(&closes, 1, WT_TIMEOUT_MS));
    assert_int_equal(atomic_load(&close_err), WEFT_ECANCELED);
    assert_int_equal(weft_async_get_pending_out(s.engine, the_ref, &pending), WEFT_ESTALE);
    assert_int_equal(weft_async_abort(s.engine, the_ref), WEFT_ESTALE);
    wt_close(fd);
    wt_server_stop(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_call_runs_on_its_loop_in_order_with_writes),
        cmocka_unit_test(test_call_to_a_connection_gone_first_runs_with_null),
        cmocka_unit_test(test_loop_call_runs_exactly_once),
        cmocka_unit_test(test_direct_write_overtakes_queued_async_write),
        cmocka_unit_test(test_abort_and_pending_out),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
