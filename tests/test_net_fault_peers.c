/* Hostile and broken peers: each one costs its own connection at most, and server memory
 * stays bounded whatever it does.
 *
 * - a peer that never reads while the server pushes to it: backpressure, then the hard cap
 *   closes it (WEFT_EOUTCAP), and the server's resident memory grows by about the cap;
 * - a reset in the middle of a frame and in the middle of a large write;
 * - a half-close whose (large) answer is still delivered;
 * - oversized and corrupt frames for every codec, and random garbage (fixed seed);
 * - max_connections reached (extra connections closed at once, counted) and released.
 *
 * test_net_backpressure.c and test_net_codec.c cover the echo under backpressure, the
 * basic hard caps and the first bad frames of each codec; this file adds the rest.
 */
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

static _Atomic long write_rc; /* the first failing write's result */

/* The shared counts (wt_counts) and this file's own. */
static void reset_state(void)
{
    wt_counters_reset();
    atomic_store(&write_rc, 0);
}

static void base_config(weft_config *cfg, weft_action (*on_traffic)(weft_conn *), unsigned loops)
{
    wt_config(cfg, on_traffic, loops);
    cfg->handler.on_open = wt_count_open;
    cfg->handler.on_close = wt_count_close;
}

static void echo_check(int fd, const char *what)
{
    char in[64];
    size_t n = strlen(what);
    assert_int_equal(wt_exchange(fd, what, n, in, n, WT_TIMEOUT_MS), 0);
    assert_memory_equal(in, what, n);
}

/* ---- a peer that never reads while the server pushes ---- */

/* ThreadSanitizer keeps shadow memory for every byte the program touches (several times
 * the byte), and it is resident too: bounds on RSS scale by this factor under it. */
#if defined(__SANITIZE_THREAD__)
#define RSS_FACTOR 6
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RSS_FACTOR 6
#endif
#endif
#ifndef RSS_FACTOR
#define RSS_FACTOR 1
#endif

#define HARD_CAP   ((size_t)16 << 20)
#define HIGH_WATER ((size_t)1 << 20)
#define PUSH_CHUNK ((size_t)256 << 10)

static weft_conn *subscriber; /* loop thread only */
static _Atomic long max_pending;
static _Atomic long pushed; /* bytes weft_conn_write accepted for the subscriber */

/* "sub" makes this connection the subscriber; anything else is echoed. */
static weft_action subscribe_or_echo(weft_conn *c)
{
    const uint8_t *p;
    if (weft_conn_peek(c, 3, &p) == 3 && memcmp(p, "sub", 3) == 0) {
        weft_conn_discard(c, weft_conn_get_buffered(c));
        subscriber = c;
        return WEFT_ACTION_NONE;
    }
    return wt_echo_on_traffic(c);
}

/* A publisher that ignores backpressure: every tick, another chunk for the subscriber. */
static weft_action push_on_tick(weft_engine *e, unsigned loop)
{
    (void)e;
    (void)loop;
    static uint8_t chunk[PUSH_CHUNK];
    if (subscriber == NULL)
        return WEFT_ACTION_NONE;
    int rc = weft_conn_write(subscriber, chunk, sizeof(chunk));
    if (rc != 0) {
        long zero = 0;
        atomic_compare_exchange_strong(&write_rc, &zero, rc);
        return WEFT_ACTION_NONE;
    }
    atomic_fetch_add(&pushed, (long)sizeof(chunk));
    long pending = (long)weft_conn_get_pending_out(subscriber);
    if (pending > atomic_load(&max_pending))
        atomic_store(&max_pending, pending);
    return WEFT_ACTION_NONE;
}

static _Atomic long pauses_at_close = -1; /* backpressure_pauses when the subscriber closed */

static void forget_subscriber(weft_conn *c, int err)
{
    if (c == subscriber) {
        subscriber = NULL;
        atomic_store(&pauses_at_close, (long)wt_stats(weft_conn_get_engine(c)).backpressure_pauses);
    }
    wt_count_close(c, err);
}

