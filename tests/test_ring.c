/* Ring buffer: every test builds a ring into a known shape (wrapped, nearly full, big but
 * almost empty), does one thing to it and checks the bytes and the bookkeeping. The last two
 * run thousands of random operations against a plain byte array that holds what the ring
 * should hold. */
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

/* Checks, through weft__ring_iov, that r holds exactly want[0..n). */
static void assert_holds(const weft__ring *r, const uint8_t *want, size_t n)
{
    assert_int_equal(weft__ring_len(r), n);
    struct iovec iov[2];
    int cnt = weft__ring_iov(r, iov);
    if (n == 0) {
        assert_int_equal(cnt, 0);
        return;
    }
    assert_true(cnt == 1 || cnt == 2);
    size_t off = 0;
    for (int i = 0; i < cnt; i++) {
        assert_true(iov[i].iov_len > 0);
        assert_true(off + iov[i].iov_len <= n);
        assert_memory_equal(iov[i].iov_base, want + off, iov[i].iov_len);
        off += iov[i].iov_len;
    }
    assert_int_equal(off, n);
}

/* Checks that r holds stream bytes [from, from + n). */
static void assert_holds_stream(const weft__ring *r, size_t from, size_t n)
{
    uint8_t *want = malloc(n ? n : 1);
    assert_non_null(want);
    fill_stream(want, n, from);
    assert_holds(r, want, n);
    free(want);
}

static int iov_count(const weft__ring *r)
{
    struct iovec iov[2];
    return weft__ring_iov(r, iov);
}

static void test_empty_ring_holds_no_memory(void **state)
{
    (void)state;
    weft__ring r = {0};

    assert_int_equal(weft__ring_len(&r), 0);
    assert_int_equal(iov_count(&r), 0);
    assert_null(weft__ring_linearize(&r));
    assert_int_equal(weft__ring_append(&r, NULL, "x", 0, NO_LIMIT), 0);

    assert_null(r.buf);
    assert_int_equal(r.cap, 0);
}

static void test_append_iov_consume(void **state)
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

static void test_wrap_around_keeps_order(void **state)
{
    (void)state;
    weft__ring r = {0};

    /* 3000 in, 2500 out: 500 bytes sit at [2500, 3000). 3000 more cannot fit after them. */
    append_stream(&r, NULL, 0, 3000);
    weft__ring_consume(&r, NULL, 2500, 0);
    append_stream(&r, NULL, 3000, 3000);

    assert_int_equal(r.cap, 4096); /* 3500 bytes fit: no growth, a wrap */
    struct iovec iov[2];
    assert_int_equal(weft__ring_iov(&r, iov), 2);
    assert_int_equal(iov[0].iov_len, 4096 - 2500);
    assert_int_equal(iov[1].iov_len, 3500 - (4096 - 2500));
    assert_holds_stream(&r, 2500, 3500);

    /* Consuming across the end of the buffer lands head in the wrapped part. */
    weft__ring_consume(&r, NULL, 2000, 0);
    assert_int_equal(iov_count(&r), 1);
    assert_holds_stream(&r, 4500, 1500);
    weft__ring_release(&r, NULL);
}

static void test_grow_from_wrapped_state(void **state)
{
    (void)state;
    weft__ring r = {0};
    append_stream(&r, NULL, 0, 4000);
    weft__ring_consume(&r, NULL, 3000, 0);
    append_stream(&r, NULL, 4000, 3000); /* wrapped, 4000 held in 4096 */
    assert_int_equal(iov_count(&r), 2);

    append_stream(&r, NULL, 7000, 5000); /* 9000 held: must grow */

    assert_true(r.cap >= 9000);
    assert_int_equal(r.cap & (r.cap - 1), 0);
    assert_int_equal(r.head, 0); /* growing moved the bytes to the front, in order */
    assert_int_equal(iov_count(&r), 1);
    assert_holds_stream(&r, 3000, 9000);
    weft__ring_release(&r, NULL);
}

static void test_linearize_unwrapped_moves_nothing(void **state)
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

static void test_linearize_short_wrap_by_memmove(void **state)
{
    (void)state;
    weft__ring r = {0};
    /* head 3900, 300 bytes held: 196 at the end, 104 at the front. 300 <= head, so the
     * wrapped part can move up and the first part down, without a rotation. */
    append_stream(&r, NULL, 0, 4000);
    weft__ring_consume(&r, NULL, 3900, 0);
    append_stream(&r, NULL, 4000, 200);
    assert_int_equal(r.head, 3900);
    assert_int_equal(iov_count(&r), 2);

    uint8_t *p = weft__ring_linearize(&r);

    assert_ptr_equal(p, r.buf);
    assert_int_equal(r.head, 0);
    uint8_t want[300];
    fill_stream(want, sizeof(want), 3900);
    assert_memory_equal(p, want, sizeof(want));
    assert_holds(&r, want, sizeof(want));
    weft__ring_release(&r, NULL);
}

static void test_linearize_long_wrap_by_rotation(void **state)
{
    (void)state;
    weft__ring r = {0};
    /* head 100, 4050 bytes held in 4096: the wrapped part overlaps where the first part
     * must go, so only the in-place rotation works. */
    append_stream(&r, NULL, 0, 4000);
    weft__ring_consume(&r, NULL, 100, 0);
    append_stream(&r, NULL, 4000, 150);
    assert_int_equal(r.head, 100);
    assert_int_equal(r.cap, 4096);
    assert_int_equal(iov_count(&r), 2);

    uint8_t *p = weft__ring_linearize(&r);

    assert_ptr_equal(p, r.buf);
    assert_int_equal(r.head, 0);
    assert_int_equal(r.cap, 4096); /* never allocates */
    uint8_t *want = malloc(4050);
    assert_non_null(want);
    fill_stream(want, 4050, 100);
    assert_memory_equal(p, want, 4050);
    free(want);
    weft__ring_release(&r, NULL);
}

