/* Output queue: a list of fixed-size chunks from the loop's pool. Bytes come out in the order
 * they went in, across chunk boundaries and zero-copy segments; growing the queue never moves
 * what is already queued; consuming hands emptied chunks back to the pool and releases a
 * segment exactly once; and a queue of N bytes holds about N plus one chunk, never a doubled
 * copy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "bufpool.h"
#include "outq.h"
#include "weft/error.h"
#include "weft/socket.h"

#define IOV_MAX_TEST 1024

typedef struct fixture {
    weft__bufpool *pool;
    weft__outq q;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (f == NULL || weft__bufpool_create(NULL, &f->pool) != 0) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    weft__outq_release(&f->q, f->pool);
    weft__bufpool_stats st;
    weft__bufpool_get_stats(f->pool, &st);
    /* Whatever a test did, releasing the queue gave every chunk back. */
    int rc = st.outstanding == 0 ? 0 : -1;
    weft__bufpool_destroy(f->pool);
    free(f);
    return rc;
}

static weft__bufpool_stats pool_stats(const fixture *f)
{
    weft__bufpool_stats st;
    weft__bufpool_get_stats(f->pool, &st);
    return st;
}

/* The payload room of one chunk of our own, as the queue reports it: the first iovec of a
 * queue holding more than a chunk. */
static size_t chunk_room(fixture *f)
{
    static uint8_t big[2 * WEFT__OUTQ_CHUNK];
    weft__outq q = {0};
    assert_int_equal(weft__outq_append(&q, f->pool, big, sizeof(big)), 0);
    struct iovec iov[4];
    assert_true(weft__outq_iov(&q, iov, 4, SIZE_MAX) >= 2);
    size_t room = iov[0].iov_len;
    weft__outq_release(&q, f->pool);
    assert_true(room > 0 && room <= WEFT__OUTQ_CHUNK);
    return room;
}

/* Everything queued, in order, gathered through weft__outq_iov. */
static size_t gather(const weft__outq *q, uint8_t *out, size_t cap)
{
    static struct iovec iov[IOV_MAX_TEST];
    int n = weft__outq_iov(q, iov, IOV_MAX_TEST, SIZE_MAX);
    size_t got = 0;
    for (int i = 0; i < n; i++) {
        assert_true(got + iov[i].iov_len <= cap);
        memcpy(out + got, iov[i].iov_base, iov[i].iov_len);
        got += iov[i].iov_len;
    }
    return got;
}

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1u;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        p[i] = (uint8_t)(x >> 16);
    }
}

/* ---- appending ---- */

static void test_empty_queue_holds_nothing(void **state)
{
    fixture *f = *state;
    struct iovec iov[4];

    assert_int_equal(f->q.len, 0);
    assert_int_equal(weft__outq_iov(&f->q, iov, 4, SIZE_MAX), 0);
    assert_int_equal(weft__outq_footprint(&f->q), 0);
    assert_int_equal(weft__outq_append(&f->q, f->pool, "x", 0), 0);
    assert_int_equal(f->q.len, 0);
    assert_int_equal(pool_stats(f).outstanding, 0);
    weft__outq_consume(&f->q, f->pool, 0);
    assert_null(f->q.head);
}

static void test_append_across_chunk_boundaries(void **state)
{
    fixture *f = *state;
    const size_t room = chunk_room(f);
    const size_t total = 3 * room + 123;
    uint8_t *in = malloc(total), *out = malloc(total);
    assert_non_null(in);
    assert_non_null(out);
    fill(in, total, 1);

    /* Pieces of odd sizes, so that many of them straddle a chunk boundary. */
    size_t off = 0;
    for (size_t step = 1; off < total; step = step * 3 + 7) {
        size_t n = step < total - off ? step : total - off;
        assert_int_equal(weft__outq_append(&f->q, f->pool, in + off, n), 0);
        off += n;
    }

    assert_int_equal(f->q.len, total);
    struct iovec iov[8];
    assert_int_equal(weft__outq_iov(&f->q, iov, 8, SIZE_MAX), 4);
    for (int i = 0; i < 3; i++)
        assert_int_equal(iov[i].iov_len, room); /* every chunk but the last is full */
    assert_int_equal(iov[3].iov_len, 123);
    assert_int_equal(gather(&f->q, out, total), total);
    assert_memory_equal(out, in, total);
    assert_int_equal(pool_stats(f).outstanding, 4);
    free(in);
    free(out);
}