static void test_non_reader_backpressure_then_hard_cap(void **state)
{
    (void)state;
    WT_SKIP_IF(wt_missing_reset());
    reset_state();
    subscriber = NULL;
    atomic_store(&max_pending, 0);
    atomic_store(&pushed, 0);
    atomic_store(&pauses_at_close, -1);
    weft_config cfg;
    base_config(&cfg, subscribe_or_echo, 1);
    cfg.handler.on_close = forget_subscriber;
    cfg.handler.on_tick = push_on_tick;
    cfg.tick_ms = 2;
    cfg.write_high_water = HIGH_WATER;
    cfg.write_hard_cap = HARD_CAP;
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), 0);
    int neighbour = wt_connect_tcp(s.port);
    assert_true(neighbour >= 0);
    echo_check(neighbour, "warm up");
    long rss_before = wt_rss_kb();
    assert_true(rss_before > 0);

    int fd = wt_connect_tcp(s.port);
    assert_true(fd >= 0);
    assert_int_equal(wt_setsockopt_int(fd, SOL_SOCKET, SO_RCVBUF, 64 * 1024), 0);
    assert_int_equal(wt_send_all(fd, "sub", 3, WT_TIMEOUT_MS), 0);

    /* The peer reads nothing. Watch the server's memory until the cap closes it. */
    long rss_peak = rss_before;
    int64_t end = wt_now_ms() + WT_TIMEOUT_MS;
    while (atomic_load(&wt_counts.closed) == 0) {
        assert_true(wt_now_ms() < end);
        long rss = wt_rss_kb();
        if (rss > rss_peak)
            rss_peak = rss;
        wt_sleep_ms(2);
    }
    /* The high-water mark paused it before the cap closed it (counted by the close itself:
     * this thread may have slept through both). */
    assert_true(atomic_load(&pauses_at_close) > 0);
    assert_int_equal(atomic_load(&wt_counts.last_err), WEFT_EOUTCAP);
    assert_int_equal(atomic_load(&write_rc), WEFT_EOUTCAP);
    assert_true((size_t)atomic_load(&max_pending) <= HARD_CAP);
    assert_true((size_t)atomic_load(&max_pending) >= HARD_CAP - PUSH_CHUNK);
    /* On a completion backend the queue of a connection closed mid-send goes back once the
     * kernel confirms the send's cancel, a moment after on_close. */
    assert_true(wt_wait_for(wt_buffers_back, s.engine, WT_TIMEOUT_MS));
    weft_loop_stats t = wt_stats(s.engine);

    /* The queue is one ring of at most the cap rounded up to a power of two; while it
     * grows the old ring is copied into the new one, so 2 x the cap is the most it may
     * hold at once; the rest of the bound is malloc's (or a sanitizer's) slack. Without a
     * cap the publisher would have grown it without end. */
    long growth_kb = rss_peak - rss_before;
    long rss_after = wt_rss_kb();
    printf("non-reader: %ld bytes accepted by weft_conn_write, %llu sent to the kernel, queue "
           "peak %ld (high water %zu, hard cap %zu); RSS before %ld KiB, peak %ld KiB (+%ld "
           "KiB), after close %ld KiB\n",
           atomic_load(&pushed), (unsigned long long)t.bytes_out, atomic_load(&max_pending),
           HIGH_WATER, HARD_CAP, rss_before, rss_peak, growth_kb, rss_after);
    assert_true((size_t)growth_kb * 1024 <= 3 * HARD_CAP * RSS_FACTOR);

    /* The peer is reset, not shown a clean end of a stream that was cut. */
    uint8_t sink[64 * 1024];
    ssize_t r;
    end = wt_now_ms() + WT_TIMEOUT_MS;
    while ((r = recv(fd, (void *)sink, sizeof(sink), 0)) > 0)
        assert_true(wt_now_ms() < end);
    assert_int_equal(r, -1);
    assert_int_equal(wt_sock_errno(), ECONNRESET);
    wt_close(fd);

    /* The neighbour on the same loop never noticed. */
    echo_check(neighbour, "still here");
    wt_close(neighbour);
    assert_true(wt_wait_count(&wt_counts.closed, 2, WT_TIMEOUT_MS));
    wt_server_stop(&s);
}

