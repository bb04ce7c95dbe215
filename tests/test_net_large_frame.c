/* Large frames through the length-field codec: a 256 MiB frame arrives whole, and what
 * assembling it cost is linear in its size, checked by counting (the engine's
 * buffer_resizes and buffer_copied_bytes), not by timing it; a declared length takes memory
 * only as its bytes arrive; and when the frame is done the connection's buffers go back to
 * their idle size and the memory back to the system.
 *
 * The server answers each frame with its length as 8 big-endian bytes (all ones if a byte
 * it sampled was wrong). The client sends from one pattern of a size that is no power of
 * two, so a misplaced chunk shows.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define BIG_FRAME    ((size_t)256 << 20)
#define PATTERN_SIZE (((size_t)1 << 20) + 4093)
#define SAMPLE_STEP  4093u

/* Under ASan, checking the frame's bytes faults in its shadow (an eighth of the frame),
 * which stays after the frame's pages are gone: RSS is allowed that much more. */
#if defined(__SANITIZE_ADDRESS__)
#define SHADOW_KB (long)(BIG_FRAME / 8 >> 10)
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SHADOW_KB (long)(BIG_FRAME / 8 >> 10)
#endif
#endif
#ifndef SHADOW_KB
#define SHADOW_KB 0L
#endif
/* TSan's shadow of memory touched is four times its size. */
#if defined(__SANITIZE_THREAD__)
#define TSAN_FACTOR 5L
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TSAN_FACTOR 5L
#endif
#endif
#ifndef TSAN_FACTOR
#define TSAN_FACTOR 1L
#endif

/* On io_uring the loop's receive pool (uring_buffers of read_buffer_size bytes) is resident
 * once a large transfer cycled through it: a fixed cost of the loop, not of the frame. */
static long pool_kb(void)
{
    if (!wt_uring())
        return 0;
    weft_config cfg;
    weft_config_init(&cfg);
    return (long)((size_t)cfg.uring_buffers * cfg.read_buffer_size >> 10) * TSAN_FACTOR;
}

static uint8_t *pattern; /* byte i of every frame is pattern[i % PATTERN_SIZE] */
static _Atomic long frames_ok;
static _Atomic long frames_bad;

static int setup(void **state)
{
    (void)state;
    pattern = malloc(PATTERN_SIZE);
    if (pattern == NULL)
        return -1;
    wt_fill(pattern, PATTERN_SIZE, 13);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(pattern);
    return 0;
}

/* Checks one byte in every SAMPLE_STEP and the last 4 KiB whole: every page of a frame is
 * looked at, for the cost of a few reads per page. */
static bool frame_matches(const uint8_t *f, size_t len)
{
    for (size_t i = 0; i < len; i += SAMPLE_STEP) {
        if (f[i] != pattern[i % PATTERN_SIZE])
            return false;
    }
    for (size_t i = len > 4096 ? len - 4096 : 0; i < len; i++) {
        if (f[i] != pattern[i % PATTERN_SIZE])
            return false;
    }
    return true;
}

static weft_action on_frames(weft_conn *c)
{
    const uint8_t *f;
    size_t len;
    while (weft_conn_next_frame(c, &f, &len) == 1) {
        bool ok = frame_matches(f, len);
        atomic_fetch_add(ok ? &frames_ok : &frames_bad, 1);
        uint64_t answer = ok ? len : UINT64_MAX;
        uint8_t a[8];
        for (int i = 7; i >= 0; i--, answer >>= 8)
            a[i] = (uint8_t)answer;
        if (weft_conn_write(c, a, sizeof(a)) != 0)
            return WEFT_ACTION_CLOSE;
    }
    return WEFT_ACTION_NONE;
}

