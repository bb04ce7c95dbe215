/* weft_conn_pause_read / weft_conn_resume_read and the timeouts: a pause holds the read
 * timeout, a resume lets it run on, and a partial frame that goes on trickling after the
 * resume is still closed by it (slowloris through a server that paused while it worked). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define READ_TIMEOUT_MS 500
#define WORK_MS         100 /* how long the server "works" with reading paused */
#define TRICKLE_MS      100

static _Atomic long pauses;
static _Atomic long closes;
static _Atomic int close_err;

static void resume_after_work(weft_conn *c, void *arg)
{
    (void)arg;
    (void)weft_conn_resume_read(c);
}

/* A line server that pauses reading the first time a partial line is buffered, as a server
 * does while a worker handles what came before, and resumes after WORK_MS. */
static weft_action pausing_traffic(weft_conn *c)
{
    const uint8_t *f;
    size_t n;
    while (weft_conn_next_frame(c, &f, &n) == WEFT_FRAME)
        (void)weft_conn_write(c, "ok\n", 3);
    if (weft_conn_get_buffered(c) > 0 && weft_conn_get_context(c) == NULL &&
        weft_conn_pause_read(c) == 0) {
        weft_conn_set_context(c, c); /* paused once */
        atomic_fetch_add(&pauses, 1);
        (void)weft_conn_after(c, WORK_MS, resume_after_work, NULL, NULL);
    }
    return WEFT_ACTION_NONE;
}

static void on_close(weft_conn *c, int err)
{
    (void)c;
    atomic_store(&close_err, err);
    atomic_fetch_add(&closes, 1);
}

static void test_read_timeout_survives_pause_and_resume(void **state)
{
    (void)state;
    atomic_store(&pauses, 0);
    atomic_store(&closes, 0);
    atomic_store(&close_err, 0);
    weft_config cfg;
    wt_config(&cfg, pausing_traffic, 1);
    cfg.codec.kind = WEFT_CODEC_LINE;
    cfg.read_timeout_ms = READ_TIMEOUT_MS;
    cfg.handler.on_close = on_close;
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), 0);
    int fd = wt_connect_tcp(s.port);
    assert_true(fd >= 0);

    /* One frame that never ends: a byte every TRICKLE_MS, each read pausing the server. */
    int64_t start = wt_now_ms();
    int64_t give_up = start + 20 * READ_TIMEOUT_MS + WT_TIMEOUT_MS;
    int sent = 0;
    while (atomic_load(&closes) == 0 && wt_now_ms() < give_up) {
        if (send(fd, "x", 1, MSG_NOSIGNAL) != 1)
            break; /* closed under us: the timeout fired */
        sent++;
        wt_sleep_ms(TRICKLE_MS);
    }
    assert_true(wt_wait_count(&closes, 1, WT_TIMEOUT_MS));
    int64_t lived = wt_now_ms() - start;
    print_message("closed after %lld ms, %d bytes trickled, %ld pauses\n", (long long)lived, sent,
                  atomic_load(&pauses));
    assert_int_equal(atomic_load(&close_err), WEFT_EREADTIMEOUT);
    assert_int_equal(atomic_load(&pauses), 1); /* the pause and resume path really ran */
    /* Never earlier than the timeout: the pauses hold its clock. */
    assert_true(lived >= READ_TIMEOUT_MS);
    wt_close(fd);
    wt_server_stop(&s);
}

/* ---- the peer ends while reading is paused ---- */

#define HELD_LINES 100

/* The first call leaves every line buffered and pauses; WORK_MS later a timer resumes
 * reading, outside on_traffic, so the lines come back through the loop's queue while the
 * socket, resumed too, has nothing left but the peer's end. */
static weft_action pause_first_call(weft_conn *c)
{
    if (weft_conn_get_context(c) == NULL) {
        weft_conn_set_context(c, c);
        if (weft_conn_pause_read(c) == 0)
            atomic_fetch_add(&pauses, 1);
        (void)weft_conn_after(c, WORK_MS, resume_after_work, NULL, NULL);
        return WEFT_ACTION_NONE;
    }
    const uint8_t *f;
    size_t n;
    while (weft_conn_next_frame(c, &f, &n) == WEFT_FRAME)
        (void)weft_conn_write(c, "ok\n", 3);
    return WEFT_ACTION_NONE;
}

/* Lines sent and the sending side ended before the server read on: each is answered, then
 * the connection closes in order, whichever the resumed socket or the queued input comes
 * first. */
static void test_lines_buffered_while_paused_are_answered_after_the_peer_ends(void **state)
{
    (void)state;
    atomic_store(&pauses, 0);
    atomic_store(&closes, 0);
    atomic_store(&close_err, 0);
    weft_config cfg;
    wt_config(&cfg, pause_first_call, 1);
    cfg.codec.kind = WEFT_CODEC_LINE;
    cfg.handler.on_close = on_close;
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), 0);
    int fd = wt_connect_tcp(s.port);
    assert_true(fd >= 0);
    char req[HELD_LINES * 2];
    for (int i = 0; i < HELD_LINES; i++)
        memcpy(req + 2 * i, "x\n", 2);
    assert_int_equal(wt_send_all(fd, req, sizeof(req), WT_TIMEOUT_MS), 0);
    assert_int_equal(wt_shutdown_wr(fd), 0);
    char want[HELD_LINES * 3], got[HELD_LINES * 3];
    for (int i = 0; i < HELD_LINES; i++)
        memcpy(want + 3 * i, "ok\n", 3);
    assert_int_equal(wt_recv_exact(fd, got, sizeof(got), WT_TIMEOUT_MS), 0);
    assert_memory_equal(got, want, sizeof(want));
    assert_int_equal(wt_recv_eof(fd, WT_TIMEOUT_MS), 0);
    assert_true(wt_wait_count(&closes, 1, WT_TIMEOUT_MS));
    assert_int_equal(atomic_load(&close_err), 0);
    assert_int_equal(atomic_load(&pauses), 1);
    wt_close(fd);
    wt_server_stop(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_timeout_survives_pause_and_resume),
        cmocka_unit_test(test_lines_buffered_while_paused_are_answered_after_the_peer_ends),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