/* ---- resets in the middle of things ---- */

/* Echoes whole length-field frames, re-framed. */
static weft_action echo_frames(weft_conn *c)
{
    const uint8_t *f;
    size_t len;
    while (weft_conn_next_frame(c, &f, &len) == 1) {
        if (weft_conn_write_frame(c, f, len) != 0)
            return WEFT_ACTION_CLOSE;
    }
    return WEFT_ACTION_NONE;
}

static void lf_config(weft_codec_config *cc)
{
    weft_codec_config_init(cc);
    cc->kind = WEFT_CODEC_LENGTH_FIELD;
    cc->length_field.length_field_length = 4;
    cc->length_field.initial_bytes_to_strip = 4;
    cc->length_field.max_frame_length = 16u << 20;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void lf_echo_check(int fd, size_t n, uint32_t seed)
{
    uint8_t *out = malloc(n + 4), *in = malloc(n + 4);
    assert_non_null(out);
    assert_non_null(in);
    put_be32(out, (uint32_t)n);
    wt_fill(out + 4, n, seed);
    assert_int_equal(wt_exchange(fd, out, n + 4, in, n + 4, WT_TIMEOUT_MS), 0);
    assert_memory_equal(in, out, n + 4);
    free(out);
    free(in);
}

static void reset(int fd)
{
    assert_int_equal(wt_linger_reset(fd), 0);
    wt_close(fd);
}

static bool holds_partial_frame(void *arg)
{
    weft_loop_stats t = wt_stats(arg);
    return t.buffers_out > 0;
}

static void test_reset_in_the_middle_of_a_frame(void **state)
{
    (void)state;
    WT_SKIP_IF(wt_missing_reset());
    reset_state();
    weft_config cfg;
    base_config(&cfg, echo_frames, 1);
    lf_config(&cfg.codec);
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), 0);
    int neighbour = wt_connect_tcp(s.port);
    assert_true(neighbour >= 0);
    lf_echo_check(neighbour, 100, 1);

    /* A header for 1 MiB, then 300 KiB of it, then a reset. */
    int fd = wt_connect_tcp(s.port);
    assert_true(fd >= 0);
    size_t part = 300 * 1024;
    uint8_t *out = malloc(4 + part);
    assert_non_null(out);
    put_be32(out, 1u << 20);
    wt_fill(out + 4, part, 2);
    assert_int_equal(wt_send_all(fd, out, 4 + part, WT_TIMEOUT_MS), 0);
    assert_true(wt_wait_for(holds_partial_frame, s.engine, WT_TIMEOUT_MS));
    uint64_t frames_before = wt_stats(s.engine).frames;
    reset(fd);

    assert_true(wt_wait_count(&wt_counts.closed, 1, WT_TIMEOUT_MS));
    assert_int_equal(atomic_load(&wt_counts.last_err), WEFT_ECONNRESET);
    weft_loop_stats t = wt_stats(s.engine);
    assert_int_equal(t.frames, frames_before); /* no half frame was handed up */
    assert_int_equal(t.buffers_out, 0);        /* its partial frame's buffer went back */
    printf("reset mid-frame: %zu of %u bytes of a frame, then RST: closed with %s, %llu bytes "
           "in\n",
           4 + part, (1u << 20) + 4, weft_err_name((int)atomic_load(&wt_counts.last_err)),
           (unsigned long long)t.bytes_in);
    lf_echo_check(neighbour, 70000, 3);
    wt_close(neighbour);
    assert_true(wt_wait_count(&wt_counts.closed, 2, WT_TIMEOUT_MS));
    wt_server_stop(&s);
    free(out);
}

#define BIG_FRAME ((size_t)8 << 20)

