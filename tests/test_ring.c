/* Inbound buffer (weft__ring): every test builds a buffer into a known shape (consumed space
 * in front, nearly full, big but almost empty), does one thing to it and checks the bytes and
 * the bookkeeping. The growth tests feed large amounts the way the connection layer does and
 * count, through the pool's statistics, the bytes copied and the resizes it cost: n bytes in
 * k reads must cost O(n), however large k is. The last two run thousands of random
 * operations against a plain byte array that holds what the buffer should hold. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "ring.h"
#include "bufpool.h"
#include "weft/error.h"

#define NO_LIMIT ((size_t)64 << 20)

/* Byte i of a stream that never repeats within a ring's size. */
static uint8_t stream_byte(size_t i)
{
    return (uint8_t)((i * 2654435761u) >> 13);
}

static void fill_stream(uint8_t *p, size_t n, size_t from)
{
    for (size_t i = 0; i < n; i++)
        p[i] = stream_byte(from + i);
}

/* Appends n stream bytes starting at stream offset from. */
static void append_stream(weft__ring *r, weft__bufpool *pool, size_t from, size_t n)
{
    uint8_t *tmp = malloc(n ? n : 1);
    assert_non_null(tmp);
    fill_stream(tmp, n, from);
    assert_int_equal(weft__ring_append(r, pool, tmp, n, NO_LIMIT), 0);
    free(tmp);
}

/* Checks that r holds exactly want[0..n), as one span. */
static void assert_holds(weft__ring *r, const uint8_t *want, size_t n)
{
    assert_int_equal(weft__ring_len(r), n);
    uint8_t *p = weft__ring_linearize(r);
    if (n == 0) {
        assert_null(p);
        return;
    }
    assert_non_null(p);
    assert_ptr_equal(p, r->buf + r->head);
    assert_true((size_t)r->head + r->len <= r->cap);
    assert_memory_equal(p, want, n);
}

/* Checks that r holds stream bytes [from, from + n). */
static void assert_holds_stream(weft__ring *r, size_t from, size_t n)
{
    uint8_t *want = malloc(n ? n : 1);
    assert_non_null(want);
    fill_stream(want, n, from);
    assert_holds(r, want, n);
    free(want);
}

static weft__bufpool_stats stats_of(const weft__bufpool *pool)
{
    weft__bufpool_stats st;
    weft__bufpool_get_stats(pool, &st);
    return st;
}

static void test_empty_ring_holds_no_memory(void **state)
{
    (void)state;
    weft__ring r = {0};

    assert_int_equal(weft__ring_len(&r), 0);
    assert_null(weft__ring_linearize(&r));
    assert_int_equal(weft__ring_append(&r, NULL, "x", 0, NO_LIMIT), 0);

    assert_null(r.buf);
    assert_int_equal(r.cap, 0);
}

static void test_append_and_consume(void **state)
{
    (void)state;
    weft__ring r = {0};

    assert_int_equal(weft__ring_append(&r, NULL, "hello, ", 7, NO_LIMIT), 0);
    assert_int_equal(weft__ring_append(&r, NULL, "world", 5, NO_LIMIT), 0);
    assert_holds(&r, (const uint8_t *)"hello, world", 12);
    assert_int_equal(r.cap, 4096);

    weft__ring_consume(&r, NULL, 7, 0);
    assert_holds(&r, (const uint8_t *)"world", 5);

    weft__ring_consume(&r, NULL, 5, 0);
    assert_int_equal(weft__ring_len(&r), 0);
    assert_null(r.buf); /* emptied: the buffer went back */
}

static void test_linearize_moves_nothing(void **state)
{
    (void)state;
    weft__ring r = {0};
    append_stream(&r, NULL, 0, 1000);
    weft__ring_consume(&r, NULL, 100, 1);

    uint8_t *p = weft__ring_linearize(&r);

    assert_ptr_equal(p, r.buf + 100);
    assert_int_equal(r.head, 100);
    assert_holds_stream(&r, 100, 900);
    weft__ring_release(&r, NULL);
}

