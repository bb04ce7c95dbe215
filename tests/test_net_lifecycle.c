/* An engine's life: what it listens on and reports, what it refuses to start with, how a
 * half-closed peer is answered, and how a stop with busy connections ends (every on_close,
 * then on_shutdown once). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "counters.h"
#include "harness.h"

static _Atomic long booted;
static _Atomic long shutdowns;
static _Atomic long closed_at_shutdown;

/* The shared counts (wt_counts) and this file's own. */
static void reset_state(void)
{
    wt_counters_reset();
    atomic_store(&booted, 0);
    atomic_store(&shutdowns, 0);
    atomic_store(&closed_at_shutdown, -1);
}

/* Closes by error: orderly, for the shutdown, out of stop_timeout_ms, or anything else. */
static long closed_ok(void)
{
    return wt_closed_with(0);
}

static long closed_shutdown(void)
{
    return wt_closed_with(WEFT_ESHUTDOWN);
}

static long closed_timeout(void)
{
    return wt_closed_with(WEFT_ETIMEDOUT);
}

static long closed_other(void)
{
    return atomic_load(&wt_counts.closed) - closed_ok() - closed_shutdown() - closed_timeout();
}

static weft_action count_boot(weft_engine *e)
{
    (void)e;
    atomic_fetch_add(&booted, 1);
    return WEFT_ACTION_NONE;
}

static void count_shutdown(weft_engine *e)
{
    (void)e;
    atomic_store(&closed_at_shutdown, atomic_load(&wt_counts.closed));
    atomic_fetch_add(&shutdowns, 1);
}

static void lifecycle_config(weft_config *cfg, unsigned loops)
{
    reset_state();
    wt_config(cfg, wt_echo_on_traffic, loops);
    cfg->handler.on_boot = count_boot;
    cfg->handler.on_open = wt_count_open;
    cfg->handler.on_close = wt_count_close;
    cfg->handler.on_shutdown = count_shutdown;
}

static void assert_echoes(int fd, size_t n, uint32_t seed)
{
    uint8_t *out = malloc(n), *in = malloc(n);
    assert_non_null(out);
    assert_non_null(in);
    wt_fill(out, n, seed);
    assert_int_equal(wt_exchange(fd, out, n, in, n, WT_TIMEOUT_MS), 0);
    assert_memory_equal(in, out, n);
    free(out);
    free(in);
}

/* ---- starting: what is refused ---- */

static void test_bad_urls_are_rejected_before_any_callback(void **state)
{
    (void)state;
    char long_unix[200];
    snprintf(long_unix, sizeof(long_unix), "unix:///tmp/%0150d.sock", 0);
    const char *bad[] = {
        "http://127.0.0.1:80",
        "tcp://127.0.0.1",
        "tcp://127.0.0.1:",
        "tcp://127.0.0.1:99999",
        "tcp://127.0.0.1:8x",
        "tcp://::1:80",
        "tcp://[::1:80",
        "unix://",
        long_unix,
        "127.0.0.1:80",
        "",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        weft_config cfg;
        lifecycle_config(&cfg, 1);
        cfg.listen[0] = bad[i];
        static char not_an_engine;
        weft_engine *e = (weft_engine *)&not_an_engine; /* a failed start sets it to NULL */
        int rc = weft_engine_start(&cfg, &e);
        if (rc != WEFT_EBADADDR)
            fail_msg("'%s': %s, want WEFT_EBADADDR", bad[i], weft_err_name(rc));
        assert_null(e);
        assert_int_equal(atomic_load(&booted), 0);
    }

    /* One bad address among good ones refuses the whole engine. */
    weft_config cfg;
    lifecycle_config(&cfg, 2);
    cfg.listen[0] = "tcp://127.0.0.1:0";
    cfg.listen[1] = "tcp//127.0.0.1:0";
    weft_engine *e = NULL;
    assert_int_equal(weft_engine_start(&cfg, &e), WEFT_EBADADDR);
    assert_null(e);
    assert_int_equal(atomic_load(&booted), 0);
    assert_int_equal(atomic_load(&shutdowns), 0);
}

