/* The names kept for one release after the getters' rename (weft/deprecated.h): each one
 * still compiles, and gives what its new name gives. The connection getters are compared
 * on a live connection, in its callbacks on its loop's thread; the engine's on a running
 * engine; the balancer's on each built-in balancer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "counters.h"
#include "harness.h"

/* Calling the deprecated names is what this file is for. */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

/* ---- connection getters, compared on the loop thread ---- */

static _Atomic long compared;    /* pairs of old and new compared */
static _Atomic long differed;    /* ... that did not give the same */
static _Atomic long saw_buffer;  /* weft_conn_buffered was compared with bytes buffered */
static _Atomic long saw_error;   /* weft_conn_decode_error was compared with an error set */
static _Atomic long saw_context; /* weft_conn_context gave the context on_open set */
static int context_marker;

static void same(bool equal)
{
    atomic_fetch_add(&compared, 1);
    if (!equal)
        atomic_fetch_add(&differed, 1);
}

static bool same_addr(int rc_old, const struct sockaddr_storage *old, socklen_t old_len, int rc_new,
                      const struct sockaddr_storage *new, socklen_t new_len)
{
    return rc_old == 0 && rc_new == 0 && old_len == new_len && memcmp(old, new, old_len) == 0;
}

static void compare_conn_getters(weft_conn *c)
{
    same(weft_conn_context(c) == weft_conn_get_context(c));
    same(weft_conn_engine(c) == weft_conn_get_engine(c));
    same(weft_conn_loop(c) == weft_conn_get_loop(c));
    same(weft_conn_fd(c) == weft_conn_get_fd(c) && weft_conn_fd(c) >= 0);
    same(weft_conn_buffered(c) == weft_conn_get_buffered(c));
    same(weft_conn_pending_out(c) == weft_conn_get_pending_out(c));
    same(weft_conn_decode_error(c) == weft_conn_get_decode_error(c));

    struct sockaddr_storage a, b;
    socklen_t alen = sizeof(a), blen = sizeof(b);
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    int ra = weft_conn_local_addr(c, &a, &alen);
    int rb = weft_conn_get_local_addr(c, &b, &blen);
    same(same_addr(ra, &a, alen, rb, &b, blen));

    alen = sizeof(a);
    blen = sizeof(b);
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    ra = weft_conn_peer_addr(c, &a, &alen);
    rb = weft_conn_get_peer_addr(c, &b, &blen);
    same(same_addr(ra, &a, alen, rb, &b, blen));
}

static weft_action open_and_compare(weft_conn *c)
{
    weft_conn_set_context(c, &context_marker);
    if (weft_conn_context(c) == &context_marker)
        atomic_fetch_add(&saw_context, 1);
    compare_conn_getters(c);
    return wt_count_open(c);
}

/* Echoes lines; compares the getters with the bytes still buffered, and again after the
 * frames were taken (or a decode error was met). */
static weft_action echo_and_compare(weft_conn *c)
{
    if (weft_conn_buffered(c) > 0)
        atomic_fetch_add(&saw_buffer, 1);
    compare_conn_getters(c);
    const uint8_t *f;
    size_t len;
    int rc;
    while ((rc = weft_conn_next_frame(c, &f, &len)) == 1) {
        if (weft_conn_write_frame(c, f, len) != 0)
            return WEFT_ACTION_CLOSE;
    }
    if (rc < 0 && weft_conn_decode_error(c) != NULL)
        atomic_fetch_add(&saw_error, 1);
    compare_conn_getters(c);
    return WEFT_ACTION_NONE;
}

static void reset_state(void)
{
    wt_counters_reset();
    atomic_store(&compared, 0);
    atomic_store(&differed, 0);
    atomic_store(&saw_buffer, 0);
    atomic_store(&saw_error, 0);
    atomic_store(&saw_context, 0);
}