static void test_growing_never_moves_what_is_queued(void **state)
{
    fixture *f = *state;
    uint8_t first[100];
    fill(first, sizeof(first), 2);
    assert_int_equal(weft__outq_append(&f->q, f->pool, first, sizeof(first)), 0);
    struct iovec iov[1];
    assert_int_equal(weft__outq_iov(&f->q, iov, 1, SIZE_MAX), 1);
    const void *where = iov[0].iov_base;

    /* 4 MiB more, a piece at a time: a doubling buffer would have moved many times. */
    static uint8_t piece[10000];
    memset(piece, 0x5a, sizeof(piece));
    for (int i = 0; i < 420; i++)
        assert_int_equal(weft__outq_append(&f->q, f->pool, piece, sizeof(piece)), 0);

    assert_int_equal(weft__outq_iov(&f->q, iov, 1, SIZE_MAX), 1);
    assert_ptr_equal(iov[0].iov_base, where);
    assert_memory_equal(iov[0].iov_base, first, sizeof(first));
    assert_int_equal(f->q.len, sizeof(first) + 420 * sizeof(piece));
}

/* ---- scatter/gather ---- */

static void test_iov_respects_max_entries_and_bytes(void **state)
{
    fixture *f = *state;
    const size_t room = chunk_room(f);
    static uint8_t data[10 * WEFT__OUTQ_CHUNK];
    fill(data, sizeof(data), 3);
    const size_t total = 10 * room;
    assert_true(total <= sizeof(data));
    assert_int_equal(weft__outq_append(&f->q, f->pool, data, total), 0);
    struct iovec iov[16];

    /* At most max entries, each a whole chunk. */
    assert_int_equal(weft__outq_iov(&f->q, iov, 3, SIZE_MAX), 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(iov[i].iov_len, room);
        assert_memory_equal(iov[i].iov_base, data + (size_t)i * room, room);
    }
    /* All of it when there is room for every chunk. */
    assert_int_equal(weft__outq_iov(&f->q, iov, 16, SIZE_MAX), 10);
    /* max_bytes cuts the last entry short, and ends the list there. */
    int n = weft__outq_iov(&f->q, iov, 16, room + 10);
    assert_int_equal(n, 2);
    assert_int_equal(iov[0].iov_len, room);
    assert_int_equal(iov[1].iov_len, 10);
    assert_memory_equal(iov[1].iov_base, data + room, 10);
    /* Exactly on a boundary: no empty entry after it. */
    assert_int_equal(weft__outq_iov(&f->q, iov, 16, 2 * room), 2);
    assert_int_equal(weft__outq_iov(&f->q, iov, 16, 1), 1);
    assert_int_equal(iov[0].iov_len, 1);
    assert_int_equal(weft__outq_iov(&f->q, iov, 16, 0), 0);
    assert_int_equal(weft__outq_iov(&f->q, iov, 0, SIZE_MAX), 0);
}

/* ---- consuming ---- */

static void test_consume_partial_and_whole_chunks(void **state)
{
    fixture *f = *state;
    const size_t room = chunk_room(f);
    const size_t total = 3 * room;
    uint8_t *in = malloc(total), *out = malloc(total);
    assert_non_null(in);
    assert_non_null(out);
    fill(in, total, 4);
    assert_int_equal(weft__outq_append(&f->q, f->pool, in, total), 0);
    assert_int_equal(pool_stats(f).outstanding, 3);

    /* Part of the first chunk: it stays, and the rest of it comes out next. */
    weft__outq_consume(&f->q, f->pool, 100);
    assert_int_equal(f->q.len, total - 100);
    assert_int_equal(pool_stats(f).outstanding, 3);
    assert_int_equal(gather(&f->q, out, total), total - 100);
    assert_memory_equal(out, in + 100, total - 100);

    /* The rest of the first chunk and part of the second: the first goes back. */
    weft__outq_consume(&f->q, f->pool, room - 100 + 1);
    assert_int_equal(f->q.len, total - room - 1);
    assert_int_equal(pool_stats(f).outstanding, 2);
    assert_int_equal(gather(&f->q, out, total), total - room - 1);
    assert_memory_equal(out, in + room + 1, total - room - 1);

    /* Exactly to the end of the second chunk: it goes back at once. */
    weft__outq_consume(&f->q, f->pool, room - 1);
    assert_int_equal(pool_stats(f).outstanding, 1);
    struct iovec iov[4];
    assert_int_equal(weft__outq_iov(&f->q, iov, 4, SIZE_MAX), 1);
    assert_memory_equal(iov[0].iov_base, in + 2 * room, room);

    /* Appending after a partial consume goes behind what is left. */
    weft__outq_consume(&f->q, f->pool, 10);
    assert_int_equal(weft__outq_append(&f->q, f->pool, "tail", 4), 0);
    size_t n = gather(&f->q, out, total);
    assert_int_equal(n, room - 10 + 4);
    assert_memory_equal(out, in + 2 * room + 10, room - 10);
    assert_memory_equal(out + room - 10, "tail", 4);

    /* Everything: the queue is empty and holds no chunk. */
    weft__outq_consume(&f->q, f->pool, f->q.len);
    assert_int_equal(f->q.len, 0);
    assert_null(f->q.head);
    assert_null(f->q.tail);
    assert_int_equal(pool_stats(f).outstanding, 0);
    assert_int_equal(weft__outq_footprint(&f->q), 0);
    /* And it works again from empty. */
    assert_int_equal(weft__outq_append(&f->q, f->pool, "again", 5), 0);
    assert_int_equal(gather(&f->q, out, total), 5);
    assert_memory_equal(out, "again", 5);
    free(in);
    free(out);
}