static void test_missing_on_traffic_is_invalid(void **state)
{
    (void)state;
    weft_config cfg;
    lifecycle_config(&cfg, 1);
    cfg.handler.on_traffic = NULL;
    cfg.listen[0] = "tcp://127.0.0.1:0";
    weft_engine *e = NULL;

    assert_int_equal(weft_engine_start(&cfg, &e), WEFT_EINVAL);

    assert_null(e);
    assert_int_equal(atomic_load(&booted), 0);
    assert_int_equal(weft_engine_start(NULL, &e), WEFT_EINVAL);
    assert_int_equal(weft_run(&cfg), WEFT_EINVAL);
    assert_int_equal(atomic_load(&shutdowns), 0);
}

static weft_action boot_and_quit(weft_engine *e)
{
    (void)e;
    atomic_fetch_add(&booted, 1);
    return WEFT_ACTION_SHUTDOWN;
}

static void test_on_boot_can_shut_the_engine_down(void **state)
{
    (void)state;
    weft_config cfg;
    lifecycle_config(&cfg, 2);
    cfg.handler.on_boot = boot_and_quit;
    cfg.listen[0] = "tcp://127.0.0.1:0";

    /* weft_run returns on its own: nobody else calls stop. */
    assert_int_equal(weft_run(&cfg), 0);

    assert_int_equal(atomic_load(&booted), 1);
    assert_int_equal(atomic_load(&shutdowns), 1);
    assert_int_equal(atomic_load(&wt_counts.opened), 0);
}

/* ---- listeners ---- */

static void test_port_zero_is_reported(void **state)
{
    (void)state;
    weft_config cfg;
    lifecycle_config(&cfg, 1);
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), 0);
    char url[64], want[64];

    int len = weft_engine_get_listen_addr(s.engine, 0, url, sizeof(url));

    assert_true(s.port > 0 && s.port < 65536);
    snprintf(want, sizeof(want), "tcp://127.0.0.1:%d", s.port);
    assert_string_equal(url, want);
    assert_int_equal(len, (int)strlen(want));
    assert_int_equal(weft_engine_get_listen_addr(s.engine, 0, url, 5), WEFT_ENOSPC);
    assert_int_equal(weft_engine_get_listen_addr(s.engine, 1, url, sizeof(url)), WEFT_EINVAL);
    assert_int_equal(weft_engine_get_listen_port(s.engine, 1), WEFT_EINVAL);
    assert_int_equal(atomic_load(&booted), 1);
    int fd = wt_connect_tcp(s.port);
    assert_true(fd >= 0);
    assert_echoes(fd, 1000, 1);
    wt_close(fd);
    wt_server_stop(&s);
    assert_int_equal(atomic_load(&shutdowns), 1);
}

static void test_ipv6_port_zero_is_reported(void **state)
{
    (void)state;
    weft_config cfg;
    lifecycle_config(&cfg, 1);
    cfg.listen[0] = "tcp://[::1]:0";
    wt_server s;
    int rc = wt_server_start(&s, &cfg);
    if (rc == WEFT_EADDRNOTAVAIL || rc == WEFT_EAFNOSUPPORT || rc == WEFT_EBADADDR)
        skip(); /* no IPv6 loopback on this machine */
    assert_int_equal(rc, 0);
    char want[64];
    snprintf(want, sizeof(want), "tcp://[::1]:%d", s.port);
    assert_true(s.port > 0);
    assert_string_equal(s.url, want);
    wt_server_stop(&s);
}

static void test_unix_socket_listener(void **state)
{
    (void)state;
    WT_SKIP_IF(wt_missing_unix());
    char path[108], url[120], got[160];
    wt_unix_path(path, sizeof(path), "unix");
    snprintf(url, sizeof(url), "unix://%s", path);
    weft_config cfg;
    lifecycle_config(&cfg, 2);
    cfg.listen[0] = url;
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), 0);

    assert_true(weft_engine_get_listen_addr(s.engine, 0, got, sizeof(got)) > 0);
    assert_string_equal(got, url);
    assert_int_equal(weft_engine_get_listen_port(s.engine, 0), WEFT_EINVAL); /* not TCP */
    int fds[3];
    for (int i = 0; i < 3; i++) {
        fds[i] = wt_connect_unix(path);
        assert_true(fds[i] >= 0);
    }
    for (int i = 0; i < 3; i++)
        assert_echoes(fds[i], 200000, (uint32_t)i);

    for (int i = 0; i < 3; i++)
        wt_close(fds[i]);
    wt_server_stop(&s);
    assert_int_equal(atomic_load(&wt_counts.opened), 3);
    assert_int_equal(atomic_load(&wt_counts.closed), 3);
    assert_int_equal(access(path, F_OK), -1); /* the socket file is gone with the engine */
    assert_int_equal(errno, ENOENT);
}

