/* The hooks a protocol server shapes its connections with: on_decode_error (answer a bad
 * request, then go on or close), on_idle (a goodbye, or more time), weft_conn_set_timeouts
 * (a connection's own timeouts), and running until SIGINT/SIGTERM. */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "stop_signal.h"

static _Atomic long closes;
static _Atomic int close_err;
static _Atomic long decode_errors;
static _Atomic int decode_err;
static _Atomic int sticky; /* a good frame still saw the old decode error */
static _Atomic long idles;
static weft_action decode_answer;

static void reset(void)
{
    atomic_store(&closes, 0);
    atomic_store(&close_err, 0);
    atomic_store(&decode_errors, 0);
    atomic_store(&decode_err, 0);
    atomic_store(&sticky, 0);
    atomic_store(&idles, 0);
}

static void on_close(weft_conn *c, int err)
{
    (void)c;
    atomic_store(&close_err, err);
    atomic_fetch_add(&closes, 1);
}

static weft_action line_echo(weft_conn *c)
{
    const uint8_t *f;
    size_t n;
    while (weft_conn_next_frame(c, &f, &n) == WEFT_FRAME) {
        if (weft_conn_get_decode_error(c) != NULL)
            atomic_store(&sticky, 1);
        (void)weft_conn_write(c, f, n);
        (void)weft_conn_write(c, "\n", 1);
    }
    return WEFT_ACTION_NONE;
}

static weft_action answer_decode_error(weft_conn *c, int err, const char *reason)
{
    atomic_store(&decode_err, err);
    atomic_fetch_add(&decode_errors, 1);
    if (reason != NULL)
        (void)weft_conn_write(c, "ERR line too long\n", 18);
    return decode_answer;
}

static void line_server(wt_server *s, weft_action answer)
{
    reset();
    decode_answer = answer;
    weft_config cfg;
    wt_config(&cfg, line_echo, 1);
    cfg.codec.kind = WEFT_CODEC_LINE;
    cfg.codec.line.max_length = 8;
    cfg.handler.on_decode_error = answer_decode_error;
    cfg.handler.on_close = on_close;
    assert_int_equal(wt_server_start(s, &cfg), 0);
}

static void test_decode_error_answered_then_go_on(void **state)
{
    (void)state;
    wt_server s;
    line_server(&s, WEFT_ACTION_NONE);
    int fd = wt_connect_tcp(s.port);
    assert_true(fd >= 0);
    const char *in = "0123456789ABCDEF\nok\n";
    const char *want = "ERR line too long\nok\n";
    char got[64];
    assert_int_equal(wt_exchange(fd, in, strlen(in), got, strlen(want), WT_TIMEOUT_MS), 0);
    assert_memory_equal(got, want, strlen(want));
    assert_int_equal(atomic_load(&decode_errors), 1);
    assert_int_equal(atomic_load(&decode_err), WEFT_ETOOLONG);
    assert_int_equal(atomic_load(&sticky), 0); /* the good frame after it is clean */
    assert_int_equal(atomic_load(&closes), 0);
    wt_close(fd);
    wt_server_stop(&s);
}

static void test_decode_error_answered_then_closed(void **state)
{
    (void)state;
    wt_server s;
    line_server(&s, WEFT_ACTION_CLOSE);
    int fd = wt_connect_tcp(s.port);
    assert_true(fd >= 0);
    const char *in = "0123456789ABCDEF\nok\n";
    const char *want = "ERR line too long\n";
    char got[64];
    assert_int_equal(wt_exchange(fd, in, strlen(in), got, strlen(want), WT_TIMEOUT_MS), 0);
    assert_memory_equal(got, want, strlen(want));
    assert_int_equal(wt_recv_eof(fd, WT_TIMEOUT_MS), 0); /* the reply went first */
    assert_true(wt_wait_count(&closes, 1, WT_TIMEOUT_MS));
    assert_int_equal(atomic_load(&close_err), WEFT_ETOOLONG);
    wt_close(fd);
    wt_server_stop(&s);
}

#define IDLE_MS 300

static weft_action first_more_time_then_goodbye(weft_conn *c)
{
    if (atomic_fetch_add(&idles, 1) == 0)
        return WEFT_ACTION_NONE;
    (void)weft_conn_write(c, "bye\n", 4);
    return WEFT_ACTION_CLOSE;
}

static weft_action never_idle_if_first(weft_conn *c)
{
    /* The first connection waits on something of its own: no idle timeout for it. */
    static _Atomic int first = 1;
    if (atomic_exchange(&first, 0) && weft_conn_set_timeouts(c, 0, WEFT_TIMEOUT_DEFAULT) != 0)
        return WEFT_ACTION_CLOSE; /* the test sees it closed early */
    return WEFT_ACTION_NONE;
}

