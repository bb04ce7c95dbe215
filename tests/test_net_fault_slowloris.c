/* Timeouts against peers that hold connections open without finishing anything.
 *
 * slowloris: 200 peers trickle one byte per 100 ms and never complete a line. The read
 * timeout closes every one of them (WEFT_EREADTIMEOUT), while 50 well-behaved clients on the
 * same loops keep getting their echo quickly. The idle timeout closes a silent connection
 * and leaves a talking one alone; a graceful close whose peer never reads ends after
 * stop_timeout_ms (WEFT_ETIMEDOUT).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "counters.h"
#include "harness.h"

/* ---- what the server saw: wt_counts, and these by error ---- */

static long closed_readtimeout(void)
{
    return wt_closed_with(WEFT_EREADTIMEOUT);
}

/* Closes for a reason none of these tests provokes. */
static long closed_other(void)
{
    return atomic_load(&wt_counts.closed) - wt_closed_with(WEFT_EREADTIMEOUT) -
           wt_closed_with(WEFT_EIDLE) - wt_closed_with(WEFT_ETIMEDOUT) - wt_closed_with(0);
}

/* Echoes every complete line. */
static weft_action echo_lines(weft_conn *c)
{
    const uint8_t *f;
    size_t len;
    while (weft_conn_next_frame(c, &f, &len) == 1) {
        if (weft_conn_write_frame(c, f, len) != 0)
            return WEFT_ACTION_CLOSE;
    }
    return WEFT_ACTION_NONE;
}

static void line_server_config(weft_config *cfg, unsigned loops)
{
    wt_config(cfg, echo_lines, loops);
    cfg->handler.on_open = wt_count_open;
    cfg->handler.on_close = wt_count_close;
    cfg->codec.kind = WEFT_CODEC_LINE;
}

/* ---- slowloris ---- */

#define SLOW_PEERS     200
#define GOOD_PEERS     50
#define SLOW_PERIOD_MS 100
#define READ_TIMEOUT   1000
#define GOOD_PERIOD_MS 10 /* each good client asks again this long after its answer */
#define MAX_SAMPLES    200000
#define LOAD_FACTOR    4 /* see test_slowloris_closed_by_read_timeout */

typedef struct slow_ctx {
    int fds[SLOW_PEERS];
    _Atomic bool stop;
    _Atomic long bytes_sent;
    _Atomic long peers_cut; /* peers whose send failed or that saw EOF */
} slow_ctx;

/* Every 100 ms, one more byte of a line that never ends, on every slow peer still open:
 * two peers a millisecond, as 200 independent peers would come, not all 200 at once (a
 * burst of 200 sends from one thread every 100 ms would be a load of the test's own). */
static void *slow_main(void *arg)
{
    slow_ctx *s = arg;
    bool cut[SLOW_PEERS] = {false};
    while (!atomic_load(&s->stop)) {
        for (int slot = 0; slot < SLOW_PERIOD_MS && !atomic_load(&s->stop); slot++) {
            for (int i = slot; i < SLOW_PEERS; i += SLOW_PERIOD_MS) {
                if (cut[i])
                    continue;
                char c;
                ssize_t r = wt_recv_now(s->fds[i], &c, 1);
                if (r == 0 ||
                    (r < 0 && wt_sock_errno() != EAGAIN && wt_sock_errno() != EWOULDBLOCK)) {
                    cut[i] = true;
                    atomic_fetch_add(&s->peers_cut, 1);
                    continue;
                }
                if (wt_send_now(s->fds[i], "x", 1) == 1)
                    atomic_fetch_add(&s->bytes_sent, 1);
            }
            wt_sleep_ms(1);
        }
    }
    return NULL;
}

typedef struct good_ctx {
    int fds[GOOD_PEERS];
    _Atomic bool stop;
    _Atomic long errors;
    _Atomic int phase;          /* 0 before the trickle, 1 while the slow peers trickle, 2 after */
    _Atomic long baseline_seen; /* round trips done in phase 0, for the test to wait on */
    /* Round-trip times in microseconds, written by the client thread only; read after
     * it was joined. samples[0..nbaseline) came before the trickle, samples[nbaseline..
     * ntrickle) while it lasted. */
    int32_t *samples;
    size_t nsamples;
    size_t nbaseline;
    size_t ntrickle;
} good_ctx;

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* 50 clients in one poll loop: each sends a line, waits for its echo, records the round
 * trip, and asks again GOOD_PERIOD_MS later. */