static void start(wt_server *s)
{
    atomic_store(&frames_ok, 0);
    atomic_store(&frames_bad, 0);
    weft_config cfg;
    wt_config(&cfg, on_frames, 1);
    cfg.codec.kind = WEFT_CODEC_LENGTH_FIELD;
    cfg.codec.length_field.length_field_length = 4;
    cfg.codec.length_field.initial_bytes_to_strip = 4;
    cfg.codec.length_field.max_frame_length = BIG_FRAME + 4;
    cfg.max_inbound = BIG_FRAME + ((size_t)1 << 20); /* the default 4 MiB would refuse it */
    assert_int_equal(wt_server_start(s, &cfg), 0);
}

static void send_header(int fd, size_t len)
{
    uint8_t h[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len};
    assert_int_equal(wt_send_all(fd, h, sizeof(h), WT_TIMEOUT_MS), 0);
}

/* Sends payload bytes [from, to) of a frame. */
static void send_payload(int fd, size_t from, size_t to, int timeout_ms)
{
    while (from < to) {
        size_t at = from % PATTERN_SIZE;
        size_t n = PATTERN_SIZE - at < to - from ? PATTERN_SIZE - at : to - from;
        assert_int_equal(wt_send_all(fd, pattern + at, n, timeout_ms), 0);
        from += n;
    }
}

static void expect_answer(int fd, size_t len, int timeout_ms)
{
    uint8_t a[8];
    assert_int_equal(wt_recv_exact(fd, a, sizeof(a), timeout_ms), 0);
    uint64_t got = 0;
    for (int i = 0; i < 8; i++)
        got = got << 8 | a[i];
    assert_int_equal(got, len);
}

typedef struct buffers_at_most {
    weft_engine *e;
    uint64_t out, bytes, cached;
} buffers_at_most;

static bool buffers_settled(void *arg)
{
    const buffers_at_most *w = arg;
    weft_loop_stats t = wt_stats(w->e);
    return t.buffers_out <= w->out && t.buffer_bytes <= w->bytes &&
           t.buffers_cached_bytes <= w->cached;
}

static bool wait_buffers(weft_engine *e, uint64_t out, uint64_t bytes, uint64_t cached)
{
    buffers_at_most w = {e, out, bytes, cached};
    return wt_wait_for(buffers_settled, &w, WT_TIMEOUT_MS);
}

typedef struct bytes_in_at_least {
    weft_engine *e;
    uint64_t n;
} bytes_in_at_least;

static bool bytes_arrived(void *arg)
{
    const bytes_in_at_least *w = arg;
    return wt_stats(w->e).bytes_in >= w->n;
}

/* The loop counts bytes in as it reads them and takes a partial frame's buffer a moment
 * later, when the codec has seen the frame is not whole: wait for both. */
typedef struct partial_frames {
    bytes_in_at_least in;
    uint64_t buffers;
} partial_frames;

static bool partial_frames_held(void *arg)
{
    const partial_frames *w = arg;
    weft_loop_stats t = wt_stats(w->in.e);
    return t.bytes_in >= w->in.n && t.buffers_out == w->buffers;
}

/* ---- one 256 MiB frame ---- */

