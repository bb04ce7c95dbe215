/* Test support: chunked feeding of codecs, see codec_feed.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec_feed.h"
#include "platform.h"

uint64_t feed_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

void feed_guard_init(feed_guard *g, size_t capacity)
{
    size_t page = weft__page_size();
    size_t data = (capacity + page - 1) / page * page;
    if (data == 0)
        data = page;
    g->map_len = data + page;
    /* Only the data is committed: the page after it stays inaccessible. */
    g->map = weft__vm_reserve(g->map_len, page);
    assert_non_null(g->map);
    assert_int_equal(weft__vm_commit(g->map, data), 0);
    g->limit = g->map + data;
}

void feed_guard_free(feed_guard *g)
{
    if (g->map != NULL)
        weft__vm_release(g->map, g->map_len);
    memset(g, 0, sizeof(*g));
}

uint8_t *feed_guard_place(feed_guard *g, const void *data, size_t n)
{
    assert_true(n <= (size_t)(g->limit - g->map));
    uint8_t *p = g->limit - n;
    if (n > 0)
        memmove(p, data, n);
    return p;
}

static void feed_push(feed_result *r, int rc, const uint8_t *data, size_t len, bool recoverable)
{
    if (r->count == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->events = realloc(r->events, r->cap * sizeof(*r->events));
        assert_non_null(r->events);
    }
    feed_event *e = &r->events[r->count++];
    e->rc = rc;
    e->len = len;
    e->recoverable = recoverable;
    e->data = NULL;
    if (rc == WEFT_FRAME) {
        e->data = malloc(len ? len : 1);
        assert_non_null(e->data);
        if (len)
            memcpy(e->data, data, len);
    }
}

void feed_run(const weft_codec *codec, const uint8_t *stream, size_t len, const size_t *chunks,
              size_t nchunks, bool keep_going, feed_result *out)
{
    memset(out, 0, sizeof(*out));
    weft_codec_state st;
    weft_codec_state_init(&st);
    feed_guard g;
    feed_guard_init(&g, len);

    /* The engine's buffer of unconsumed bytes: stream[start..end). */
    size_t start = 0, end = 0;
    size_t fed = 0;
    for (size_t c = 0; c < nchunks && !out->closed; c++) {
        assert_true(chunks[c] > 0 && chunks[c] <= len - fed);
        fed += chunks[c];
        end = fed;
        while (end > start) {
            size_t n = end - start;
            const uint8_t *buf = feed_guard_place(&g, stream + start, n);
            weft_frame f;
            int rc = weft_codec_decode(codec, &st, buf, n, &f);
            out->calls++;
            assert_true(f.consumed <= n);
            if (rc == WEFT_FRAME) {
                assert_true(f.consumed > 0); /* a frame always moves the stream on */
                assert_true(f.offset <= f.consumed && f.length <= f.consumed - f.offset);
                feed_push(out, WEFT_FRAME, buf + f.offset, f.length, false);
                start += f.consumed;
                continue;
            }
            if (rc == WEFT_AGAIN) {
                start += f.consumed;
                break;
            }
            assert_true(rc < 0);
            assert_non_null(f.reason);
            feed_push(out, rc, NULL, 0, f.recoverable);
            start += f.consumed;
            /* Going on after an error must not loop on the same bytes. */
            assert_true(f.consumed > 0 || (!f.recoverable && !keep_going));
            if (f.recoverable) {
                /* Recovery skips the bad bytes, unless it is still waiting for them. */
                continue;
            }
            if (!keep_going) {
                out->closed = true;
                break;
            }
        }
    }
    /* Once closed, what is left over depends on how much had arrived: not compared. */
    if (!out->closed)
        assert_int_equal(fed, len);
    out->leftover = out->closed ? 0 : end - start;
    weft_codec_state_destroy(codec, &st);
    feed_guard_free(&g);
}

void feed_result_free(feed_result *r)
{
    for (size_t i = 0; i < r->count; i++)
        free(r->events[i].data);
    free(r->events);
    memset(r, 0, sizeof(*r));
}

static void feed_print_event(const char *label, const feed_event *e)
{
    if (e->rc == WEFT_FRAME) {
        fprintf(stderr, "  %s: frame %zu bytes \"", label, e->len);
        for (size_t i = 0; i < e->len && i < 64; i++) {
            uint8_t ch = e->data[i];
            if (ch >= 0x20 && ch < 0x7f)
                fputc(ch, stderr);
            else
                fprintf(stderr, "\\x%02x", ch);
        }
        fprintf(stderr, "\"\n");
    } else {
        fprintf(stderr, "  %s: %s%s\n", label, weft_err_name(e->rc),
                e->recoverable ? " (recoverable)" : "");
    }
}

void feed_assert_same(const feed_result *a, const feed_result *b, const char *what)
{
    bool same = a->count == b->count && a->leftover == b->leftover && a->closed == b->closed;
    for (size_t i = 0; same && i < a->count; i++) {
        const feed_event *x = &a->events[i], *y = &b->events[i];
        same = x->rc == y->rc && x->len == y->len && x->recoverable == y->recoverable &&
               (x->rc != WEFT_FRAME || x->len == 0 || memcmp(x->data, y->data, x->len) == 0);
    }
    if (same)
        return;
    fprintf(stderr, "chunking %s differs from one-shot decoding:\n", what);
    fprintf(stderr, " one-shot: %zu events, leftover %zu%s\n", a->count, a->leftover,
            a->closed ? ", closed" : "");
    for (size_t i = 0; i < a->count; i++)
        feed_print_event("want", &a->events[i]);
    fprintf(stderr, " chunked: %zu events, leftover %zu%s\n", b->count, b->leftover,
            b->closed ? ", closed" : "");
    for (size_t i = 0; i < b->count; i++)
        feed_print_event("got ", &b->events[i]);
    fail_msg("split-invariance broken (%s)", what);
}