static void test_consumed_space_is_reclaimed_by_moving_little(void **state)
{
    (void)state;
    weft__bufpool *pool;
    assert_int_equal(weft__bufpool_create(NULL, &pool), 0);
    weft__ring r = {0};

    /* 3000 in, 2500 out: 500 bytes at [2500, 3000). 3000 more do not fit behind them, but
     * moving the 500 to the front (less than the 2500 it frees) makes room. */
    append_stream(&r, pool, 0, 3000);
    weft__ring_consume(&r, pool, 2500, 0);
    append_stream(&r, pool, 3000, 3000);

    assert_int_equal(r.cap, 4096);
    assert_int_equal(r.head, 0);
    assert_holds_stream(&r, 2500, 3500);
    assert_int_equal(stats_of(pool).copied_bytes, 500);
    assert_int_equal(stats_of(pool).resizes, 0);
    weft__ring_release(&r, pool);
    weft__bufpool_destroy(pool);
}

static void test_moving_more_than_it_reclaims_grows_instead(void **state)
{
    (void)state;
    weft__bufpool *pool;
    assert_int_equal(weft__bufpool_create(NULL, &pool), 0);
    weft__ring r = {0};

    /* 3900 held behind 100 consumed: moving them would copy 3900 bytes to win 100. */
    append_stream(&r, pool, 0, 4000);
    weft__ring_consume(&r, pool, 100, 0);
    append_stream(&r, pool, 4000, 150);

    assert_int_equal(r.cap, 8192);
    assert_int_equal(r.head, 0);
    assert_holds_stream(&r, 100, 4050);
    weft__bufpool_stats st = stats_of(pool);
    assert_int_equal(st.copied_bytes, 3900); /* once, into the new buffer */
    assert_int_equal(st.outstanding, 1);
    assert_int_equal(st.out_bytes, 8192);
    weft__ring_release(&r, pool);
    weft__bufpool_destroy(pool);
}

static void test_reserve_commit_on_empty_ring(void **state)
{
    (void)state;
    weft__ring r = {0};
    size_t room;

    uint8_t *p = weft__ring_reserve(&r, NULL, 100, NO_LIMIT, &room);

    assert_non_null(p);
    assert_true(room >= 100);
    assert_int_equal(weft__ring_len(&r), 0); /* reserved bytes do not count yet */
    memcpy(p, "abc", 3);
    weft__ring_commit(&r, 3);
    assert_holds(&r, (const uint8_t *)"abc", 3);
    weft__ring_release(&r, NULL);
}

static void test_reserve_brings_bytes_to_the_front(void **state)
{
    (void)state;
    weft__ring r = {0};
    size_t room;
    /* 100 bytes at [3900, 4000): only 96 free after them, 3996 in all. */
    append_stream(&r, NULL, 0, 4000);
    weft__ring_consume(&r, NULL, 3900, 1);

    uint8_t *p = weft__ring_reserve(&r, NULL, 1000, NO_LIMIT, &room);

    assert_int_equal(r.cap, 4096); /* room enough in all: no new buffer */
    assert_int_equal(r.head, 0);
    assert_ptr_equal(p, r.buf + 100);
    assert_int_equal(room, 4096 - 100);
    fill_stream(p, 1000, 4000);
    weft__ring_commit(&r, 1000);
    assert_holds_stream(&r, 3900, 1100);
    weft__ring_release(&r, NULL);
}

static void test_reserve_grows_and_respects_limit(void **state)
{
    (void)state;
    weft__ring r = {0};
    size_t room;
    append_stream(&r, NULL, 0, 4000);

    /* Growing: the room offered never goes past the limit. */
    uint8_t *p = weft__ring_reserve(&r, NULL, 4096, 6000, &room);
    assert_non_null(p);
    assert_true(r.cap >= 6000);
    assert_int_equal(room, 2000);
    fill_stream(p, 2000, 4000);
    weft__ring_commit(&r, 2000);
    assert_holds_stream(&r, 0, 6000);

    /* At the limit: nothing more, and nothing changed. */
    uint32_t cap = r.cap;
    assert_null(weft__ring_reserve(&r, NULL, 1, 6000, &room));
    assert_int_equal(room, 0);
    assert_int_equal(r.cap, cap);
    assert_holds_stream(&r, 0, 6000);
    weft__ring_release(&r, NULL);
}