static void test_linearize_full_wrapped_ring(void **state)
{
    (void)state;
    weft__ring r = {0};
    append_stream(&r, NULL, 0, 4096);
    weft__ring_consume(&r, NULL, 1, 0);
    append_stream(&r, NULL, 4096, 1); /* full, head 1 */
    assert_int_equal(r.cap, 4096);

    uint8_t *p = weft__ring_linearize(&r);

    uint8_t *want = malloc(4096);
    assert_non_null(want);
    fill_stream(want, 4096, 1);
    assert_memory_equal(p, want, 4096);
    free(want);
    weft__ring_release(&r, NULL);
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

static void test_reserve_on_wrapped_ring_makes_it_contiguous(void **state)
{
    (void)state;
    weft__ring r = {0};
    size_t room;
    append_stream(&r, NULL, 0, 4000);
    weft__ring_consume(&r, NULL, 3000, 1);
    append_stream(&r, NULL, 4000, 2000); /* 3000 held, wrapped */
    assert_int_equal(iov_count(&r), 2);

    uint8_t *p = weft__ring_reserve(&r, NULL, 500, NO_LIMIT, &room);

    assert_non_null(p);
    assert_int_equal(iov_count(&r), 1);
    assert_true(room >= 500);
    fill_stream(p, 500, 6000);
    weft__ring_commit(&r, 500);
    assert_holds_stream(&r, 3000, 3500);
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
    weft__bufpool_get_stats(pool, &st);
    assert_non_null(r.buf); /* kept: a span handed out may still point into it */
    assert_int_equal(st.outstanding, 1);
    assert_int_equal(r.head, 0);

    append_stream(&r, pool, 100, 50);
    assert_holds_stream(&r, 100, 50);
    weft__ring_consume(&r, pool, 50, 0);
    weft__bufpool_get_stats(pool, &st);
    assert_null(r.buf);
    assert_int_equal(r.cap, 0);
    assert_int_equal(st.outstanding, 0);
    assert_int_equal(st.cached_bytes, 4096); /* back in the pool for the next ring */

    append_stream(&r, pool, 0, 10);
    weft__bufpool_get_stats(pool, &st);
    assert_int_equal(st.hits, 1);
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
    assert_int_equal(r.cap, 256 * 1024);

    /* Kept: no shrinking, whatever is left. */
    weft__ring_consume(&r, pool, 250 * 1024, 1);
    assert_int_equal(r.cap, 256 * 1024);

    /* Not kept: 6 KiB in 256 KiB is under an eighth, so it moves to a small buffer. */
    weft__ring_consume(&r, pool, 1, 0);
    assert_true(r.cap < 64 * 1024);
    assert_true(r.cap >= weft__ring_len(&r));
    assert_holds_stream(&r, 250 * 1024 + 1, 6 * 1024 - 1);

    weft__bufpool_stats st;
    weft__bufpool_get_stats(pool, &st);
    assert_int_equal(st.outstanding, 1);
    assert_int_equal(st.out_bytes, r.cap);
    weft__ring_release(&r, pool);
    weft__bufpool_destroy(pool);
}

static void test_half_full_big_buffer_stays(void **state)
{
    (void)state;
    weft__ring r = {0};
    append_stream(&r, NULL, 0, 128 * 1024);
    weft__ring_consume(&r, NULL, 64 * 1024, 0);
    assert_int_equal(r.cap, 128 * 1024); /* half full: moving would buy nothing */
    assert_holds_stream(&r, 64 * 1024, 64 * 1024);
    weft__ring_release(&r, NULL);
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

static void check_invariants(const weft__ring *r, const model *m, weft__bufpool *pool)
{
    assert_int_equal(weft__ring_len(r), m->len);
    assert_true(r->len <= r->cap);
    if (r->cap == 0) {
        assert_null(r->buf);
    } else {
        assert_non_null(r->buf);
        assert_int_equal(r->cap & (r->cap - 1), 0);
        assert_true(r->head < r->cap);
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
        switch (rng_below(10)) {
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
        cmocka_unit_test(test_append_iov_consume),
        cmocka_unit_test(test_wrap_around_keeps_order),
        cmocka_unit_test(test_grow_from_wrapped_state),
        cmocka_unit_test(test_linearize_unwrapped_moves_nothing),
        cmocka_unit_test(test_linearize_short_wrap_by_memmove),
        cmocka_unit_test(test_linearize_long_wrap_by_rotation),
        cmocka_unit_test(test_linearize_full_wrapped_ring),
        cmocka_unit_test(test_reserve_commit_on_empty_ring),
        cmocka_unit_test(test_reserve_brings_bytes_to_the_front),
        cmocka_unit_test(test_reserve_on_wrapped_ring_makes_it_contiguous),
        cmocka_unit_test(test_reserve_grows_and_respects_limit),
        cmocka_unit_test(test_consume_to_empty_releases_unless_kept),
        cmocka_unit_test(test_big_buffer_holding_little_shrinks),
        cmocka_unit_test(test_half_full_big_buffer_stays),
        cmocka_unit_test(test_append_over_limit_changes_nothing),
        cmocka_unit_test(test_random_ops_match_model_with_malloc),
        cmocka_unit_test(test_random_ops_match_model_with_pool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