static void *good_main(void *arg)
{
    good_ctx *g = arg;
    int64_t sent_at[GOOD_PEERS];
    int64_t next_at[GOOD_PEERS];
    size_t got[GOOD_PEERS];
    char msg[GOOD_PEERS][32];
    size_t msg_len[GOOD_PEERS];
    unsigned seq[GOOD_PEERS];
    for (int i = 0; i < GOOD_PEERS; i++) {
        sent_at[i] = -1;
        next_at[i] = now_us() + i * 200; /* spread the first requests */
        seq[i] = 0;
    }
    int phase = 0;
    while (!atomic_load(&g->stop)) {
        int now_phase = atomic_load(&g->phase);
        if (phase < 1 && now_phase >= 1)
            g->nbaseline = g->nsamples;
        if (phase < 2 && now_phase >= 2)
            g->ntrickle = g->nsamples;
        phase = now_phase;
        int64_t t = now_us();
        for (int i = 0; i < GOOD_PEERS; i++) {
            if (sent_at[i] >= 0 || t < next_at[i])
                continue;
            msg_len[i] = (size_t)snprintf(msg[i], sizeof(msg[i]), "ping %d %u\n", i, seq[i]++);
            got[i] = 0;
            sent_at[i] = now_us();
            if (send(g->fds[i], msg[i], msg_len[i], MSG_NOSIGNAL) != (ssize_t)msg_len[i])
                atomic_fetch_add(&g->errors, 1);
        }
        struct pollfd p[GOOD_PEERS];
        for (int i = 0; i < GOOD_PEERS; i++)
            p[i] = (struct pollfd){g->fds[i], sent_at[i] >= 0 ? POLLIN : 0, 0};
        if (wt_poll(p, GOOD_PEERS, 1) <= 0)
            continue;
        for (int i = 0; i < GOOD_PEERS; i++) {
            if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char buf[64];
            ssize_t r = wt_recv_now(g->fds[i], buf, sizeof(buf));
            if (r <= 0) {
                if (r == 0 || (wt_sock_errno() != EAGAIN && wt_sock_errno() != EINTR))
                    atomic_fetch_add(&g->errors, 1);
                continue;
            }
            if (got[i] + (size_t)r > msg_len[i] || memcmp(buf, msg[i] + got[i], (size_t)r) != 0) {
                atomic_fetch_add(&g->errors, 1);
                continue;
            }
            got[i] += (size_t)r;
            if (got[i] < msg_len[i])
                continue;
            int64_t done = now_us();
            if (g->nsamples < MAX_SAMPLES)
                g->samples[g->nsamples++] = (int32_t)(done - sent_at[i]);
            if (phase == 0)
                atomic_fetch_add(&g->baseline_seen, 1);
            sent_at[i] = -1;
            next_at[i] = done + GOOD_PERIOD_MS * 1000;
        }
    }
    if (phase < 1)
        g->nbaseline = g->nsamples;
    if (phase < 2)
        g->ntrickle = g->nsamples;
    return NULL;
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* The 99th percentile of v[0..n), which it sorts. */
static int32_t p99_of(int32_t *v, size_t n)
{
    qsort(v, n, sizeof(int32_t), cmp_i32);
    return n > 0 ? v[n * 99 / 100] : 0;
}

typedef struct latency {
    int32_t baseline_p99; /* the good clients alone */
    int32_t trickle_p99;  /* while the slow peers trickle */
} latency;

static bool slow_all_closed(void *arg)
{
    (void)arg;
    return closed_readtimeout() >= SLOW_PEERS;
}

static bool only_good_peers_live(void *arg)
{
    return wt_stats(arg).live == GOOD_PEERS;
}

/* One run of the scenario; returns the good clients' p99s in microseconds. */
static latency slowloris_once(int attempt)
{
    wt_counters_reset();
    weft_config cfg;
    line_server_config(&cfg, 2);
    cfg.read_timeout_ms = READ_TIMEOUT;
    cfg.idle_timeout_ms = 0;
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), 0);

    good_ctx *g = calloc(1, sizeof(*g));
    slow_ctx *sl = calloc(1, sizeof(*sl));
    assert_non_null(g);
    assert_non_null(sl);
    g->samples = malloc(sizeof(int32_t) * MAX_SAMPLES);
    assert_non_null(g->samples);
    for (int i = 0; i < GOOD_PEERS; i++) {
        g->fds[i] = wt_connect_tcp(s.port);
        assert_true(g->fds[i] >= 0);
    }
    for (int i = 0; i < SLOW_PEERS; i++) {
        sl->fds[i] = wt_connect_tcp(s.port);
        assert_true(sl->fds[i] >= 0);
    }
    assert_true(wt_wait_count(&wt_counts.opened, GOOD_PEERS + SLOW_PEERS, WT_TIMEOUT_MS));

    pthread_t gt, st;
    assert_int_equal(pthread_create(&gt, NULL, good_main, g), 0);
    /* A baseline before the trickle starts: 400 ms, and at least 100 round trips however
     * slow the machine. */
    wt_sleep_ms(400);
    assert_true(wt_wait_count(&g->baseline_seen, 100, WT_TIMEOUT_MS));
    atomic_store(&g->phase, 1);
    int64_t t0 = wt_now_ms();
    assert_int_equal(pthread_create(&st, NULL, slow_main, sl), 0);

    /* Every slow peer is closed by the read timeout: not before it, and not much later. */
    assert_true(wt_wait_for(slow_all_closed, NULL, READ_TIMEOUT + WT_TIMEOUT_MS));
    atomic_store(&g->phase, 2);
    int64_t first = atomic_load(&wt_counts.first_close_ms) - t0;
    int64_t last = atomic_load(&wt_counts.last_close_ms) - t0;
    wt_sleep_ms(300); /* the good clients go on after the slow ones are gone */
    atomic_store(&sl->stop, true);
    atomic_store(&g->stop, true);
    pthread_join(st, NULL);
    pthread_join(gt, NULL);

    assert_int_equal(closed_readtimeout(), SLOW_PEERS);
    assert_int_equal(atomic_load(&wt_counts.closed), SLOW_PEERS);
    assert_int_equal(closed_other(), 0);
    assert_int_equal(atomic_load(&g->errors), 0);
    assert_true(first >= READ_TIMEOUT - 50); /* the coarse clock may lag a few ms */
    assert_true(last <= READ_TIMEOUT + wt_grace_ms(3000));
    /* The slow peers see their connection end. */
    for (int i = 0; i < SLOW_PEERS; i++) {
        int rc = wt_recv_eof(sl->fds[i], WT_TIMEOUT_MS);
        assert_true(rc == 0 || rc == -ECONNRESET);
        wt_close(sl->fds[i]);
    }
    /* The engine counts a close once on_close has returned, a moment after wt_counts. */
    assert_true(wt_wait_for(only_good_peers_live, s.engine, WT_TIMEOUT_MS));
    weft_loop_stats t = wt_stats(s.engine);
    assert_int_equal(t.live, GOOD_PEERS);
    assert_int_equal(t.buffers_out, 0); /* the partial lines' buffers went back */

    /* Enough round trips beside the slow peers for a p99. They fit in the one second the
     * trickle lasts (the read timeout), so how many depends on the machine's pace: 50
     * clients asking every 10 ms make about 4,500 on Linux; a heavy slowdown (Wine, where each socket
     * call is a round trip to wineserver, TSan, valgrind) is held to a tenth. */
    assert_true(g->nsamples > (wt_slow() ? 100u : 1000u));
    assert_true(g->nbaseline >= 100);
    assert_true(g->ntrickle - g->nbaseline >= (wt_slow() ? 50u : 500u));
    latency lat;
    lat.baseline_p99 = p99_of(g->samples, g->nbaseline);
    lat.trickle_p99 = p99_of(g->samples + g->nbaseline, g->ntrickle - g->nbaseline);
    qsort(g->samples, g->nsamples, sizeof(int32_t), cmp_i32);
    int32_t p50 = g->samples[g->nsamples / 2];
    int32_t max = g->samples[g->nsamples - 1];
    printf("slowloris attempt %d: %d slow peers closed by the read timeout %lld..%lld ms after "
           "their first byte (%ld bytes trickled); %d good clients, %zu round trips, p50 %d us, "
           "p99 %d us alone and %d us beside the slow peers, max %d us\n",
           attempt, SLOW_PEERS, (long long)first, (long long)last, atomic_load(&sl->bytes_sent),
           GOOD_PEERS, g->nsamples, p50, lat.baseline_p99, lat.trickle_p99, max);

    /* An orderly goodbye: the echo of a ping still in flight is read, not reset away. */
    for (int i = 0; i < GOOD_PEERS; i++)
        assert_int_equal(wt_shutdown_wr(g->fds[i]), 0);
    for (int i = 0; i < GOOD_PEERS; i++) {
        int rc;
        while ((rc = wt_recv_eof(g->fds[i], WT_TIMEOUT_MS)) == 1)
            ;
        assert_int_equal(rc, 0);
        wt_close(g->fds[i]);
    }
    assert_true(wt_wait_count(&wt_counts.closed, SLOW_PEERS + GOOD_PEERS, WT_TIMEOUT_MS));
    assert_int_equal(wt_closed_with(0), GOOD_PEERS);
    wt_server_stop(&s);
    free(g->samples);
    free(g);
    free(sl);
    return lat;
}

