/* User timers on a connection: weft_conn_after fires once on the loop, can write, can be
 * cancelled, and never runs once its connection closed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "counters.h"
#include "harness.h"

static _Atomic long fired;
static _Atomic long cancel_rc = 1;

/* "T<ms>": answer "tick" after ms; "C<ms>": arm then cancel; "X<ms>": arm and close now. */
static void say_tick(weft_conn *c, void *arg)
{
    (void)arg;
    atomic_fetch_add(&fired, 1);
    weft_conn_write(c, "tick", 4);
}

static weft_action on_traffic(weft_conn *c)
{
    const uint8_t *p;
    int n = weft_conn_peek(c, 0, &p);
    if (n < 2)
        return WEFT_ACTION_NONE;
    char cmd = (char)p[0];
    unsigned ms = (unsigned)(p[1] - '0') * 100u;
    weft_conn_discard(c, (size_t)n);
    uint64_t id = 0;
    if (weft_conn_after(c, ms, say_tick, NULL, &id) != 0)
        return WEFT_ACTION_CLOSE;
    if (cmd == 'C') {
        atomic_store(&cancel_rc, weft_conn_cancel_timer(c, id));
        weft_conn_write(c, "cancelled", 9);
    } else if (cmd == 'X') {
        return WEFT_ACTION_CLOSE;
    }
    return WEFT_ACTION_NONE;
}

static void start(wt_server *s)
{
    weft_config cfg;
    wt_config(&cfg, on_traffic, 1);
    cfg.handler.on_open = wt_count_open;
    cfg.handler.on_close = wt_count_close;
    wt_counters_reset();
    atomic_store(&fired, 0);
    atomic_store(&cancel_rc, 1);
    assert_int_equal(wt_server_start(s, &cfg), 0);
}

static void test_timer_fires_once_and_writes(void **state)
{
    (void)state;
    wt_server s;
    start(&s);
    int fd = wt_connect_tcp(s.port);
    assert_true(fd >= 0);
    int64_t t0 = wt_now_ms();
    assert_int_equal(wt_send_all(fd, "T2", 2, WT_TIMEOUT_MS), 0);
    char buf[4];
    assert_int_equal(wt_recv_exact(fd, buf, 4, WT_TIMEOUT_MS), 0);
    assert_memory_equal(buf, "tick", 4);
    /* Not before its time (the loop clock is coarse: allow a few ms). */
    assert_true(wt_now_ms() - t0 >= 190);
    wt_sleep_ms(300);
    assert_int_equal(atomic_load(&fired), 1);
    wt_close(fd);
    wt_server_stop(&s);
}

static void test_cancelled_timer_never_runs(void **state)
{
    (void)state;
    wt_server s;
    start(&s);
    int fd = wt_connect_tcp(s.port);
    assert_true(fd >= 0);
    assert_int_equal(wt_send_all(fd, "C1", 2, WT_TIMEOUT_MS), 0);
    char buf[9];
    assert_int_equal(wt_recv_exact(fd, buf, 9, WT_TIMEOUT_MS), 0);
    assert_memory_equal(buf, "cancelled", 9);
    assert_int_equal(atomic_load(&cancel_rc), 0);
    wt_sleep_ms(300);
    assert_int_equal(atomic_load(&fired), 0);
    wt_close(fd);
    wt_server_stop(&s);
}

static void test_timer_dies_with_its_connection(void **state)
{
    (void)state;
    wt_server s;
    start(&s);
    int fd = wt_connect_tcp(s.port);
    assert_true(fd >= 0);
    assert_int_equal(wt_send_all(fd, "X1", 2, WT_TIMEOUT_MS), 0);
    assert_int_equal(wt_recv_eof(fd, WT_TIMEOUT_MS), 0);
    assert_true(wt_wait_count(&wt_counts.closed, 1, WT_TIMEOUT_MS));
    /* A new connection may take the same slot: the old timer must not fire on it. */
    int fd2 = wt_connect_tcp(s.port);
    assert_true(fd2 >= 0);
    assert_true(wt_wait_count(&wt_counts.opened, 2, WT_TIMEOUT_MS));
    wt_sleep_ms(300);
    assert_int_equal(atomic_load(&fired), 0);
    wt_close(fd);
    wt_close(fd2);
    wt_server_stop(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timer_fires_once_and_writes),
        cmocka_unit_test(test_cancelled_timer_never_runs),
        cmocka_unit_test(test_timer_dies_with_its_connection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