void feed_assert_expected(const feed_result *r, const feed_expect *expect, const char *name)
{
    size_t n = 0;
    while (n < FEED_MAX_EXPECT && expect[n].rc != FEED_END_RC)
        n++;
    feed_assert_events(r, expect, n, name);
}

void feed_assert_events(const feed_result *r, const feed_expect *expect, size_t n, const char *name)
{
    bool same = r->count == n;
    for (size_t i = 0; same && i < n; i++) {
        const feed_event *e = &r->events[i];
        same = e->rc == expect[i].rc;
        if (same && e->rc == WEFT_FRAME)
            same = e->len == expect[i].len &&
                   (e->len == 0 || memcmp(e->data, expect[i].data, e->len) == 0);
    }
    if (same)
        return;
    fprintf(stderr, "case \"%s\": expected:\n", name);
    for (size_t i = 0; i < n; i++) {
        feed_event e = {expect[i].rc, (uint8_t *)(uintptr_t)expect[i].data, expect[i].len, false};
        feed_print_event("want", &e);
    }
    fprintf(stderr, " got:\n");
    for (size_t i = 0; i < r->count; i++)
        feed_print_event("got ", &r->events[i]);
    fail_msg("case \"%s\" decoded wrong", name);
}

size_t feed_each_chunking(size_t len, feed_chunking_fn visit, void *arg)
{
    size_t tried = 0;
    char what[96];
    size_t *chunks = malloc((len ? len : 1) * sizeof(*chunks));
    assert_non_null(chunks);

    /* split in two at every index */
    for (size_t i = 1; i < len; i++) {
        size_t two[2] = {i, len - i};
        snprintf(what, sizeof(what), "split at %zu", i);
        visit(two, 2, what, arg);
        tried++;
    }
    /* ... and in three at every pair of indices while that stays cheap */
    if (len <= 48) {
        for (size_t i = 1; i < len; i++) {
            for (size_t j = i + 1; j < len; j++) {
                size_t three[3] = {i, j - i, len - j};
                snprintf(what, sizeof(what), "split at %zu and %zu", i, j);
                visit(three, 3, what, arg);
                tried++;
            }
        }
    }

    /* one byte per read */
    for (size_t i = 0; i < len; i++)
        chunks[i] = 1;
    if (len > 0) {
        visit(chunks, len, "one byte per read", arg);
        tried++;
    }

    /* random chunkings, fixed seed */
    uint64_t seed = 0x9E3779B97F4A7C15ULL ^ (uint64_t)len;
    for (int round = 0; round < 64 && len > 1; round++) {
        size_t n = 0, left = len;
        size_t cap = (round % 4 == 0) ? 3 : (round % 4 == 1) ? 17 : len;
        while (left > 0) {
            size_t k = 1 + (size_t)(feed_rand(&seed) % cap);
            if (k > left)
                k = left;
            chunks[n++] = k;
            left -= k;
        }
        snprintf(what, sizeof(what), "random chunking #%d", round);
        visit(chunks, n, what, arg);
        tried++;
    }
    free(chunks);
    return tried;
}

typedef struct feed_compare_arg {
    const weft_codec *codec;
    const char *name;
    const char *input;
    size_t len;
    bool keep_going;
    const feed_result *whole;
} feed_compare_arg;

static void feed_compare(const size_t *chunks, size_t nchunks, const char *what, void *arg)
{
    const feed_compare_arg *a = arg;
    feed_result r;
    feed_run(a->codec, (const uint8_t *)a->input, a->len, chunks, nchunks, a->keep_going, &r);
    char label[160];
    snprintf(label, sizeof(label), "\"%s\" %s", a->name, what);
    feed_assert_same(a->whole, &r, label);
    feed_result_free(&r);
}

size_t feed_check_case(const weft_codec_config *cfg, const feed_case *c, bool keep_going)
{
    size_t n = 0;
    while (n < FEED_MAX_EXPECT && c->expect[n].rc != FEED_END_RC)
        n++;
    return feed_check_stream(cfg, c->name, c->input, c->input_len, c->expect, n, c->leftover,
                             keep_going);
}

size_t feed_check_stream(const weft_codec_config *cfg, const char *name, const char *input,
                         size_t len, const feed_expect *expect, size_t nexpect, long leftover,
                         bool keep_going)
{
    weft_codec codec;
    assert_int_equal(weft_codec_init(&codec, cfg), 0);

    /* One read of everything: the events expected. */
    feed_result whole;
    size_t one = len;
    feed_run(&codec, (const uint8_t *)input, len, &one, len ? 1 : 0, keep_going, &whole);
    if (expect != NULL)
        feed_assert_events(&whole, expect, nexpect, name);
    if (leftover != FEED_NO_LEFTOVER && (long)whole.leftover != leftover)
        fail_msg("case \"%s\": leftover %zu, expected %ld", name, whole.leftover, leftover);

    /* Every other chunking: the same events. */
    feed_compare_arg arg = {&codec, name, input, len, keep_going, &whole};
    size_t tried = 1 + feed_each_chunking(len, feed_compare, &arg);

    feed_result_free(&whole);
    weft_codec_destroy(&codec);
    return tried;
}

size_t feed_check_table(const weft_codec_config *cfg, const feed_case *cases, size_t n,
                        bool keep_going)
{
    size_t tried = 0;
    for (size_t i = 0; i < n; i++)
        tried += feed_check_case(cfg, &cases[i], keep_going);
    return tried;
}