static void test_several_listeners_in_one_engine(void **state)
{
    (void)state;
    WT_SKIP_IF(wt_missing_unix());
    char path[108], url[120], got[160];
    wt_unix_path(path, sizeof(path), "multi");
    snprintf(url, sizeof(url), "unix://%s", path);
    weft_config cfg;
    lifecycle_config(&cfg, 2);
    cfg.listen[0] = "tcp://127.0.0.1:0";
    cfg.listen[1] = "tcp://127.0.0.1:0";
    cfg.listen[2] = url;
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), 0);

    int p0 = weft_engine_get_listen_port(s.engine, 0);
    int p1 = weft_engine_get_listen_port(s.engine, 1);
    assert_true(p0 > 0);
    assert_true(p1 > 0);
    assert_int_not_equal(p0, p1);
    assert_true(weft_engine_get_listen_addr(s.engine, 2, got, sizeof(got)) > 0);
    assert_string_equal(got, url);
    assert_int_equal(weft_engine_get_listen_addr(s.engine, 3, got, sizeof(got)), WEFT_EINVAL);

    int fds[3] = {wt_connect_tcp(p0), wt_connect_tcp(p1), wt_connect_unix(path)};
    for (int i = 0; i < 3; i++) {
        assert_true(fds[i] >= 0);
        assert_echoes(fds[i], 5000, (uint32_t)(10 + i));
    }
    assert_int_equal(atomic_load(&wt_counts.opened), 3);
    for (int i = 0; i < 3; i++)
        wt_close(fds[i]);
    wt_server_stop(&s);
    assert_int_equal(atomic_load(&wt_counts.closed), 3);
}

static void test_reuse_port_with_two_loops(void **state)
{
    (void)state;
    WT_SKIP_IF(wt_missing_reuse_port());
    weft_config cfg;
    lifecycle_config(&cfg, 2);
    cfg.reuse_port = true;
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), 0);
    char got[64];

    /* Two sockets, one per loop, but one address to report. */
    assert_true(s.port > 0);
    assert_int_equal(weft_engine_get_listen_addr(s.engine, 1, got, sizeof(got)), WEFT_EINVAL);
    int fds[8];
    for (int i = 0; i < 8; i++) {
        fds[i] = wt_connect_tcp(s.port);
        assert_true(fds[i] >= 0);
    }
    for (int i = 0; i < 8; i++)
        assert_echoes(fds[i], 3000, (uint32_t)(20 + i));

    weft_loop_stats per[2];
    weft_stats st;
    assert_int_equal(weft_engine_get_stats(s.engine, &st, per), 0);
    assert_int_equal(st.total.accepted, 8);
    assert_int_equal(per[0].accepted + per[1].accepted, 8);
    for (int i = 0; i < 8; i++)
        wt_close(fds[i]);
    wt_server_stop(&s);
    assert_int_equal(atomic_load(&wt_counts.closed), 8);
    assert_int_equal(closed_ok() + closed_shutdown(), 8);
}

/* ---- half-close and stop ---- */

static void test_half_close_still_gets_the_answer(void **state)
{
    (void)state;
    weft_config cfg;
    lifecycle_config(&cfg, 1);
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), 0);
    int fd = wt_connect_tcp(s.port);
    assert_true(fd >= 0);
    size_t n = 300000; /* more than one read: some answer is still queued at the EOF */
    uint8_t *out = malloc(n), *in = malloc(n);
    assert_non_null(out);
    assert_non_null(in);
    wt_fill(out, n, 30);

    assert_int_equal(wt_send_all(fd, out, n, WT_TIMEOUT_MS), 0);
    assert_int_equal(wt_shutdown_wr(fd), 0);

    assert_int_equal(wt_recv_exact(fd, in, n, WT_TIMEOUT_MS), 0);
    assert_memory_equal(in, out, n);
    assert_int_equal(wt_recv_eof(fd, WT_TIMEOUT_MS), 0);
    assert_true(wt_wait_count(&wt_counts.closed, 1, WT_TIMEOUT_MS));
    assert_int_equal(closed_ok(), 1);
    wt_close(fd);
    wt_server_stop(&s);
    free(out);
    free(in);
}