static void test_conn_getters_forward(void **state)
{
    (void)state;
    reset_state();
    weft_config cfg;
    wt_config(&cfg, echo_and_compare, 1);
    cfg.handler.on_open = open_and_compare;
    cfg.handler.on_close = wt_count_close;
    cfg.codec.kind = WEFT_CODEC_LINE;
    cfg.codec.line.max_length = 16;
    cfg.codec.line.close_on_error = true;
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), 0);
    int fd = wt_connect_tcp(s.port);
    assert_true(fd >= 0);

    char in[6];
    assert_int_equal(wt_exchange(fd, "hello\n", 6, in, 6, WT_TIMEOUT_MS), 0);
    assert_memory_equal(in, "hello\n", 6);
    /* A line past max_length: a decode error, and the connection closes. */
    static const char too_long[] = "this line is longer than sixteen bytes\n";
    assert_int_equal(wt_send_all(fd, too_long, sizeof(too_long) - 1, WT_TIMEOUT_MS), 0);
    int rc = wt_recv_eof(fd, WT_TIMEOUT_MS);
    assert_true(rc == 0 || rc == -ECONNRESET);
    assert_true(wt_wait_count(&wt_counts.closed, 1, WT_TIMEOUT_MS));
    assert_int_equal(wt_closed_with(WEFT_ETOOLONG), 1);

    assert_int_equal(atomic_load(&saw_context), 1);
    assert_true(atomic_load(&saw_buffer) >= 2);
    assert_int_equal(atomic_load(&saw_error), 1);
    assert_true(atomic_load(&compared) >= 5 * 9);
    assert_int_equal(atomic_load(&differed), 0);
    wt_close(fd);
    wt_server_stop(&s);
}

/* ---- engine getters ---- */

static int user_data_marker;

static void compare_listeners(weft_engine *e)
{
    for (size_t i = 0; i < 2; i++) { /* listener 0, and one that does not exist */
        char a[200], b[200];
        int ra = weft_engine_listen_addr(e, i, a, sizeof(a));
        int rb = weft_engine_get_listen_addr(e, i, b, sizeof(b));
        assert_int_equal(ra, rb);
        if (ra >= 0)
            assert_string_equal(a, b);
        assert_int_equal(weft_engine_listen_port(e, i), weft_engine_get_listen_port(e, i));
    }
}

static void test_engine_getters_forward(void **state)
{
    (void)state;
    weft_config cfg;
    wt_config(&cfg, wt_echo_on_traffic, 2);
    cfg.user_data = &user_data_marker;
    cfg.workers = 1;
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), 0);
    assert_ptr_equal(weft_engine_user_data(s.engine), &user_data_marker);
    assert_ptr_equal(weft_engine_user_data(s.engine), weft_engine_get_user_data(s.engine));
    assert_int_equal(weft_engine_loop_count(s.engine), 2);
    assert_int_equal(weft_engine_loop_count(s.engine), weft_engine_get_loop_count(s.engine));
    assert_non_null(weft_engine_pool(s.engine));
    assert_ptr_equal(weft_engine_pool(s.engine), weft_engine_get_pool(s.engine));
    assert_true(weft_engine_listen_port(s.engine, 0) > 0);
    compare_listeners(s.engine);
    wt_server_stop(&s);

    /* A client-only engine without a pool: NULL and WEFT_EINVAL alike. */
    wt_config(&cfg, wt_echo_on_traffic, 1);
    weft_engine *e;
    assert_int_equal(weft_engine_start(&cfg, &e), 0);
    assert_null(weft_engine_pool(e));
    assert_ptr_equal(weft_engine_pool(e), weft_engine_get_pool(e));
    assert_ptr_equal(weft_engine_user_data(e), weft_engine_get_user_data(e));
    assert_int_equal(weft_engine_listen_port(e, 0), WEFT_EINVAL);
    compare_listeners(e);
    weft_engine_stop(e);
    weft_engine_wait(e);
}

/* ---- balancer name ---- */

static void test_balancer_name_forwards(void **state)
{
    (void)state;
    static const weft_lb_kind kinds[] = {WEFT_LB_ROUND_ROBIN, WEFT_LB_LEAST_CONNECTIONS,
                                         WEFT_LB_CONSISTENT_HASH, WEFT_LB_RANDOM};
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        weft_lb_config lc;
        weft_lb_config_init(&lc);
        lc.kind = kinds[i];
        weft_balancer *b;
        assert_int_equal(weft_balancer_create(&lc, 4, &b), 0);
        assert_non_null(weft_balancer_name(b));
        assert_ptr_equal(weft_balancer_name(b), weft_balancer_get_name(b));
        weft_balancer_destroy(b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conn_getters_forward),
        cmocka_unit_test(test_engine_getters_forward),
        cmocka_unit_test(test_balancer_name_forwards),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