static void test_256_mib_frame_arrives_whole_at_linear_cost(void **state)
{
    (void)state;
    wt_server s;
    start(&s);
    int fd = wt_connect_tcp(s.port);
    assert_true(fd >= 0);
    /* The idle connection holds no buffer; RSS before the frame. */
    assert_true(wait_buffers(s.engine, 0, 0, (uint64_t)2 << 20));
    weft_loop_stats before = wt_stats(s.engine);
    long rss_before = wt_rss_kb();

    send_header(fd, BIG_FRAME);
    send_payload(fd, 0, BIG_FRAME, 20 * WT_TIMEOUT_MS);
    expect_answer(fd, BIG_FRAME, 20 * WT_TIMEOUT_MS);
    long rss_peak = wt_rss_kb();

    weft_loop_stats after = wt_stats(s.engine);
    assert_int_equal(atomic_load(&frames_ok), 1);
    assert_int_equal(atomic_load(&frames_bad), 0);
    assert_int_equal(after.bytes_in - before.bytes_in, BIG_FRAME + 4);
    uint64_t resizes = after.buffer_resizes - before.buffer_resizes;
    uint64_t copied = after.buffer_copied_bytes - before.buffer_copied_bytes;
    print_message("256 MiB frame: %llu resizes, %llu bytes copied, RSS %ld -> %ld KiB\n",
                  (unsigned long long)resizes, (unsigned long long)copied, rss_before, rss_peak);
    /* Geometric growth: about log2(256 MiB / 64 KiB) resizes, whatever the number of reads
     * (thousands). Shrinking and growing back after each read, as before, took one per read
     * and copied the frame over and over: 25 s of CPU for 512 MiB. */
    assert_true(resizes <= 32);
    /* At most twice the frame even if every growth were a copy. In fact a loop's large
     * buffers reserve room for max_inbound and grow in place, so only the start, in the
     * pool's classes of up to 1 MiB, is ever copied. */
    assert_true(copied <= 2 * (uint64_t)BIG_FRAME);
    assert_true(copied < (uint64_t)4 << 20);

    /* Done: the connection holds no buffer again, the spare mapping is given back within
     * about a second, and with it the memory. */
    assert_true(wait_buffers(s.engine, 0, 0, (uint64_t)2 << 20));
    long rss_after = wt_rss_kb();
    print_message("RSS after: %ld KiB\n", rss_after);
    if (rss_before > 0 && rss_after > 0) {
        assert_true(rss_peak - rss_before >= (long)(BIG_FRAME >> 10) / 2);
        assert_true(rss_after - rss_before < 32 * 1024 + SHADOW_KB + pool_kb());
    }

    /* And the connection is as good as new: a small frame after it. */
    send_header(fd, 1000);
    send_payload(fd, 0, 1000, WT_TIMEOUT_MS);
    expect_answer(fd, 1000, WT_TIMEOUT_MS);
    wt_close(fd);
    wt_server_stop(&s);
}

/* ---- what a declared length takes ---- */

static void test_declared_length_takes_memory_only_as_bytes_arrive(void **state)
{
    (void)state;
    wt_server s;
    start(&s);
    enum { CONNS = 8 };
    int fds[CONNS];
    /* Each declares the largest frame allowed and sends 64 KiB of it. */
    for (int i = 0; i < CONNS; i++) {
        fds[i] = wt_connect_tcp(s.port);
        assert_true(fds[i] >= 0);
        send_header(fds[i], BIG_FRAME);
        send_payload(fds[i], 0, 64 * 1024, WT_TIMEOUT_MS);
    }
    bytes_in_at_least arrived = {s.engine, CONNS * (64 * 1024 + 4)};
    partial_frames held = {arrived, CONNS};
    (void)wt_wait_for(partial_frames_held, &held, WT_TIMEOUT_MS);
    weft_loop_stats t = wt_stats(s.engine);
    assert_true(t.bytes_in >= arrived.n);
    print_message("%d partial frames of 64 KiB: %llu buffers, %llu bytes\n", CONNS,
                  (unsigned long long)t.buffers_out, (unsigned long long)t.buffer_bytes);
    /* Reserving the declared size would be 2 GiB here. */
    assert_int_equal(t.buffers_out, CONNS);
    assert_true(t.buffer_bytes <= CONNS * (uint64_t)256 * 1024);

    /* One of them goes on to 4 MiB: its buffer follows what arrived, not the declaration. */
    send_payload(fds[0], 64 * 1024, 4u << 20, WT_TIMEOUT_MS);
    arrived.n += (4u << 20) - 64 * 1024;
    assert_true(wt_wait_for(bytes_arrived, &arrived, WT_TIMEOUT_MS));
    t = wt_stats(s.engine);
    assert_true(t.buffer_bytes <= (CONNS - 1) * (uint64_t)256 * 1024 + ((uint64_t)10 << 20));

    for (int i = 0; i < CONNS; i++)
        wt_close(fds[i]);
    assert_true(wait_buffers(s.engine, 0, 0, (uint64_t)2 << 20));
    assert_int_equal(atomic_load(&frames_ok) + atomic_load(&frames_bad), 0);
    wt_server_stop(&s);
}