/* On any frame: an 8 MiB frame back, in one write. */
static weft_action big_answer(weft_conn *c)
{
    const uint8_t *f;
    size_t len;
    while (weft_conn_next_frame(c, &f, &len) == 1) {
        if (len != 3 || memcmp(f, "big", 3) != 0) {
            if (weft_conn_write_frame(c, f, len) != 0)
                return WEFT_ACTION_CLOSE;
            continue;
        }
        uint8_t *p = malloc(BIG_FRAME);
        if (p == NULL)
            return WEFT_ACTION_CLOSE;
        wt_fill(p, BIG_FRAME, 9);
        int rc = weft_conn_write_frame(c, p, BIG_FRAME);
        free(p);
        if (rc != 0) {
            atomic_store(&write_rc, rc);
            return WEFT_ACTION_CLOSE;
        }
    }
    return WEFT_ACTION_NONE;
}

static void test_reset_in_the_middle_of_a_large_write(void **state)
{
    (void)state;
    reset_state();
    weft_config cfg;
    base_config(&cfg, big_answer, 1);
    lf_config(&cfg.codec);
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), 0);
    int neighbour = wt_connect_tcp(s.port);
    assert_true(neighbour >= 0);
    lf_echo_check(neighbour, 100, 4);

    int fd = wt_connect_tcp(s.port);
    assert_true(fd >= 0);
    uint8_t req[7];
    put_be32(req, 3);
    memcpy(req + 4, "big", 3);
    /* Take 1 MiB of the 8 MiB answer, then reset. */
    uint8_t *in = malloc(1 << 20);
    assert_non_null(in);
    assert_int_equal(wt_exchange(fd, req, sizeof(req), in, 1 << 20, WT_TIMEOUT_MS), 0);
    reset(fd);

    assert_true(wt_wait_count(&wt_counts.closed, 1, WT_TIMEOUT_MS));
    long err = atomic_load(&wt_counts.last_err);
    assert_true(err == WEFT_ECONNRESET || err == WEFT_EPIPE);
    assert_int_equal(atomic_load(&write_rc), 0);
    assert_true(wt_wait_for(wt_buffers_back, s.engine, WT_TIMEOUT_MS));
    weft_loop_stats t = wt_stats(s.engine);
    assert_true(t.bytes_out < BIG_FRAME);
    assert_int_equal(t.buffers_out, 0); /* the rest of the answer was dropped */
    printf("reset mid-write: an %zu-byte answer, 1 MiB read, then RST: closed with %s after "
           "%llu bytes out\n",
           BIG_FRAME + 4, weft_err_name((int)err), (unsigned long long)t.bytes_out);
    lf_echo_check(neighbour, 70000, 5);
    wt_close(neighbour);
    assert_true(wt_wait_count(&wt_counts.closed, 2, WT_TIMEOUT_MS));
    wt_server_stop(&s);
    free(in);
}

/* ---- half-close ---- */

static void test_half_close_still_gets_a_large_answer(void **state)
{
    (void)state;
    reset_state();
    weft_config cfg;
    base_config(&cfg, big_answer, 1);
    lf_config(&cfg.codec);
    cfg.write_high_water = 256 * 1024; /* the EOF finds the connection paused */
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), 0);
    int fd = wt_connect_tcp(s.port);
    assert_true(fd >= 0);

    /* Two small frames and the big request, then "no more from me". */
    uint8_t req[3 * 7];
    for (int i = 0; i < 3; i++) {
        put_be32(req + 7 * i, 3);
        memcpy(req + 7 * i + 4, i < 2 ? "abc" : "big", 3);
    }
    assert_int_equal(wt_send_all(fd, req, sizeof(req), WT_TIMEOUT_MS), 0);
    assert_int_equal(wt_shutdown_wr(fd), 0);

    size_t want = 2 * 7 + 4 + BIG_FRAME;
    uint8_t *in = malloc(want);
    uint8_t *big = malloc(BIG_FRAME);
    assert_non_null(in);
    assert_non_null(big);
    wt_sleep_ms(100); /* let the EOF arrive while the answer is queued */
    assert_int_equal(wt_recv_exact(fd, in, want, WT_TIMEOUT_MS), 0);
    assert_memory_equal(in, req, 14);
    wt_fill(big, BIG_FRAME, 9);
    uint8_t head[4];
    put_be32(head, (uint32_t)BIG_FRAME);
    assert_memory_equal(in + 14, head, 4);
    assert_memory_equal(in + 18, big, BIG_FRAME);
    assert_int_equal(wt_recv_eof(fd, WT_TIMEOUT_MS), 0);
    assert_true(wt_wait_count(&wt_counts.closed, 1, WT_TIMEOUT_MS));
    assert_int_equal(atomic_load(&wt_counts.last_err), 0);
    printf("half-close: 3 requests then SHUT_WR; all %zu answer bytes arrived, then EOF; "
           "closed with %s\n",
           want, weft_err_name((int)atomic_load(&wt_counts.last_err)));
    wt_close(fd);
    wt_server_stop(&s);
    free(in);
    free(big);
}