/* ---- zero-copy segments ---- */

typedef struct release_log {
    int calls;
    void *last_data;
} release_log;

static void count_release(void *data, void *ctx)
{
    release_log *log = ctx;
    log->calls++;
    log->last_data = data;
}

static void test_segment_freed_once_when_consumed(void **state)
{
    fixture *f = *state;
    static uint8_t seg[50000];
    fill(seg, sizeof(seg), 5);
    release_log log = {0};
    uint8_t out[60000];

    /* copied bytes, a segment (its first 1000 bytes already sent), copied bytes */
    assert_int_equal(weft__outq_append(&f->q, f->pool, "head", 4), 0);
    assert_int_equal(weft__outq_append_ref(&f->q, seg, 1000, sizeof(seg), count_release, &log), 0);
    assert_int_equal(weft__outq_append(&f->q, f->pool, "tail", 4), 0);
    assert_int_equal(f->q.len, 4 + sizeof(seg) - 1000 + 4);

    /* In order, the segment without a copy (its iovec points into it). */
    struct iovec iov[8];
    assert_int_equal(weft__outq_iov(&f->q, iov, 8, SIZE_MAX), 3);
    assert_ptr_equal(iov[1].iov_base, seg + 1000);
    assert_int_equal(iov[1].iov_len, sizeof(seg) - 1000);
    size_t n = gather(&f->q, out, sizeof(out));
    assert_int_equal(n, f->q.len);
    assert_memory_equal(out, "head", 4);
    assert_memory_equal(out + 4, seg + 1000, sizeof(seg) - 1000);
    assert_memory_equal(out + 4 + sizeof(seg) - 1000, "tail", 4);
    /* A segment counts its length in the footprint, not a chunk. */
    assert_int_equal(weft__outq_footprint(&f->q), 2 * WEFT__OUTQ_CHUNK + sizeof(seg) - 1000);

    /* Into the segment, not through it: not released yet. */
    weft__outq_consume(&f->q, f->pool, 4 + 20000);
    assert_int_equal(log.calls, 0);
    /* Through its last byte: released once, with the pointer it was given. */
    weft__outq_consume(&f->q, f->pool, sizeof(seg) - 1000 - 20000);
    assert_int_equal(log.calls, 1);
    assert_ptr_equal(log.last_data, seg);
    assert_int_equal(f->q.len, 4);
    /* Draining the rest does not release it again. */
    weft__outq_consume(&f->q, f->pool, 4);
    weft__outq_release(&f->q, f->pool);
    assert_int_equal(log.calls, 1);
}