static void test_consume_to_empty_releases_unless_kept(void **state)
{
    (void)state;
    weft__bufpool *pool;
    assert_int_equal(weft__bufpool_create(NULL, &pool), 0);
    weft__bufpool_stats st;
    weft__ring r = {0};

    append_stream(&r, pool, 0, 100);
    weft__ring_consume(&r, pool, 100, 1);
    st = stats_of(pool);
    assert_non_null(r.buf); /* kept: a span handed out may still point into it */
    assert_int_equal(st.outstanding, 1);
    assert_int_equal(r.head, 0);

    append_stream(&r, pool, 100, 50);
    assert_holds_stream(&r, 100, 50);
    weft__ring_consume(&r, pool, 50, 0);
    st = stats_of(pool);
    assert_null(r.buf);
    assert_int_equal(r.cap, 0);
    assert_int_equal(st.outstanding, 0);
    assert_int_equal(st.cached_bytes, 4096); /* back in the pool for the next ring */

    append_stream(&r, pool, 0, 10);
    assert_int_equal(stats_of(pool).hits, 1);
    weft__ring_release(&r, pool);
    weft__bufpool_destroy(pool);
}

static void test_consume_never_shrinks(void **state)
{
    (void)state;
    weft__bufpool *pool;
    assert_int_equal(weft__bufpool_create(NULL, &pool), 0);
    weft__ring r = {0};
    append_stream(&r, pool, 0, 256 * 1024);
    assert_int_equal(r.cap, 256 * 1024);

    /* Whatever is left and whether kept or not: consuming only drops bytes. A frame still
     * arriving must not be moved to a small buffer and grown back, read after read. */
    weft__ring_consume(&r, pool, 250 * 1024, 0);
    weft__ring_consume(&r, pool, 1, 1);
    assert_int_equal(r.cap, 256 * 1024);
    assert_holds_stream(&r, 250 * 1024 + 1, 6 * 1024 - 1);
    assert_int_equal(stats_of(pool).copied_bytes, 0);
    weft__ring_release(&r, pool);
    weft__bufpool_destroy(pool);
}

static void test_big_buffer_holding_little_shrinks(void **state)
{
    (void)state;
    weft__bufpool *pool;
    assert_int_equal(weft__bufpool_create(NULL, &pool), 0);
    weft__ring r = {0};
    append_stream(&r, pool, 0, 256 * 1024);
    weft__ring_consume(&r, pool, 250 * 1024 + 1, 0);

    /* 6 KiB in 256 KiB is under an eighth: it moves to a buffer twice its size. */
    weft__ring_shrink(&r, pool);
    assert_int_equal(r.cap, 16 * 1024);
    assert_int_equal(r.head, 0);
    assert_holds_stream(&r, 250 * 1024 + 1, 6 * 1024 - 1);

    weft__bufpool_stats st = stats_of(pool);
    assert_int_equal(st.outstanding, 1);
    assert_int_equal(st.out_bytes, r.cap);
    assert_int_equal(st.copied_bytes, 6 * 1024 - 1);

    /* Small already: nothing to do. */
    weft__ring_shrink(&r, pool);
    assert_int_equal(r.cap, 16 * 1024);
    weft__ring_release(&r, pool);
    weft__bufpool_destroy(pool);
}

static void test_big_buffer_its_frame_will_fill_stays(void **state)
{
    (void)state;
    weft__bufpool *pool;
    assert_int_equal(weft__bufpool_create(NULL, &pool), 0);
    weft__ring r = {0};
    append_stream(&r, pool, 0, 256 * 1024);
    weft__ring_consume(&r, pool, 250 * 1024, 0);

    /* 6 KiB held, but they start a frame of 200 KiB: moving them out now would only mean
     * growing back. */
    weft__ring_set_goal(&r, 200 * 1024);
    weft__ring_shrink(&r, pool);
    assert_int_equal(r.cap, 256 * 1024);

    /* A frame of 20 KiB would leave it mostly unused: it moves, to a buffer that fits the
     * frame. */
    weft__ring_set_goal(&r, 20 * 1024);
    weft__ring_shrink(&r, pool);
    assert_int_equal(r.cap, 32 * 1024);
    assert_holds_stream(&r, 250 * 1024, 6 * 1024);
    weft__ring_release(&r, pool);
    weft__bufpool_destroy(pool);
}