static bool paused_three_times(void *arg)
{
    return wt_stats(arg).backpressure_pauses >= 3;
}

static void test_stop_while_connections_are_busy(void **state)
{
    (void)state;
    WT_SKIP_IF(wt_missing_send_backpressure());
    weft_config cfg;
    lifecycle_config(&cfg, 2);
    cfg.write_high_water = 128 * 1024;
    cfg.stop_timeout_ms = 300;
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), 0);
    int idle[3], stuck[3];
    for (int i = 0; i < 3; i++) {
        idle[i] = wt_connect_tcp(s.port);
        stuck[i] = wt_connect_tcp(s.port);
        assert_true(idle[i] >= 0);
        assert_true(stuck[i] >= 0);
        (void)wt_setsockopt_int(stuck[i], SOL_SOCKET, SO_RCVBUF, 32 * 1024);
    }
    /* All six are open before the push (the idle ones are on the other loop, which may not
     * have run yet). */
    assert_true(wt_wait_count(&wt_counts.opened, 6, WT_TIMEOUT_MS));
    /* Three peers push and never read, until the server holds output for each. */
    uint8_t chunk[32 * 1024];
    wt_fill(chunk, sizeof(chunk), 40);
    int64_t end = wt_now_ms() + WT_TIMEOUT_MS;
    while (!paused_three_times(s.engine)) {
        assert_true(wt_now_ms() < end);
        for (int i = 0; i < 3; i++)
            (void)wt_send_now(stuck[i], chunk, sizeof(chunk));
        wt_sleep_ms(1);
    }
    assert_int_equal(atomic_load(&wt_counts.opened), 6);

    weft_engine_stop(s.engine);
    weft_engine_wait(s.engine);
    s.engine = NULL;

    /* Every connection was closed once, and on_shutdown came once, after all of them. */
    assert_int_equal(atomic_load(&wt_counts.closed), 6);
    assert_int_equal(atomic_load(&shutdowns), 1);
    assert_int_equal(atomic_load(&closed_at_shutdown), 6);
    /* The idle ones closed for the shutdown; the stuck ones ran out of stop_timeout_ms. */
    assert_int_equal(closed_shutdown(), 3);
    assert_int_equal(closed_timeout(), 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(wt_recv_eof(idle[i], WT_TIMEOUT_MS), 0);
        wt_close(idle[i]);
        wt_close(stuck[i]);
    }
}

static weft_action quit_on_q(weft_conn *c)
{
    const uint8_t *p;
    int n = weft_conn_peek(c, 0, &p);
    if (n > 0 && memchr(p, 'q', (size_t)n) != NULL)
        return WEFT_ACTION_SHUTDOWN;
    return wt_echo_on_traffic(c);
}

static void test_on_traffic_can_shut_the_engine_down(void **state)
{
    (void)state;
    weft_config cfg;
    lifecycle_config(&cfg, 2);
    cfg.handler.on_traffic = quit_on_q;
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), 0);
    int a = wt_connect_tcp(s.port), b = wt_connect_tcp(s.port);
    assert_true(a >= 0 && b >= 0);
    assert_echoes(a, 100, 50);

    assert_int_equal(wt_send_all(b, "q", 1, WT_TIMEOUT_MS), 0);

    /* Both connections end without anyone calling weft_engine_stop. */
    assert_int_equal(wt_recv_eof(a, WT_TIMEOUT_MS), 0);
    assert_int_equal(wt_recv_eof(b, WT_TIMEOUT_MS), 0);
    weft_engine_wait(s.engine);
    s.engine = NULL;
    assert_int_equal(atomic_load(&wt_counts.closed), 2);
    assert_int_equal(atomic_load(&shutdowns), 1);
    wt_close(a);
    wt_close(b);
}

/* ---- callbacks that end things ---- */

static weft_action greet_and_close(weft_conn *c)
{
    wt_count_open(c);
    weft_conn_write(c, "hello\n", 6);
    return WEFT_ACTION_CLOSE;
}