static void test_slowloris_closed_by_read_timeout(void **state)
{
    (void)state;
    /* The latency bound is the 5 ms p99 for the good clients while the slow peers
     * trickle. What it stands for is that the slow peers do not slow the others down, and
     * on a loaded machine the good clients alone may already be slower than that: there
     * the bound is LOAD_FACTOR times their own p99 measured just before, on the same
     * machine in the same state. One run can still lose the CPU at the wrong moment, so the
     * bound must hold in one of three runs; everything else is asserted in every run. Under
     * a heavy slowdown (valgrind, TSan) only a loose bound is meaningful. */
    const int32_t bound_us = wt_slow() ? 200000 : 5000;
    bool held = false;
    for (int attempt = 1; attempt <= 3 && !held; attempt++) {
        latency lat = slowloris_once(attempt);
        int32_t bound = bound_us;
        if (lat.baseline_p99 > bound / LOAD_FACTOR)
            bound = lat.baseline_p99 * LOAD_FACTOR;
        printf("slowloris attempt %d: p99 %d us beside the slow peers (bound %d us)\n", attempt,
               lat.trickle_p99, bound);
        held = lat.trickle_p99 < bound;
    }
    assert_true(held);
}

/* ---- idle timeout ---- */

/* The idle timeout. The talker below must never be quiet that long, and under a heavy
 * slowdown one stall of a thread can outlast 500 ms. */