static void test_half_full_big_buffer_stays(void **state)
{
    (void)state;
    weft__ring r = {0};
    append_stream(&r, NULL, 0, 128 * 1024);
    weft__ring_consume(&r, NULL, 64 * 1024, 0);
    weft__ring_shrink(&r, NULL);
    assert_int_equal(r.cap, 128 * 1024); /* half full: moving would buy nothing */
    assert_holds_stream(&r, 64 * 1024, 64 * 1024);
    weft__ring_release(&r, NULL);
}

/* ---- growth: what n bytes cost however they arrive ---- */

/* A pool whose classes go up to 64 MiB: every growth is then a copy into a new buffer,
 * the worst case (mappings above the classes grow in place without one). */
static weft__bufpool *copying_pool(void)
{
    weft__bufpool_config cfg;
    weft__bufpool_config_init(&cfg);
    cfg.max_pooled_size = (size_t)64 << 20;
    weft__bufpool *pool;
    assert_int_equal(weft__bufpool_create(&cfg, &pool), 0);
    return pool;
}

/* Reads n bytes into r as the connection layer does (reserve at most want, commit what a
 * read of at most chunk bytes brought), optionally consuming `eat` bytes after each read as
 * a codec making progress would. Returns the number of reads. */
static size_t read_into(weft__ring *r, weft__bufpool *pool, size_t n, size_t chunk, size_t eat,
                        int touch)
{
    size_t reads = 0;
    for (size_t got = 0; got < n; reads++) {
        size_t want = r->len < 65536 ? r->len : 65536;
        if (want < 4096)
            want = 4096;
        if (r->goal > r->len && r->goal - r->len < want)
            want = r->goal - r->len;
        size_t room;
        uint8_t *p = weft__ring_reserve(r, pool, want, WEFT__RING_MAX, &room);
        assert_non_null(p);
        assert_true(room >= want);
        size_t k = n - got < chunk ? n - got : chunk;
        if (k > room)
            k = room;
        if (touch)
            fill_stream(p, k, got);
        weft__ring_commit(r, k);
        got += k;
        if (eat > 0 && r->len > eat) {
            weft__ring_consume(r, pool, eat, 0);
            weft__ring_shrink(r, pool);
        }
    }
    return reads;
}

static void test_n_bytes_in_small_reads_copy_o_of_n(void **state)
{
    (void)state;
    const size_t n = (size_t)48 << 20;
    /* Reads of 1 KiB, 4 KiB and 64 KiB: the bytes copied to grow never depend on how many
     * reads it took, only on n (doubling: less than twice n in all). */
    const size_t chunks[] = {1024, 4096, 65536};
    for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
        weft__bufpool *pool = copying_pool();
        weft__ring r = {0};
        size_t reads = read_into(&r, pool, n, chunks[i], 0, i == 0);
        weft__bufpool_stats st = stats_of(pool);
        assert_true(reads >= n / chunks[i]);
        assert_true(st.copied_bytes <= 2 * n);
        assert_true(st.resizes <= 16); /* 4 KiB doubling to 64 MiB is 14 steps */
        assert_true(r.cap < 2 * n);
        if (i == 0)
            assert_holds_stream(&r, 0, n);
        weft__ring_release(&r, pool);
        weft__bufpool_destroy(pool);
    }
}

static void test_progress_by_small_bites_stays_linear(void **state)
{
    (void)state;
    /* A codec that takes a few bytes after every read (the held part never shrinks to an
     * eighth): the front is reclaimed only when that moves less than it frees, so copies stay
     * a small multiple of what arrived. */
    const size_t n = (size_t)16 << 20;
    weft__bufpool *pool = copying_pool();
    weft__ring r = {0};
    read_into(&r, pool, n, 4096, 100, 0);
    weft__bufpool_stats st = stats_of(pool);
    assert_true(st.copied_bytes <= 2 * n);
    weft__ring_release(&r, pool);
    weft__bufpool_destroy(pool);
}