/* ---- a big frame followed by the start of a small one ---- */

static void test_big_buffer_shrinks_once_its_frame_is_consumed(void **state)
{
    (void)state;
    wt_server s;
    start(&s);
    int fd = wt_connect_tcp(s.port);
    assert_true(fd >= 0);
    const size_t big = (size_t)32 << 20;

    /* The big frame and, behind it, 10 bytes of a 1000-byte one, in one stream: after the
     * big frame is handed out, 10 bytes wait in a buffer of 32 MiB. */
    send_header(fd, big);
    send_payload(fd, 0, big, 4 * WT_TIMEOUT_MS);
    send_header(fd, 1000);
    send_payload(fd, 0, 10, WT_TIMEOUT_MS);
    expect_answer(fd, big, 4 * WT_TIMEOUT_MS);

    /* Progress was made, so the buffer holding little moves to a small one. */
    assert_true(wait_buffers(s.engine, 1, 64 * 1024, UINT64_MAX));

    send_payload(fd, 10, 1000, WT_TIMEOUT_MS);
    expect_answer(fd, 1000, WT_TIMEOUT_MS);
    assert_int_equal(atomic_load(&frames_ok), 2);
    assert_true(wait_buffers(s.engine, 0, 0, (uint64_t)2 << 20));
    wt_close(fd);
    wt_server_stop(&s);
}

/* ---- the spare a big frame leaves, handed to a small one ---- */

static void test_small_frame_does_not_keep_a_big_spare(void **state)
{
    (void)state;
    wt_server s;
    start(&s);
    const size_t big = (size_t)32 << 20, small = (size_t)4 << 20;
    int a = wt_connect_tcp(s.port), b = wt_connect_tcp(s.port);
    assert_true(a >= 0 && b >= 0);

    /* a's frame leaves its 32 MiB mapping as the loop's spare; b, right after, starts a
     * 4 MiB frame and stalls halfway. The spare it may be handed is cut down to what its
     * frame needs instead of staying pinned while b takes its time. */
    send_header(a, big);
    send_payload(a, 0, big, 4 * WT_TIMEOUT_MS);
    expect_answer(a, big, 4 * WT_TIMEOUT_MS);
    bytes_in_at_least arrived = {s.engine, wt_stats(s.engine).bytes_in + 4 + small / 2};
    send_header(b, small);
    send_payload(b, 0, small / 2, WT_TIMEOUT_MS);
    assert_true(wt_wait_for(bytes_arrived, &arrived, WT_TIMEOUT_MS));
    wt_sleep_ms(50); /* the buffer figures are published as the loop goes to sleep */
    weft_loop_stats t = wt_stats(s.engine);
    print_message("half of a 4 MiB frame after a 32 MiB one: %llu buffers, %llu bytes\n",
                  (unsigned long long)t.buffers_out, (unsigned long long)t.buffer_bytes);
    assert_int_equal(t.buffers_out, 1);
    assert_true(t.buffer_bytes <= (uint64_t)8 << 20);

    send_payload(b, small / 2, small, WT_TIMEOUT_MS);
    expect_answer(b, small, WT_TIMEOUT_MS);
    assert_int_equal(atomic_load(&frames_ok), 2);
    assert_true(wait_buffers(s.engine, 0, 0, (uint64_t)2 << 20));
    wt_close(a);
    wt_close(b);
    wt_server_stop(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_256_mib_frame_arrives_whole_at_linear_cost),
        cmocka_unit_test(test_declared_length_takes_memory_only_as_bytes_arrive),
        cmocka_unit_test(test_big_buffer_shrinks_once_its_frame_is_consumed),
        cmocka_unit_test(test_small_frame_does_not_keep_a_big_spare),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