static int idle_ms(void)
{
    return wt_slow() ? 2000 : 500;
}

static void test_idle_timeout_closes_the_silent_one_only(void **state)
{
    (void)state;
    const int idle = idle_ms();
    wt_counters_reset();
    weft_config cfg;
    line_server_config(&cfg, 1);
    cfg.idle_timeout_ms = (unsigned)idle;
    cfg.read_timeout_ms = 0;
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), 0);
    /* The silent one's idle clock starts when the server opens it, which is certainly not
     * before this. */
    int64_t t_connect = wt_now_ms();
    int silent = wt_connect_tcp(s.port);
    int talker = wt_connect_tcp(s.port);
    assert_true(silent >= 0);
    assert_true(talker >= 0);
    assert_true(wt_wait_count(&wt_counts.opened, 2, WT_TIMEOUT_MS));
    int64_t t0 = wt_now_ms();

    /* The talker exchanges a line every 100 ms for three idle periods. */
    char in[16];
    while (wt_now_ms() - t0 < 3 * idle) {
        assert_int_equal(wt_exchange(talker, "hello\n", 6, in, 6, WT_TIMEOUT_MS), 0);
        assert_memory_equal(in, "hello\n", 6);
        wt_sleep_ms(100);
    }
    /* The silent one was closed for idleness, once, the idle timeout after it opened (the
     * loop clock is coarse: it may lag a few ms). */
    assert_int_equal(atomic_load(&wt_counts.closed), 1);
    assert_int_equal(wt_closed_with(WEFT_EIDLE), 1);
    int64_t at = atomic_load(&wt_counts.first_close_ms) - t_connect;
    assert_true(at >= idle - 50);
    assert_true(at <= idle + wt_grace_ms(1000));
    assert_int_equal(wt_recv_eof(silent, WT_TIMEOUT_MS), 0);

    /* A partial line is not activity forever: with the talker silent too, it goes. */
    assert_int_equal(wt_send_all(talker, "half", 4, WT_TIMEOUT_MS), 0);
    assert_true(wt_wait_count(&wt_counts.closed, 2, idle + WT_TIMEOUT_MS));
    assert_int_equal(wt_recv_eof(talker, WT_TIMEOUT_MS), 0);
    assert_int_equal(wt_closed_with(WEFT_EIDLE), 2);
    assert_int_equal(atomic_load(&wt_counts.closed), 2);
    printf("idle: silent connection closed %lld ms after its connect (idle_timeout_ms %d); the "
           "talker stayed open for %d ms of traffic\n",
           (long long)at, idle, 3 * idle);
    wt_close(silent);
    wt_close(talker);
    wt_server_stop(&s);
}