static void test_pipelined_frames_with_shrinks_stay_linear(void **state)
{
    (void)state;
    /* Frames of 300 KiB back to back in 64 KiB reads; after each read what was consumed is
     * dropped and the buffer may shrink (progress was made). Each frame costs a bounded
     * multiple of its size, not of what the connection moved before. */
    const size_t frame = 300 * 1024, frames = 64;
    weft__bufpool *pool = copying_pool();
    weft__ring r = {0};
    size_t in_frame = 0;
    for (size_t got = 0; got < frame * frames;) {
        size_t room;
        uint8_t *p = weft__ring_reserve(&r, pool, 4096, WEFT__RING_MAX, &room);
        assert_non_null(p);
        size_t k = room < 65536 ? room : 65536;
        weft__ring_commit(&r, k);
        got += k;
        in_frame += k;
        if (in_frame >= frame) { /* a frame is complete: it is consumed */
            weft__ring_consume(&r, pool, r.len - (in_frame - frame), 0);
            weft__ring_shrink(&r, pool);
            in_frame -= frame;
        }
    }
    assert_true(stats_of(pool).copied_bytes <= 2 * frame * frames);
    weft__ring_release(&r, pool);
    weft__bufpool_destroy(pool);
}

static void test_goal_makes_the_last_step_land_on_it(void **state)
{
    (void)state;
    /* A 256 MiB frame and its 4-byte header, declared after the first read: the buffer
     * ends as big as the frame (in whole huge pages), not at the next power of two, and the
     * frame's bytes are never all reserved at once. The bytes are not written: the pages
     * are never touched, so this costs no memory. The pool reserves room for the frame, as
     * a loop does for max_inbound, so the mapping grows in place. */
    const size_t total = ((size_t)256 << 20) + 4;
    weft__bufpool_config cfg;
    weft__bufpool_config_init(&cfg);
    cfg.reserve_size = total;
    weft__bufpool *pool;
    assert_int_equal(weft__bufpool_create(&cfg, &pool), 0);
    weft__ring r = {0};
    read_into(&r, pool, 65536, 65536, 0, 0);
    weft__ring_set_goal(&r, total);
    size_t peak_ahead = 0; /* most capacity ever held beyond the bytes that arrived */
    while (r.len < total) {
        size_t before = r.len;
        read_into(&r, pool, total - r.len < 65536 ? total - r.len : 65536, 65536, 0, 0);
        assert_true(r.len > before);
        if (r.cap - r.len > peak_ahead)
            peak_ahead = r.cap - r.len;
        /* Reserved at most what arrived and a little more (2.5x at worst), never the
         * declared size. */
        assert_true(r.cap <= 5 * (size_t)r.len / 2 + 65536);
    }
    assert_true(r.cap >= total && r.cap < total + ((size_t)2 << 20));
    weft__bufpool_stats st = stats_of(pool);
    assert_true(st.resizes <= 20);
    assert_true(st.copied_bytes <= (size_t)2 << 20); /* only the pooled start is copied */
    assert_int_equal(st.maps, 1);                    /* one mapping, grown in place */
    assert_true(peak_ahead < total);
    weft__ring_release(&r, pool);
    assert_int_equal(stats_of(pool).mapped_bytes, 0);
    weft__bufpool_destroy(pool);
}

static void test_moving_goal_still_grows_geometrically(void **state)
{
    (void)state;
    /* A codec that knows only where the next part ends (a RESP bulk in a long command)
     * moves the goal 1 MiB further each time it is reached. Growing to each goal exactly
     * would copy the whole buffer once per part; growth stays geometric instead. */
    const size_t part = (size_t)1 << 20, parts = 48;
    weft__bufpool *pool = copying_pool();
    weft__ring r = {0};
    for (size_t i = 1; i <= parts; i++) {
        weft__ring_set_goal(&r, i * part + 10);
        read_into(&r, pool, i * part + 10 - r.len, 65536, 0, 0);
    }
    weft__bufpool_stats st = stats_of(pool);
    assert_true(st.resizes <= 24);
    assert_true(st.copied_bytes <= 3 * parts * part);
    weft__ring_release(&r, pool);
    weft__bufpool_destroy(pool);
}