static void test_idle_goodbye_after_more_time(void **state)
{
    (void)state;
    reset();
    weft_config cfg;
    wt_config(&cfg, line_echo, 1);
    cfg.idle_timeout_ms = IDLE_MS;
    cfg.handler.on_idle = first_more_time_then_goodbye;
    cfg.handler.on_close = on_close;
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), 0);
    int fd = wt_connect_tcp(s.port);
    assert_true(fd >= 0);
    int64_t t0 = wt_now_ms();
    char got[4];
    assert_int_equal(wt_recv_exact(fd, got, 4, WT_TIMEOUT_MS), 0);
    assert_memory_equal(got, "bye\n", 4);
    assert_int_equal(wt_recv_eof(fd, WT_TIMEOUT_MS), 0);
    assert_true(wt_wait_count(&closes, 1, WT_TIMEOUT_MS));
    assert_int_equal(atomic_load(&close_err), WEFT_EIDLE);
    assert_int_equal(atomic_load(&idles), 2);
    assert_true(wt_now_ms() - t0 >= 2 * IDLE_MS); /* the first on_idle bought it time */
    wt_close(fd);
    wt_server_stop(&s);
}

static void test_set_timeouts_per_connection(void **state)
{
    (void)state;
    reset();
    weft_config cfg;
    wt_config(&cfg, line_echo, 1);
    cfg.codec.kind = WEFT_CODEC_LINE;
    cfg.idle_timeout_ms = IDLE_MS;
    cfg.handler.on_open = never_idle_if_first;
    cfg.handler.on_close = on_close;
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), 0);
    int keep = wt_connect_tcp(s.port);
    assert_true(keep >= 0);
    char c[2];
    assert_int_equal(wt_exchange(keep, "a\n", 2, c, 2, WT_TIMEOUT_MS), 0); /* opened first */
    int other = wt_connect_tcp(s.port);
    assert_true(other >= 0);
    /* The default one goes idle and is closed; the one with its own timeouts stays. */
    assert_int_equal(wt_recv_eof(other, WT_TIMEOUT_MS), 0);
    assert_true(wt_wait_count(&closes, 1, WT_TIMEOUT_MS));
    assert_int_equal(atomic_load(&close_err), WEFT_EIDLE);
    wt_sleep_ms(2 * IDLE_MS);
    assert_int_equal(atomic_load(&closes), 1);
    assert_int_equal(wt_exchange(keep, "b\n", 2, c, 2, WT_TIMEOUT_MS), 0);
    assert_int_equal(c[0], 'b');
    wt_close(keep);
    wt_close(other);
    wt_server_stop(&s);
}

static _Atomic bool signal_sent;

/* Sends the stop signal to this process after 100 ms; if it cannot, stops the engine (arg)
 * instead, so that the wait ends and the test fails rather than hangs. */
static void *send_sigterm(void *arg)
{
    wt_sleep_ms(100);
    atomic_store(&signal_sent, wt_stop_signal_send() == 0);
    if (!atomic_load(&signal_sent))
        weft_engine_stop(arg);
    return NULL;
}

static _Atomic long ticks;

static weft_action stop_on_third_tick(weft_engine *e, unsigned loop)
{
    (void)e;
    (void)loop;
    return atomic_fetch_add(&ticks, 1) == 2 ? WEFT_ACTION_SHUTDOWN : WEFT_ACTION_NONE;
}

static void test_wait_signals(void **state)
{
    (void)state;
    /* Blocked in this thread before any other starts, so the signal can only be taken by
     * weft_engine_wait_signals (engine threads block every signal). */
    wt_stop_signal_block();
    weft_config cfg;
    wt_config(&cfg, line_echo, 2);
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, send_sigterm, s.engine), 0);
    int sig = weft_engine_wait_signals(s.engine);
    pthread_join(th, NULL);
    if (!atomic_load(&signal_sent)) {
        wt_stop_signal_unblock();
        print_message("SKIPPED: this process could not send itself the stop signal\n");
        skip();
    }
    assert_int_equal(sig, SIGTERM);

    /* An engine that stops by itself ends the wait with 0. */
    atomic_store(&ticks, 0);
    wt_config(&cfg, line_echo, 1);
    cfg.tick_ms = 10;
    cfg.handler.on_tick = stop_on_third_tick;
    assert_int_equal(wt_server_start(&s, &cfg), 0);
    assert_int_equal(weft_engine_wait_signals(s.engine), 0);
    assert_true(atomic_load(&ticks) >= 3);
    wt_stop_signal_unblock();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_error_answered_then_go_on),
        cmocka_unit_test(test_decode_error_answered_then_closed),
        cmocka_unit_test(test_idle_goodbye_after_more_time),
        cmocka_unit_test(test_set_timeouts_per_connection),
        cmocka_unit_test(test_wait_signals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
