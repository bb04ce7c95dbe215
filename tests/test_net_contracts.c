/* Promises of the API that are easy to break at the edges: every dial the caller was told
 * succeeded ends in on_close, even when the engine stops first; on_close still sees its
 * own connection's addresses; a partial frame held while reading is paused is not taken
 * for a slowloris; a Unix dial to a full backlog fails at once. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "counters.h"
#include "harness.h"

static _Atomic long closed_with_ctx, peer_ok;

/* wt_count_close, and whether the close still sees its dial's ctx and its peer. */
static void check_close(weft_conn *c, int err)
{
    if (weft_conn_get_context(c) == (void *)&closed_with_ctx)
        atomic_fetch_add(&closed_with_ctx, 1);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (weft_conn_get_peer_addr(c, &ss, &sl) == 0 && ss.ss_family == AF_INET)
        atomic_fetch_add(&peer_ok, 1);
    wt_count_close(c, err);
}

/* The shared counts (wt_counts) and this file's own. */
static void reset_state(void)
{
    wt_counters_reset();
    atomic_store(&closed_with_ctx, 0);
    atomic_store(&peer_ok, 0);
}

typedef struct dialer {
    weft_engine *engine;
    const char *url;
    _Atomic long ok;
} dialer;

static void *dial_until_refused(void *arg)
{
    dialer *d = arg;
    /* Bounded, so a fast machine does not run out of descriptors before the stop. */
    while (atomic_load(&d->ok) < 2000) {
        int rc = weft_engine_dial(d->engine, d->url, -1, 2000, &closed_with_ctx);
        if (rc == 0)
            atomic_fetch_add(&d->ok, 1);
        else if (rc == WEFT_ESHUTDOWN)
            break;
    }
    return NULL;
}

static void test_every_dial_ends_in_on_close(void **state)
{
    (void)state;
    wt_server srv;
    weft_config scfg;
    wt_config(&scfg, wt_echo_on_traffic, 1);
    assert_int_equal(wt_server_start(&srv, &scfg), 0);
    char url[64];
    snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", srv.port);

    for (int round = 0; round < 5; round++) {
        reset_state();
        weft_config cfg;
        wt_config(&cfg, wt_echo_on_traffic, 2);
        cfg.listen[0] = NULL; /* client-only */
        cfg.handler.on_open = wt_count_open;
        cfg.handler.on_close = check_close;
        weft_engine *e;
        assert_int_equal(weft_engine_start(&cfg, &e), 0);
        dialer d = {.engine = e, .url = url};
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, dial_until_refused, &d), 0);
        /* Stop once the dialer is under way (a loaded machine may not have run it at all
         * in the first 20 ms), at a different point in each round. */
        assert_true(wt_wait_count(&d.ok, 1, WT_TIMEOUT_MS));
        wt_sleep_ms(10 + 10 * round);
        weft_engine_stop(e);
        /* The dialer races the stop until it is told WEFT_ESHUTDOWN; only then may the
         * engine be freed. */
        pthread_join(t, NULL);
        weft_engine_wait(e);
        /* Every dial that returned 0 got exactly one on_close carrying its ctx. */
        long ok = atomic_load(&d.ok);
        assert_true(ok > 0);
        assert_int_equal(atomic_load(&closed_with_ctx), ok);
        assert_int_equal(atomic_load(&wt_counts.closed), ok);
        assert_true(atomic_load(&wt_counts.opened) <= ok);
    }
    wt_server_stop(&srv);
}

static weft_action close_at_once(weft_conn *c)
{
    weft_conn_discard(c, weft_conn_get_buffered(c));
    return WEFT_ACTION_CLOSE;
}

static void test_on_close_sees_its_own_peer(void **state)
{
    (void)state;
    reset_state();
    wt_server srv;
    weft_config cfg;
    wt_config(&cfg, close_at_once, 1);
    cfg.handler.on_close = check_close;
    assert_int_equal(wt_server_start(&srv, &cfg), 0);
    for (int i = 0; i < 20; i++) {
        int fd = wt_connect_tcp(srv.port);
        assert_true(fd >= 0);
        assert_int_equal(wt_send_all(fd, "x", 1, wt_timeout_ms()), 0);
        assert_int_equal(wt_recv_eof(fd, wt_timeout_ms()), 0);
        wt_close(fd);
    }
    assert_true(wt_wait_count(&wt_counts.closed, 20, wt_timeout_ms()));
    assert_int_equal(atomic_load(&peer_ok), 20);
    wt_server_stop(&srv);
}