static void test_goal_is_counted_from_the_first_held_byte(void **state)
{
    (void)state;
    weft__ring r = {0};
    append_stream(&r, NULL, 0, 100);
    weft__ring_set_goal(&r, 5000);
    weft__ring_consume(&r, NULL, 40, 0);
    assert_int_equal(r.goal, 4960);
    weft__ring_consume(&r, NULL, 60, 1);
    assert_int_equal(r.goal, 0);
    weft__ring_set_goal(&r, (size_t)8 << 30); /* past what a ring holds */
    assert_int_equal(r.goal, WEFT__RING_MAX);
    weft__ring_release(&r, NULL);
    assert_int_equal(r.goal, 0);
}

static void test_append_over_limit_changes_nothing(void **state)
{
    (void)state;
    weft__ring r = {0};
    uint8_t data[5000];
    fill_stream(data, sizeof(data), 0);

    assert_int_equal(weft__ring_append(&r, NULL, data, 5000, 4999), WEFT_EOUTCAP);
    assert_null(r.buf);

    assert_int_equal(weft__ring_append(&r, NULL, data, 3000, 5000), 0);
    assert_int_equal(weft__ring_append(&r, NULL, data + 3000, 2001, 5000), WEFT_EOUTCAP);
    assert_holds(&r, data, 3000);
    assert_int_equal(weft__ring_append(&r, NULL, data + 3000, 2000, 5000), 0); /* exactly */
    assert_holds(&r, data, 5000);
    weft__ring_release(&r, NULL);
}

/* ---- random operation sequences against a model ---- */

static uint64_t rng_state;