/* ---- bad frames for every codec ---- */

/* Echoes each decoded frame as it is, without re-framing, so the expected echo is easy to
 * state for every codec. */
static weft_action echo_raw_frames(weft_conn *c)
{
    const uint8_t *f;
    size_t len;
    while (weft_conn_next_frame(c, &f, &len) == 1) {
        if (weft_conn_write(c, f, len) != 0)
            return WEFT_ACTION_CLOSE;
    }
    return WEFT_ACTION_NONE;
}

typedef struct bad_case {
    const char *name;
    weft_codec_config codec;
    size_t max_inbound; /* 0: the default */
    const uint8_t *good;
    size_t good_len;
    const uint8_t *good_back; /* what a good frame comes back as */
    size_t good_back_len;
    const uint8_t *bad;
    size_t bad_len;
    int err;  /* the close error; 0 when the bytes are all valid frames */
    int err2; /* another acceptable one (random garbage), or 0 */
} bad_case;

/* Sends everything, or up to the point where the server cut the connection. */
static void send_until_cut(int fd, const uint8_t *p, size_t n)
{
    size_t sent = 0;
    int64_t end = wt_now_ms() + WT_TIMEOUT_MS;
    while (sent < n && wt_now_ms() < end) {
        ssize_t w = wt_send_now(fd, p + sent, n - sent);
        if (w > 0) {
            sent += (size_t)w;
            continue;
        }
        if (w < 0 && wt_sock_errno() != EAGAIN && wt_sock_errno() != EINTR)
            return;
        /* Full: the server may have stopped reading because it is closing; drain our
         * side so its flush can finish. */
        uint8_t sink[4096];
        ssize_t r = wt_recv_now(fd, sink, sizeof(sink));
        if (r == 0)
            return;
        struct pollfd pf = {fd, POLLOUT | POLLIN, 0};
        (void)wt_poll(&pf, 1, 10);
    }
}

/* Reads until EOF or reset; returns the bytes read (into out, up to cap). */
static size_t read_to_end(int fd, uint8_t *out, size_t cap)
{
    size_t got = 0;
    int64_t end = wt_now_ms() + WT_TIMEOUT_MS;
    for (;;) {
        assert_true(wt_now_ms() < end);
        struct pollfd pf = {fd, POLLIN, 0};
        (void)wt_poll(&pf, 1, 50);
        uint8_t sink[16384];
        ssize_t r = wt_recv_now(fd, sink, sizeof(sink));
        if (r == 0 || (r < 0 && wt_sock_errno() != EAGAIN && wt_sock_errno() != EINTR))
            return got;
        if (r > 0) {
            size_t k = (size_t)r;
            if (got + k > cap)
                k = cap > got ? cap - got : 0;
            memcpy(out + got, sink, k);
            got += (size_t)r;
        }
    }
}