static void test_on_open_may_greet_and_close(void **state)
{
    (void)state;
    weft_config cfg;
    lifecycle_config(&cfg, 1);
    cfg.handler.on_open = greet_and_close;
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), 0);
    int fd = wt_connect_tcp(s.port);
    assert_true(fd >= 0);
    char in[6];

    assert_int_equal(wt_recv_exact(fd, in, 6, WT_TIMEOUT_MS), 0);

    assert_memory_equal(in, "hello\n", 6);
    assert_int_equal(wt_recv_eof(fd, WT_TIMEOUT_MS), 0);
    assert_true(wt_wait_count(&wt_counts.closed, 1, WT_TIMEOUT_MS));
    assert_int_equal(closed_ok(), 1);
    wt_close(fd);
    wt_server_stop(&s);
}

/* Aborts on 'a', after queueing a reply that must then never leave. */
static weft_action abort_on_a(weft_conn *c)
{
    const uint8_t *p;
    int n = weft_conn_peek(c, 0, &p);
    if (n > 0 && p[0] == 'a') {
        weft_conn_write(c, "never", 5);
        weft_conn_abort(c);
        return WEFT_ACTION_NONE;
    }
    return wt_echo_on_traffic(c);
}

static void test_abort_resets_the_peer(void **state)
{
    (void)state;
    WT_SKIP_IF(wt_missing_reset());
    weft_config cfg;
    lifecycle_config(&cfg, 1);
    cfg.handler.on_traffic = abort_on_a;
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), 0);
    int fd = wt_connect_tcp(s.port);
    assert_true(fd >= 0);

    assert_int_equal(wt_send_all(fd, "a", 1, WT_TIMEOUT_MS), 0);

    assert_true(wt_wait_count(&wt_counts.closed, 1, WT_TIMEOUT_MS));
    assert_int_equal(closed_other(), 1); /* WEFT_ECANCELED, not a clean close */
    char c;
    assert_int_equal(recv(fd, &c, 1, 0), -1);
    assert_int_equal(wt_sock_errno(), ECONNRESET);
    wt_close(fd);
    wt_server_stop(&s);
}

static _Atomic long ticks[2];

static weft_action tick_until_enough(weft_engine *e, unsigned loop)
{
    (void)e;
    if (loop >= 2)
        return WEFT_ACTION_NONE;
    long n = atomic_fetch_add(&ticks[loop], 1) + 1;
    /* Shut down once both loops ticked a few times. */
    return n >= 3 && atomic_load(&ticks[loop ^ 1u]) >= 3 ? WEFT_ACTION_SHUTDOWN : WEFT_ACTION_NONE;
}

static void test_on_tick_runs_on_every_loop(void **state)
{
    (void)state;
    weft_config cfg;
    lifecycle_config(&cfg, 2);
    cfg.tick_ms = 5;
    cfg.handler.on_tick = tick_until_enough;
    cfg.listen[0] = "tcp://127.0.0.1:0";
    atomic_store(&ticks[0], 0);
    atomic_store(&ticks[1], 0);

    /* Nobody calls stop: the tick does. */
    assert_int_equal(weft_run(&cfg), 0);

    assert_true(atomic_load(&ticks[0]) >= 3);
    assert_true(atomic_load(&ticks[1]) >= 3);
    assert_int_equal(atomic_load(&shutdowns), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_urls_are_rejected_before_any_callback),
        cmocka_unit_test(test_missing_on_traffic_is_invalid),
        cmocka_unit_test(test_on_boot_can_shut_the_engine_down),
        cmocka_unit_test(test_port_zero_is_reported),
        cmocka_unit_test(test_ipv6_port_zero_is_reported),
        cmocka_unit_test(test_unix_socket_listener),
        cmocka_unit_test(test_several_listeners_in_one_engine),
        cmocka_unit_test(test_reuse_port_with_two_loops),
        cmocka_unit_test(test_half_close_still_gets_the_answer),
        cmocka_unit_test(test_stop_while_connections_are_busy),
        cmocka_unit_test(test_on_traffic_can_shut_the_engine_down),
        cmocka_unit_test(test_on_open_may_greet_and_close),
        cmocka_unit_test(test_abort_resets_the_peer),
        cmocka_unit_test(test_on_tick_runs_on_every_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