/* ---- a graceful close whose peer never reads ---- */

#define BIG_ANSWER       ((size_t)8 << 20)
#define CLOSE_TIMEOUT_MS 500

/* On "go": an 8 MiB answer, then a graceful close. Anything else is echoed. */
static weft_action answer_and_close(weft_conn *c)
{
    static uint8_t chunk[64 * 1024];
    const uint8_t *p;
    if (weft_conn_peek(c, 1, &p) == 1 && p[0] != 'g')
        return wt_echo_on_traffic(c);
    weft_conn_discard(c, weft_conn_get_buffered(c));
    for (size_t n = 0; n < BIG_ANSWER; n += sizeof(chunk)) {
        if (weft_conn_write(c, chunk, sizeof(chunk)) != 0)
            return WEFT_ACTION_NONE;
    }
    return WEFT_ACTION_CLOSE;
}

static void test_graceful_close_gives_up_after_stop_timeout(void **state)
{
    (void)state;
    wt_counters_reset();
    weft_config cfg;
    wt_config(&cfg, answer_and_close, 1);
    cfg.handler.on_open = wt_count_open;
    cfg.handler.on_close = wt_count_close;
    cfg.stop_timeout_ms = CLOSE_TIMEOUT_MS;
    cfg.idle_timeout_ms = 0;
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), 0);
    int fd = wt_connect_tcp(s.port);
    assert_true(fd >= 0);
    assert_int_equal(wt_setsockopt_int(fd, SOL_SOCKET, SO_RCVBUF, 64 * 1024), 0);
    int bystander = wt_connect_tcp(s.port);
    assert_true(bystander >= 0);

    /* The close timer counts from the loop clock of the callback that asked for the close,
     * read when that callback began: after "go" arrived, so certainly not before this. (Not
     * from the end of the callback: 8 MiB of writes can take a while under a sanitizer.) */
    int64_t t_go = wt_now_ms();
    assert_int_equal(wt_send_all(fd, "go", 2, WT_TIMEOUT_MS), 0);
    assert_true(wt_wait_count(&wt_counts.closed, 1, CLOSE_TIMEOUT_MS + WT_TIMEOUT_MS));
    assert_int_equal(wt_closed_with(WEFT_ETIMEDOUT), 1);
    /* Not before the timeout (the loop clock is coarse: it may lag a few ms), and not much
     * after it. */
    int64_t waited = atomic_load(&wt_counts.first_close_ms) - t_go;
    assert_true(waited >= CLOSE_TIMEOUT_MS - 50);
    assert_true(waited <= CLOSE_TIMEOUT_MS + wt_grace_ms(1000));
    assert_true(wt_wait_for(wt_buffers_back, s.engine, WT_TIMEOUT_MS));
    weft_loop_stats t = wt_stats(s.engine);
    assert_true(t.bytes_out < BIG_ANSWER);
    assert_int_equal(t.buffers_out, 0);
    printf("close timeout: %zu bytes answered, %llu taken by the kernel, closed %lld ms after "
           "the request (stop_timeout_ms %d)\n",
           BIG_ANSWER, (unsigned long long)t.bytes_out, (long long)waited, CLOSE_TIMEOUT_MS);

    /* The bystander on the same loop was not disturbed. */
    char in[8];
    assert_int_equal(wt_exchange(bystander, "still", 5, in, 5, WT_TIMEOUT_MS), 0);
    wt_close(fd);
    wt_close(bystander);
    wt_server_stop(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slowloris_closed_by_read_timeout),
        cmocka_unit_test(test_idle_timeout_closes_the_silent_one_only),
        cmocka_unit_test(test_graceful_close_gives_up_after_stop_timeout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