static void run_bad_case(const bad_case *bc)
{
    reset_state();
    weft_config cfg;
    base_config(&cfg, echo_raw_frames, 1);
    cfg.codec = bc->codec;
    if (bc->max_inbound > 0)
        cfg.max_inbound = bc->max_inbound;
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), 0);
    int neighbour = wt_connect_tcp(s.port);
    int bad = wt_connect_tcp(s.port);
    assert_true(neighbour >= 0);
    assert_true(bad >= 0);
    assert_true(wt_wait_count(&wt_counts.opened, 2, WT_TIMEOUT_MS));
    uint8_t in[256];
    assert_true(bc->good_back_len <= sizeof(in));
    assert_int_equal(
        wt_exchange(neighbour, bc->good, bc->good_len, in, bc->good_back_len, WT_TIMEOUT_MS), 0);
    assert_memory_equal(in, bc->good_back, bc->good_back_len);

    send_until_cut(bad, bc->bad, bc->bad_len);
    if (bc->err != 0) {
        /* The server closes this connection, with the codec's reason. */
        assert_true(wt_wait_count(&wt_counts.closed, 1, WT_TIMEOUT_MS));
        long err = atomic_load(&wt_counts.last_err);
        if (err != bc->err && err != bc->err2)
            fail_msg("%s: closed with %s, want %s", bc->name, weft_err_name((int)err),
                     weft_err_name(bc->err));
        uint8_t sink[1];
        (void)read_to_end(bad, sink, 0);
    } else {
        /* Every byte was a valid frame: they all come back, the connection stays. */
        uint8_t *back = malloc(bc->bad_len);
        assert_non_null(back);
        assert_int_equal(wt_recv_exact(bad, back, bc->bad_len, WT_TIMEOUT_MS), 0);
        assert_memory_equal(back, bc->bad, bc->bad_len);
        free(back);
        assert_int_equal(atomic_load(&wt_counts.closed), 0);
    }
    /* Whatever happened to it, the neighbour on the same loop goes on. */
    assert_int_equal(
        wt_exchange(neighbour, bc->good, bc->good_len, in, bc->good_back_len, WT_TIMEOUT_MS), 0);
    assert_memory_equal(in, bc->good_back, bc->good_back_len);
    weft_loop_stats t = wt_stats(s.engine);
    assert_int_equal(t.live, bc->err != 0 ? 1 : 2);
    printf("%-28s %6zu bad bytes: %s; frames %llu, decode errors %llu; neighbour fine\n", bc->name,
           bc->bad_len,
           bc->err != 0 ? weft_err_name((int)atomic_load(&wt_counts.last_err))
                        : "all valid, still open",
           (unsigned long long)t.frames, (unsigned long long)t.decode_errors);
    wt_close(neighbour);
    wt_close(bad);
    assert_true(wt_wait_count(&wt_counts.closed, 2, WT_TIMEOUT_MS));
    assert_int_equal(atomic_load(&wt_counts.closed_err), bc->err != 0 ? 1 : 0);
    wt_server_stop(&s);
}

static weft_codec_config line_codec(void)
{
    weft_codec_config cc;
    weft_codec_config_init(&cc);
    cc.kind = WEFT_CODEC_LINE;
    cc.line.max_length = 64;
    cc.line.close_on_error = true;
    return cc;
}

static weft_codec_config delim_codec(void)
{
    weft_codec_config cc;
    weft_codec_config_init(&cc);
    cc.kind = WEFT_CODEC_DELIMITER;
    memcpy(cc.delimiter.delimiters[0].bytes, "\r\n\r\n", 4);
    cc.delimiter.delimiters[0].len = 4;
    cc.delimiter.count = 1;
    cc.delimiter.max_frame_length = 64;
    cc.delimiter.close_on_error = true;
    return cc;
}

static weft_codec_config fixed_codec(size_t n)
{
    weft_codec_config cc;
    weft_codec_config_init(&cc);
    cc.kind = WEFT_CODEC_FIXED_LENGTH;
    cc.fixed_length.frame_length = n;
    return cc;
}