/* Pauses reading as soon as a partial line is buffered; resumes after 1.2 s. */
static void resume_later(weft_conn *c, void *arg)
{
    (void)arg;
    weft_conn_resume_read(c);
}

static weft_action pause_on_partial(weft_conn *c)
{
    const uint8_t *line;
    size_t len;
    while (weft_conn_next_frame(c, &line, &len) == 1)
        weft_conn_write_frame(c, line, len);
    if (weft_conn_get_buffered(c) > 0 && weft_conn_pause_read(c) == 0)
        weft_conn_after(c, 1200, resume_later, NULL, NULL);
    return WEFT_ACTION_NONE;
}

static void test_paused_partial_frame_is_not_slowloris(void **state)
{
    (void)state;
    reset_state();
    wt_server srv;
    weft_config cfg;
    wt_config(&cfg, pause_on_partial, 1);
    cfg.codec.kind = WEFT_CODEC_LINE;
    cfg.read_timeout_ms = 500;
    cfg.handler.on_close = check_close;
    assert_int_equal(wt_server_start(&srv, &cfg), 0);
    int fd = wt_connect_tcp(srv.port);
    assert_true(fd >= 0);
    /* The rest of the line follows at once, but the server holds it unread for 1.2 s. */
    assert_int_equal(wt_send_all(fd, "hel", 3, wt_timeout_ms()), 0);
    wt_sleep_ms(50);
    assert_int_equal(wt_send_all(fd, "lo\n", 3, wt_timeout_ms()), 0);
    char buf[6];
    assert_int_equal(wt_recv_exact(fd, buf, 6, wt_timeout_ms()), 0);
    assert_memory_equal(buf, "hello\n", 6);
    assert_int_equal(wt_closed_with(WEFT_EREADTIMEOUT), 0);
    wt_close(fd);
    wt_server_stop(&srv);
}

static void test_unix_dial_to_full_backlog_fails_at_once(void **state)
{
    (void)state;
    WT_SKIP_IF(wt_missing_unix());
    char path[108];
    wt_unix_path(path, sizeof(path), "full");
    int lfd = wt_listen_unix(path, 0);
    assert_true(lfd >= 0);
    /* Fill the backlog with clients nobody accepts. */
    int fillers[4];
    int nfill = 0;
    for (; nfill < 4; nfill++) {
        fillers[nfill] = wt_connect_unix_now(path);
        if (fillers[nfill] < 0)
            break;
    }
    reset_state();
    weft_config cfg;
    wt_config(&cfg, wt_echo_on_traffic, 1);
    cfg.listen[0] = NULL;
    cfg.handler.on_open = wt_count_open;
    cfg.handler.on_close = check_close;
    weft_engine *e;
    assert_int_equal(weft_engine_start(&cfg, &e), 0);
    char url[160];
    snprintf(url, sizeof(url), "unix://%s", path);
    int rc = weft_engine_dial(e, url, 0, 1000, NULL);
    assert_int_equal(rc, WEFT_EAGAIN);
    weft_engine_stop(e);
    weft_engine_wait(e);
    /* A failed call runs no callback: none came before the engine stopped. */
    assert_int_equal(atomic_load(&wt_counts.opened), 0);
    assert_int_equal(atomic_load(&wt_counts.closed), 0);
    for (int i = 0; i < nfill; i++)
        wt_close(fillers[i]);
    wt_close(lfd);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_dial_ends_in_on_close),
        cmocka_unit_test(test_on_close_sees_its_own_peer),
        cmocka_unit_test(test_paused_partial_frame_is_not_slowloris),
        cmocka_unit_test(test_unix_dial_to_full_backlog_fails_at_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