static void test_segment_freed_once_when_released(void **state)
{
    fixture *f = *state;
    static uint8_t a[3000], b[5000];
    release_log la = {0}, lb = {0};

    assert_int_equal(weft__outq_append_ref(&f->q, a, 0, sizeof(a), count_release, &la), 0);
    assert_int_equal(weft__outq_append(&f->q, f->pool, "between", 7), 0);
    assert_int_equal(weft__outq_append_ref(&f->q, b, 0, sizeof(b), count_release, &lb), 0);
    weft__outq_consume(&f->q, f->pool, 100); /* part of a: still queued */

    /* Dropped unsent (the connection closed): each released once. */
    weft__outq_release(&f->q, f->pool);
    assert_int_equal(la.calls, 1);
    assert_int_equal(lb.calls, 1);
    assert_ptr_equal(la.last_data, a);
    assert_ptr_equal(lb.last_data, b);
    assert_int_equal(f->q.len, 0);
    assert_null(f->q.head);
    assert_int_equal(pool_stats(f).outstanding, 0);
    weft__outq_release(&f->q, f->pool); /* an empty queue: nothing more */
    assert_int_equal(la.calls + lb.calls, 2);
}

static void test_segment_fully_skipped_is_released_on_consume(void **state)
{
    fixture *f = *state;
    static uint8_t seg[100];
    release_log log = {0};

    /* All of it went out before it was queued: zero bytes wait, and the next consume (of
     * whatever is before it) lets it go. */
    assert_int_equal(weft__outq_append(&f->q, f->pool, "ab", 2), 0);
    assert_int_equal(
        weft__outq_append_ref(&f->q, seg, sizeof(seg), sizeof(seg), count_release, &log), 0);
    assert_int_equal(f->q.len, 2);
    struct iovec iov[4];
    assert_int_equal(weft__outq_iov(&f->q, iov, 4, SIZE_MAX), 1); /* no empty entry */
    weft__outq_consume(&f->q, f->pool, 2);
    assert_int_equal(log.calls, 1);
    assert_null(f->q.head);
}

static void test_bad_segment_is_refused_and_stays_the_callers(void **state)
{
    fixture *f = *state;
    static uint8_t seg[10];
    release_log log = {0};

    assert_int_equal(weft__outq_append_ref(&f->q, seg, 11, sizeof(seg), count_release, &log),
                     WEFT_ENOMEM);
    assert_int_equal(log.calls, 0);
    assert_int_equal(f->q.len, 0);
    assert_null(f->q.head);
}

/* ---- memory ---- */

/* The bound: a queue of N bytes holds N plus one chunk (every chunk but the last is
 * full), and the per-chunk header is all the rest; nothing like a doubled copy. */
static void test_footprint_is_n_plus_one_chunk(void **state)
{
    fixture *f = *state;
    const size_t room = chunk_room(f);
    const size_t header = WEFT__OUTQ_CHUNK - room;
    static uint8_t piece[7777];
    memset(piece, 1, sizeof(piece));
    size_t queued = 0;
    size_t peak_out_bytes = 0;

    while (queued < (8u << 20)) {
        assert_int_equal(weft__outq_append(&f->q, f->pool, piece, sizeof(piece)), 0);
        queued += sizeof(piece);
        size_t fp = weft__outq_footprint(&f->q);
        size_t chunks = (fp + WEFT__OUTQ_CHUNK - 1) / WEFT__OUTQ_CHUNK;
        assert_int_equal(fp, chunks * WEFT__OUTQ_CHUNK);
        assert_true(fp >= queued);
        assert_true(fp <= queued + WEFT__OUTQ_CHUNK + chunks * header);
        /* The header is a small fraction: under 0.5 % of what is queued. */
        assert_true(chunks * header <= queued / 200 + header);
        /* What the pool handed out is the footprint: no hidden second buffer. */
        weft__bufpool_stats st = pool_stats(f);
        assert_int_equal(st.out_bytes, fp);
        if (st.out_bytes > peak_out_bytes)
            peak_out_bytes = st.out_bytes;
    }
    assert_true(peak_out_bytes <= queued + WEFT__OUTQ_CHUNK + queued / 200 + header);
}

/* A queue that has been partly sent also holds the sent part of its first chunk until that
 * chunk is done: N plus two chunks (and the headers) at worst, still nothing like a copy. */