static weft_codec_config lf_codec(size_t field, int64_t adj, size_t strip, uint64_t max)
{
    weft_codec_config cc;
    weft_codec_config_init(&cc);
    cc.kind = WEFT_CODEC_LENGTH_FIELD;
    cc.length_field.length_field_length = field;
    cc.length_field.length_adjustment = adj;
    cc.length_field.initial_bytes_to_strip = strip;
    cc.length_field.max_frame_length = max;
    return cc;
}

#define B(s) (const uint8_t *)(s), sizeof(s) - 1

static void test_oversized_and_corrupt_frames_every_codec(void **state)
{
    (void)state;
    static char long_line[200], long_delim[200];
    memset(long_line, 'L', sizeof(long_line));
    memset(long_delim, 'D', sizeof(long_delim));
    long_line[sizeof(long_line) - 1] = '\n';
    const bad_case cases[] = {
        /* A line past max_length (fail_fast off: reported when it ends). */
        {"line: too long", line_codec(), 0, B("hi\n"), B("hi"), (const uint8_t *)long_line,
         sizeof(long_line), WEFT_ETOOLONG, 0},
        /* No delimiter within max_frame_length (fail_fast: reported at once). */
        {"delimiter: too long", delim_codec(), 0, B("hi\r\n\r\n"), B("hi"),
         (const uint8_t *)long_delim, sizeof(long_delim), WEFT_ETOOLONG, 0},
        /* 8-byte field above INT64_MAX: a negative length. */
        {"length-field: negative", lf_codec(8, 0, 8, 1024), 0, B("\0\0\0\0\0\0\0\2hi"), B("hi"),
         B("\xff\xff\xff\xff\xff\xff\xff\xf0xxxx"), WEFT_ECORRUPT, 0},
        /* INT64_MAX plus an adjustment overflows 64 bits: too long, never wrapped. */
        {"length-field: overflow", lf_codec(8, 1, 8, 1024), 0, B("\0\0\0\0\0\0\0\1hi"), B("hi"),
         B("\x7f\xff\xff\xff\xff\xff\xff\xffxxxx"), WEFT_ETOOLONG, 0},
        /* An adjustment that makes the frame shorter than its header. */
        {"length-field: under header", lf_codec(2, -10, 2, 1024), 0, B("\0\x0chi"), B("hi"),
         B("\0\x04xxxx"), WEFT_ECORRUPT, 0},
        /* Stripping more than the whole frame. */
        {"length-field: strip > frame", lf_codec(1, 0, 3, 1024), 0, B("\x05hello"), B("llo"),
         B("\x01x"), WEFT_ECORRUPT, 0},
        /* A 3-byte field announcing 16 MiB with max 1 KiB. */
        {"length-field: 3-byte huge", lf_codec(3, 0, 3, 1024), 0, B("\0\0\2hi"), B("hi"),
         B("\xff\xff\xffxxxxxxxx"), WEFT_ETOOLONG, 0},
    };
    /* Every byte string is valid input for the fixed-length codec: it is in the garbage
     * test below, where it must frame and echo all of it. */
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        run_bad_case(&cases[i]);
}

#define GARBAGE_LEN (64 * 1024)