static uint64_t rng(void)
{
    /* xorshift64*: fixed seed, so a failure replays. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

static size_t rng_below(size_t n)
{
    return n ? (size_t)(rng() % n) : 0;
}

/* Mostly small sizes, sometimes large, so the ring wraps, grows and shrinks. */
static size_t random_size(void)
{
    switch (rng_below(8)) {
    case 0:
        return rng_below(100 * 1024);
    case 1:
    case 2:
        return rng_below(9000);
    default:
        return rng_below(700);
    }
}

typedef struct model {
    uint8_t *bytes;
    size_t len;
    size_t next; /* stream offset of the next byte appended */
} model;

#define MODEL_LIMIT ((size_t)512 * 1024)

static void check_invariants(weft__ring *r, const model *m, weft__bufpool *pool)
{
    assert_int_equal(weft__ring_len(r), m->len);
    assert_true((size_t)r->head + r->len <= r->cap);
    if (r->cap == 0) {
        assert_null(r->buf);
    } else {
        assert_non_null(r->buf);
    }
    if (pool != NULL) {
        weft__bufpool_stats st;
        weft__bufpool_get_stats(pool, &st);
        assert_int_equal(st.outstanding, r->buf != NULL ? 1 : 0);
        assert_int_equal(st.out_bytes, r->cap);
    }
    assert_holds(r, m->bytes, m->len);
}

static void run_random_ops(weft__bufpool *pool, uint64_t seed, int nops)
{
    rng_state = seed;
    weft__ring r = {0};
    model m = {malloc(MODEL_LIMIT), 0, 0};
    uint8_t *tmp = malloc(MODEL_LIMIT);
    assert_non_null(m.bytes);
    assert_non_null(tmp);

    for (int op = 0; op < nops; op++) {
        switch (rng_below(11)) {
        case 0:
        case 1:
        case 2: { /* append, sometimes over the limit */
            size_t n = random_size();
            fill_stream(tmp, n, m.next);
            int rc = weft__ring_append(&r, pool, tmp, n, MODEL_LIMIT);
            if (m.len + n > MODEL_LIMIT) {
                assert_int_equal(rc, WEFT_EOUTCAP);
            } else {
                assert_int_equal(rc, 0);
                memcpy(m.bytes + m.len, tmp, n);
                m.len += n;
                m.next += n;
            }
            break;
        }
        case 3:
        case 4:
        case 5: { /* consume, with or without keeping the buffer */
            size_t n = rng_below(4) == 0 ? m.len : rng_below(m.len + 1);
            weft__ring_consume(&r, pool, n, (int)rng_below(2));
            memmove(m.bytes, m.bytes + n, m.len - n);
            m.len -= n;
            break;
        }
        case 6: { /* linearize */
            uint8_t *p = weft__ring_linearize(&r);
            if (m.len == 0) {
                assert_null(p);
            } else {
                assert_non_null(p);
                assert_memory_equal(p, m.bytes, m.len);
            }
            break;
        }
        case 7:
        case 8: { /* reserve, then commit part of the room */
            size_t want = random_size();
            size_t room;
            uint8_t *p = weft__ring_reserve(&r, pool, want, MODEL_LIMIT, &room);
            if (m.len >= MODEL_LIMIT) {
                assert_null(p);
                assert_int_equal(room, 0);
                break;
            }
            assert_non_null(p);
            size_t expect = want == 0 ? 1 : want;
            if (expect > MODEL_LIMIT - m.len)
                expect = MODEL_LIMIT - m.len;
            assert_true(room >= expect);
            assert_true(room <= MODEL_LIMIT - m.len);
            size_t n = rng_below(room + 1);
            fill_stream(p, n, m.next);
            weft__ring_commit(&r, n);
            fill_stream(m.bytes + m.len, n, m.next);
            m.len += n;
            m.next += n;
            break;
        }
        case 9: /* a frame was consumed: maybe shrink; or the codec names a goal */
            if (rng_below(2) == 0)
                weft__ring_shrink(&r, pool);
            else
                weft__ring_set_goal(&r, rng_below(3) == 0 ? 0 : m.len + random_size());
            break;
        default: /* occasionally drop everything */
            if (rng_below(8) == 0) {
                weft__ring_release(&r, pool);
                m.len = 0;
            }
            break;
        }
        check_invariants(&r, &m, pool);
    }
    weft__ring_release(&r, pool);
    if (pool != NULL) {
        weft__bufpool_stats st;
        weft__bufpool_get_stats(pool, &st);
        assert_int_equal(st.outstanding, 0);
        assert_int_equal(st.out_bytes, 0);
    }
    free(tmp);
    free(m.bytes);
}

static void test_random_ops_match_model_with_malloc(void **state)
{
    (void)state;
    run_random_ops(NULL, 0x9e3779b97f4a7c15ull, 6000);
}

static void test_random_ops_match_model_with_pool(void **state)
{
    (void)state;
    weft__bufpool *pool;
    assert_int_equal(weft__bufpool_create(NULL, &pool), 0);
    run_random_ops(pool, 0xdeadbeefcafef00dull, 6000);
    weft__bufpool_stats st;
    weft__bufpool_get_stats(pool, &st);
    assert_true(st.hits > 0); /* rings did reuse cached buffers */
    weft__bufpool_destroy(pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_ring_holds_no_memory),
        cmocka_unit_test(test_append_and_consume),
        cmocka_unit_test(test_linearize_moves_nothing),
        cmocka_unit_test(test_consumed_space_is_reclaimed_by_moving_little),
        cmocka_unit_test(test_moving_more_than_it_reclaims_grows_instead),
        cmocka_unit_test(test_reserve_commit_on_empty_ring),
        cmocka_unit_test(test_reserve_brings_bytes_to_the_front),
        cmocka_unit_test(test_reserve_grows_and_respects_limit),
        cmocka_unit_test(test_consume_to_empty_releases_unless_kept),
        cmocka_unit_test(test_consume_never_shrinks),
        cmocka_unit_test(test_big_buffer_holding_little_shrinks),
        cmocka_unit_test(test_big_buffer_its_frame_will_fill_stays),
        cmocka_unit_test(test_half_full_big_buffer_stays),
        cmocka_unit_test(test_append_over_limit_changes_nothing),
        cmocka_unit_test(test_n_bytes_in_small_reads_copy_o_of_n),
        cmocka_unit_test(test_progress_by_small_bites_stays_linear),
        cmocka_unit_test(test_pipelined_frames_with_shrinks_stay_linear),
        cmocka_unit_test(test_goal_makes_the_last_step_land_on_it),
        cmocka_unit_test(test_moving_goal_still_grows_geometrically),
        cmocka_unit_test(test_goal_is_counted_from_the_first_held_byte),
        cmocka_unit_test(test_random_ops_match_model_with_malloc),
        cmocka_unit_test(test_random_ops_match_model_with_pool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