static void test_footprint_after_a_partial_send(void **state)
{
    fixture *f = *state;
    const size_t room = chunk_room(f);
    const size_t header = WEFT__OUTQ_CHUNK - room;
    static uint8_t data[4 * WEFT__OUTQ_CHUNK];
    assert_int_equal(weft__outq_append(&f->q, f->pool, data, 2 * room + 1), 0);

    weft__outq_consume(&f->q, f->pool, room - 1); /* one byte of the first chunk is left */
    size_t n = f->q.len;
    assert_int_equal(n, room + 2);
    size_t fp = weft__outq_footprint(&f->q);
    assert_int_equal(fp, 3 * WEFT__OUTQ_CHUNK);
    assert_true(fp > n + WEFT__OUTQ_CHUNK); /* one byte pins the whole first chunk */
    assert_true(fp <= n + 2 * WEFT__OUTQ_CHUNK + 3 * header);
    weft__outq_consume(&f->q, f->pool, 1);
    assert_int_equal(weft__outq_footprint(&f->q), 2 * WEFT__OUTQ_CHUNK);
}

/* Chunks come from the pool and go back to it: a queue that fills and drains again and
 * again is served from the pool's free list, not from malloc. */
static void test_chunks_are_reused_through_the_pool(void **state)
{
    fixture *f = *state;
    static uint8_t data[64 * 1024];
    for (int round = 0; round < 50; round++) {
        assert_int_equal(weft__outq_append(&f->q, f->pool, data, sizeof(data)), 0);
        weft__outq_consume(&f->q, f->pool, f->q.len);
    }
    weft__bufpool_stats st = pool_stats(f);
    assert_int_equal(st.outstanding, 0);
    assert_true(st.hits >= st.gets - 5); /* only the first round's chunks were new */
}

/* A zero-copy send's chunks: consumed, but the kernel may still read them, so they wait in
 * a held list, their bytes untouched and a segment's free_cb not yet called, until that
 * list is released. */
static void test_consume_into_holds_emptied_chunks_until_released(void **state)
{
    fixture *f = *state;
    const size_t room = chunk_room(f);
    static uint8_t seg[30000];
    fill(seg, sizeof(seg), 6);
    release_log log = {0};
    uint8_t *in = malloc(2 * room);
    assert_non_null(in);
    fill(in, 2 * room, 7);
    assert_int_equal(weft__outq_append(&f->q, f->pool, in, 2 * room), 0);
    assert_int_equal(weft__outq_append_ref(&f->q, seg, 0, sizeof(seg), count_release, &log), 0);
    struct iovec iov[4];
    assert_int_equal(weft__outq_iov(&f->q, iov, 4, SIZE_MAX), 3);
    const uint8_t *first = iov[0].iov_base;

    /* The first chunk and part of the second: only the first moves to held. */
    weft__outq held = {0};
    weft__outq_consume_into(&f->q, room + 10, &held);
    assert_int_equal(f->q.len, room - 10 + sizeof(seg));
    assert_non_null(held.head);
    assert_ptr_equal(held.head, held.tail);
    assert_int_equal(held.len, 0);
    assert_int_equal(pool_stats(f).outstanding, 2); /* none went back */
    assert_memory_equal(first, in, room);           /* and nothing wrote over it */
    assert_int_equal(weft__outq_iov(&f->q, iov, 4, SIZE_MAX), 2);
    assert_memory_equal(iov[0].iov_base, in + room + 10, room - 10);

    /* The rest, the segment with it: held too, its free_cb not called. */
    weft__outq_consume_into(&f->q, f->q.len, &held);
    assert_int_equal(f->q.len, 0);
    assert_null(f->q.head);
    assert_int_equal(log.calls, 0);
    assert_int_equal(pool_stats(f).outstanding, 2);
    assert_int_equal(weft__outq_iov(&held, iov, 4, SIZE_MAX), 0); /* held sends nothing */

    /* Let go: the chunks go back, the segment is released once. */
    weft__outq_release(&held, f->pool);
    assert_int_equal(pool_stats(f).outstanding, 0);
    assert_int_equal(log.calls, 1);
    assert_ptr_equal(log.last_data, seg);
    free(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_empty_queue_holds_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_across_chunk_boundaries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_growing_never_moves_what_is_queued, setup, teardown),
        cmocka_unit_test_setup_teardown(test_iov_respects_max_entries_and_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_consume_partial_and_whole_chunks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_segment_freed_once_when_consumed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_segment_freed_once_when_released, setup, teardown),
        cmocka_unit_test_setup_teardown(test_segment_fully_skipped_is_released_on_consume, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bad_segment_is_refused_and_stays_the_callers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_footprint_is_n_plus_one_chunk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_footprint_after_a_partial_send, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunks_are_reused_through_the_pool, setup, teardown),
        cmocka_unit_test_setup_teardown(test_consume_into_holds_emptied_chunks_until_released,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