static void test_random_garbage_every_codec(void **state)
{
    (void)state;
    static uint8_t garbage[GARBAGE_LEN];
    wt_fill(garbage, sizeof(garbage), 20260101);
    static uint8_t fixed_good[16];
    memcpy(fixed_good, "0123456789abcdef", 16);
    const bad_case cases[] = {
        {"garbage: line", line_codec(), 0, B("hi\n"), B("hi"), garbage, GARBAGE_LEN, WEFT_ETOOLONG,
         0},
        {"garbage: delimiter", delim_codec(), 0, B("hi\r\n\r\n"), B("hi"), garbage, GARBAGE_LEN,
         WEFT_ETOOLONG, 0},
        {"garbage: fixed-length", fixed_codec(16), 0, fixed_good, 16, fixed_good, 16, garbage,
         GARBAGE_LEN, 0, 0},
        {"garbage: length-field 4", lf_codec(4, 0, 4, 4096), 0, B("\0\0\0\2hi"), B("hi"), garbage,
         GARBAGE_LEN, WEFT_ETOOLONG, WEFT_ECORRUPT},
        {"garbage: length-field 8", lf_codec(8, 0, 8, 4096), 0, B("\0\0\0\0\0\0\0\2hi"), B("hi"),
         garbage, GARBAGE_LEN, WEFT_ETOOLONG, WEFT_ECORRUPT},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        run_bad_case(&cases[i]);
}

/* ---- max_connections ---- */

#define MAXC 20

static bool live_is(weft_engine *e, uint64_t n)
{
    return wt_stats(e).live == n;
}

static bool live_15(void *arg)
{
    return live_is(arg, MAXC - 5);
}

static void test_max_connections_reached_and_released(void **state)
{
    (void)state;
    reset_state();
    weft_config cfg;
    base_config(&cfg, wt_echo_on_traffic, 2);
    cfg.max_connections = MAXC;
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), 0);
    int fds[MAXC];
    for (int i = 0; i < MAXC; i++) {
        fds[i] = wt_connect_tcp(s.port);
        assert_true(fds[i] >= 0);
        echo_check(fds[i], "in");
    }

    /* Ten more: each is accepted and closed at once, without a callback. */
    for (int i = 0; i < 10; i++) {
        int fd = wt_connect_tcp(s.port);
        assert_true(fd >= 0);
        int rc = wt_recv_eof(fd, WT_TIMEOUT_MS);
        assert_true(rc == 0 || rc == -ECONNRESET);
        wt_close(fd);
    }
    weft_stats st;
    weft_engine_get_stats(s.engine, &st, NULL);
    assert_int_equal(st.rejected, 10);
    assert_int_equal(st.total.live, MAXC);
    assert_int_equal(st.total.accepted, MAXC);
    assert_int_equal(atomic_load(&wt_counts.opened), MAXC);
    assert_int_equal(atomic_load(&wt_counts.closed), 0);
    for (int i = 0; i < MAXC; i++)
        echo_check(fds[i], "still");

    /* Five leave: five new ones get in, and the one after them does not. */
    for (int i = 0; i < 5; i++)
        wt_close(fds[i]);
    assert_true(wt_wait_for(live_15, s.engine, WT_TIMEOUT_MS));
    for (int i = 0; i < 5; i++) {
        fds[i] = wt_connect_tcp(s.port);
        assert_true(fds[i] >= 0);
        echo_check(fds[i], "new");
    }
    int extra = wt_connect_tcp(s.port);
    assert_true(extra >= 0);
    int rc = wt_recv_eof(extra, WT_TIMEOUT_MS);
    assert_true(rc == 0 || rc == -ECONNRESET);
    wt_close(extra);
    weft_engine_get_stats(s.engine, &st, NULL);
    assert_int_equal(st.rejected, 11);
    assert_int_equal(st.total.accepted, MAXC + 5);
    assert_int_equal(st.total.live, MAXC);
    printf("max_connections %d: %d accepted, 10 refused at once, 5 released and 5 accepted "
           "again, 1 more refused; rejected %llu\n",
           MAXC, MAXC, (unsigned long long)st.rejected);
    for (int i = 0; i < MAXC; i++)
        wt_close(fds[i]);
    assert_true(wt_wait_count(&wt_counts.closed, MAXC + 5, WT_TIMEOUT_MS));
    assert_int_equal(atomic_load(&wt_counts.closed_err), 0);
    wt_server_stop(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_non_reader_backpressure_then_hard_cap),
        cmocka_unit_test(test_reset_in_the_middle_of_a_frame),
        cmocka_unit_test(test_reset_in_the_middle_of_a_large_write),
        cmocka_unit_test(test_half_close_still_gets_a_large_answer),
        cmocka_unit_test(test_oversized_and_corrupt_frames_every_codec),
        cmocka_unit_test(test_random_garbage_every_codec),
        cmocka_unit_test(test_max_connections_reached_and_released),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
