/* The delimiter codec (netty's DelimiterBasedFrameDecoder): shortest frame wins, ties go to
 * the delimiter listed first, and a frame is handed over as soon as a delimiter ends it. Only
 * a delimiter nested inside another makes the frames depend on how the stream was split;
 * every other set gives the same frames and errors for every chunking, and every set is
 * checked, chunking by chunking, against the rules written plainly (reference below). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec_feed.h"
#include "weft/codec.h"

/* delims is a NULL-terminated list of C strings. */
static weft_codec_config delim_cfg(const char *const *delims, size_t max, bool strip,
                                   bool fail_fast)
{
    weft_codec_config cfg;
    weft_codec_config_init(&cfg);
    cfg.kind = WEFT_CODEC_DELIMITER;
    size_t n = 0;
    for (; delims[n] != NULL; n++) {
        cfg.delimiter.delimiters[n].len = strlen(delims[n]);
        memcpy(cfg.delimiter.delimiters[n].bytes, delims[n], strlen(delims[n]));
    }
    cfg.delimiter.count = n;
    cfg.delimiter.max_frame_length = max;
    cfg.delimiter.strip_delimiter = strip;
    cfg.delimiter.fail_fast = fail_fast;
    return cfg;
}

static const char *const XY[] = {"XY", NULL};

/* The decoder's rules written plainly, read by read: netty's frames (in the bytes held, the
 * earliest complete delimiter ends the frame, the first listed winning a tie) and the size
 * limit as one read would apply it (too long once no delimiter still arriving could end the
 * frame in time; a possible delimiter start is kept while discarding). Fills out (cap
 * entries) and *leftover; returns the number of events. */
static size_t reference(const weft_delimiter_config *d, const char *in, const size_t *chunks,
                        size_t nchunks, feed_expect *out, size_t cap, size_t *leftover)
{
    size_t n = 0, start = 0, end = 0;
    bool discarding = false;
    for (size_t c = 0; c < nchunks; c++) {
        end += chunks[c];
        for (;;) {
            size_t pos = end, idx = 0;
            for (size_t p = start; p < end && pos == end; p++) {
                for (size_t i = 0; i < d->count; i++) {
                    size_t dl = d->delimiters[i].len;
                    if (dl <= end - p && memcmp(in + p, d->delimiters[i].bytes, dl) == 0) {
                        pos = p;
                        idx = i;
                        break;
                    }
                }
            }
            if (pos < end) {
                size_t flen = pos - start, dl = d->delimiters[idx].len;
                assert_true(n < cap);
                if (discarding) {
                    discarding = false;
                    if (!d->fail_fast)
                        out[n++] = (feed_expect)FEED_ERROR(WEFT_ETOOLONG);
                } else if (flen > d->max_frame_length) {
                    out[n++] = (feed_expect)FEED_ERROR(WEFT_ETOOLONG);
                } else {
                    out[n++] = (feed_expect){WEFT_FRAME, in + start,
                                             d->strip_delimiter ? flen : flen + dl};
                }
                start = pos + dl;
                continue;
            }
            /* No delimiter yet: where the earliest one still arriving would start. */
            size_t open = end;
            for (size_t p = start; p < end && open == end; p++) {
                for (size_t i = 0; i < d->count; i++) {
                    size_t dl = d->delimiters[i].len;
                    if (end - p < dl && memcmp(in + p, d->delimiters[i].bytes, end - p) == 0) {
                        open = p;
                        break;
                    }
                }
            }
            if (discarding) {
                start = open;
            } else if (open - start > d->max_frame_length) {
                discarding = true;
                start = open;
                assert_true(n < cap);
                if (d->fail_fast)
                    out[n++] = (feed_expect)FEED_ERROR(WEFT_ETOOLONG);
            }
            break;
        }
    }
    *leftover = end - start;
    return n;
}

typedef struct ref_check {
    const weft_codec *codec;
    const weft_delimiter_config *d;
    const char *name;
    const char *in;
    size_t len;
    feed_expect *want; /* scratch, cap entries */
    size_t cap;
} ref_check;

static void check_chunking(const size_t *chunks, size_t nchunks, const char *what, void *arg)
{
    const ref_check *rc = arg;
    size_t leftover;
    size_t n = reference(rc->d, rc->in, chunks, nchunks, rc->want, rc->cap, &leftover);
    feed_result r;
    feed_run(rc->codec, (const uint8_t *)rc->in, rc->len, chunks, nchunks, false, &r);
    char label[160];
    snprintf(label, sizeof(label), "%s, %s", rc->name, what);
    feed_assert_events(&r, rc->want, n, label);
    if (r.leftover != leftover)
        fail_msg("%s: leftover %zu, the reference leaves %zu", label, r.leftover, leftover);
    feed_result_free(&r);
}

/* One read and every chunking feed_each_chunking makes give what the reference gives. */
static void check_every_chunking(const weft_codec_config *cfg, const char *name, const char *in,
                                 size_t len)
{
    weft_codec codec;
    assert_int_equal(weft_codec_init(&codec, cfg), 0);
    feed_expect *want = malloc((len + 1) * sizeof(*want)); /* an event takes a byte at least */
    assert_non_null(want);
    ref_check rc = {&codec, &cfg->delimiter, name, in, len, want, len + 1};
    size_t one = len;
    if (len > 0)
        check_chunking(&one, 1, "one read", &rc);
    feed_each_chunking(len, check_chunking, &rc);
    free(want);
    weft_codec_destroy(&codec);
}

/* Decodes input in the reads given and checks the nexpect events and the leftover. */
static void check_reads(const weft_codec_config *cfg, const char *name, const char *in, size_t len,
                        const size_t *chunks, size_t nchunks, const feed_expect *expect,
                        size_t nexpect, size_t leftover)
{
    weft_codec codec;
    assert_int_equal(weft_codec_init(&codec, cfg), 0);
    feed_result r;
    feed_run(&codec, (const uint8_t *)in, len, chunks, nchunks, false, &r);
    feed_assert_events(&r, expect, nexpect, name);
    if (r.leftover != leftover)
        fail_msg("case \"%s\": leftover %zu, expected %zu", name, r.leftover, leftover);
    feed_result_free(&r);
    weft_codec_destroy(&codec);
}

/* For a set with a delimiter nested in another: one read gives c's events, and every
 * chunking gives what the reference says for it. */
static void check_nested_case(const weft_codec_config *cfg, const feed_case *c)
{
    size_t one = c->input_len, n = 0;
    while (n < FEED_MAX_EXPECT && c->expect[n].rc != FEED_END_RC)
        n++;
    check_reads(cfg, c->name, c->input, c->input_len, &one, 1, c->expect, n, (size_t)c->leftover);
    check_every_chunking(cfg, c->name, c->input, c->input_len);
}

static void test_defaults_match_netty(void **unused)
{
    (void)unused;
    weft_codec_config cfg;
    weft_codec_config_init(&cfg);
    assert_int_equal(cfg.delimiter.count, 0);
    assert_int_equal(cfg.delimiter.max_frame_length, 8192);
    assert_true(cfg.delimiter.strip_delimiter);
    assert_true(cfg.delimiter.fail_fast);
    assert_false(cfg.delimiter.close_on_error);
}

static void test_single_delimiter(void **unused)
{
    (void)unused;
    static const feed_case cases[] = {
        {"frames",
         FEED_INPUT("abcXYdeXYXY"),
         {FEED_FRAME("abc"), FEED_FRAME("de"), FEED_FRAME(""), FEED_END},
         0},
        {"overlapping prefix",
         FEED_INPUT("abXXYXXXY"),
         {FEED_FRAME("abX"), FEED_FRAME("XX"), FEED_END},
         0},
        {"tail stays", FEED_INPUT("aXYbcX"), {FEED_FRAME("a"), FEED_END}, 3},
        {"Y alone is data", FEED_INPUT("YaXY"), {FEED_FRAME("Ya"), FEED_END}, 0},
    };
    weft_codec_config cfg = delim_cfg(XY, 8192, true, true);
    feed_check_table(&cfg, cases, sizeof(cases) / sizeof(cases[0]), false);
}

static void test_shortest_frame_wins(void **unused)
{
    (void)unused;
    /* In one read "XAB", starting earlier than "A", gives the shorter frame. */
    static const char *const longer_first[] = {"XAB", "A", NULL};
    static const feed_case c1[] = {
        {"earlier longer delimiter",
         FEED_INPUT("abXABcdA"),
         {FEED_FRAME("ab"), FEED_FRAME("cd"), FEED_END},
         0},
        {"earlier longer delimiter breaks off",
         FEED_INPUT("abXAcA"),
         {FEED_FRAME("abX"), FEED_FRAME("c"), FEED_END},
         0},
    };
    weft_codec_config cfg = delim_cfg(longer_first, 8192, true, true);
    check_nested_case(&cfg, &c1[0]);
    check_nested_case(&cfg, &c1[1]);
    /* Read "abXA" alone and "A" is the only delimiter in it: as netty does, the decoder
     * hands over "abX" at once rather than wait for a "B" that may never come. */
    static const size_t after_a[] = {4, 4};
    static const feed_expect split_c1[] = {FEED_FRAME("abX"), FEED_FRAME("Bcd")};
    check_reads(&cfg, "earlier longer delimiter, split after A", "abXABcdA", 8, after_a, 2,
                split_c1, 2, 0);

    /* Same start: netty compares with '<', so the delimiter listed first wins the tie. */
    static const char *const dd_first[] = {"\n\n", "\n", NULL};
    static const feed_case c2[] = {
        {"tie goes to first listed",
         FEED_INPUT("ab\n\ncd\nx"),
         {FEED_FRAME("ab"), FEED_FRAME("cd"), FEED_END},
         1},
        /* A "\n" at the very end ends its frame at once, though it may become "\n\n". */
        {"lone LF at the end",
         FEED_INPUT("ab\n\ncd\n"),
         {FEED_FRAME("ab"), FEED_FRAME("cd"), FEED_END},
         0},
    };
    cfg = delim_cfg(dd_first, 8192, true, true);
    check_nested_case(&cfg, &c2[0]);
    check_nested_case(&cfg, &c2[1]);
    /* The two "\n" in two reads: the first wins alone, the second ends an empty frame. */
    static const size_t between_lfs[] = {3, 4};
    static const feed_expect split_c2[] = {FEED_FRAME("ab"), FEED_FRAME(""), FEED_FRAME("cd")};
    check_reads(&cfg, "tie split between the LFs", "ab\n\ncd\n", 7, between_lfs, 2, split_c2, 3, 0);

    static const char *const d_first[] = {"\n", "\n\n", NULL};
    static const feed_case c3[] = {
        {"first listed is shorter",
         FEED_INPUT("ab\n\ncd\n"),
         {FEED_FRAME("ab"), FEED_FRAME(""), FEED_FRAME("cd"), FEED_END},
         0},
    };
    cfg = delim_cfg(d_first, 8192, true, true);
    feed_check_table(&cfg, c3, 1, false);

    static const char *const three[] = {"END", "|", "\r\n", NULL};
    static const feed_case c4[] = {
        {"mixed delimiters",
         FEED_INPUT("aENDb|c\r\nd|eEN|fEND"),
         {FEED_FRAME("a"), FEED_FRAME("b"), FEED_FRAME("c"), FEED_FRAME("d"), FEED_FRAME("eEN"),
          FEED_FRAME("f"), FEED_END},
         0},
    };
    cfg = delim_cfg(three, 8192, true, true);
    feed_check_table(&cfg, c4, 1, false);
}

/* "\r\n" and "\r", as a new user might set them up for a text protocol. */
static const char *const CRLF_CR[] = {"\r\n", "\r", NULL};

/* "C\r" ends a frame: a client that sends it and waits for the answer gets one, though no
 * "\n" follows. Both frames of "AB\r\nC\r" come out of the one read. */
static void test_cr_ends_a_frame_at_once(void **unused)
{
    (void)unused;
    weft_codec_config cfg = delim_cfg(CRLF_CR, 8192, true, true);
    static const feed_case both = {
        "AB CRLF C CR", FEED_INPUT("AB\r\nC\r"), {FEED_FRAME("AB"), FEED_FRAME("C"), FEED_END}, 0};
    check_nested_case(&cfg, &both);

    /* In place, ending at a PROT_NONE page: "C" is answered without a look at the byte
     * after its "\r", where a "\n" might have come. */
    weft_codec codec;
    assert_int_equal(weft_codec_init(&codec, &cfg), 0);
    feed_guard g;
    feed_guard_init(&g, 64);
    const uint8_t *p = feed_guard_place(&g, "AB\r\nC\r", 6);
    weft_codec_state st;
    weft_codec_state_init(&st);
    weft_frame f;
    assert_int_equal(weft_codec_decode(&codec, &st, p, 6, &f), WEFT_FRAME);
    assert_int_equal(f.offset, 0);
    assert_int_equal(f.length, 2);
    assert_int_equal(f.consumed, 4); /* "\r\n", listed first, wins the tie with "\r" */
    assert_int_equal(weft_codec_decode(&codec, &st, p + 4, 2, &f), WEFT_FRAME);
    assert_int_equal(f.length, 1);
    assert_memory_equal(p + 4 + f.offset, "C", 1);
    assert_int_equal(f.consumed, 2);
    assert_int_equal(weft_codec_decode(&codec, &st, p + 6, 0, &f), WEFT_AGAIN);
    assert_int_equal(f.consumed, 0);
    feed_guard_free(&g);
    weft_codec_destroy(&codec);
}

/* Where the reads split "\r\n" decides what its "\n" is, as in netty: after a "\r" that has
 * ended its frame alone, the "\n" is the first byte of the next frame. */
static void test_cr_then_lf_in_a_later_read(void **unused)
{
    (void)unused;
    weft_codec_config cfg = delim_cfg(CRLF_CR, 8192, true, true);
    static const size_t one_read[] = {5}, cut_crlf[] = {2, 3};
    static const feed_expect whole[] = {FEED_FRAME("C"), FEED_FRAME("D")};
    static const feed_expect split[] = {FEED_FRAME("C"), FEED_FRAME("\nD")};
    check_reads(&cfg, "C CRLF D CR in one read", "C\r\nD\r", 5, one_read, 1, whole, 2, 0);
    check_reads(&cfg, "C CR, then LF D CR", "C\r\nD\r", 5, cut_crlf, 2, split, 2, 0);

    /* Every split in two of "AB\r\nC\r": only the one between "\r" and "\n" differs. */
    static const feed_expect usual[] = {FEED_FRAME("AB"), FEED_FRAME("C")};
    static const feed_expect lf_first[] = {FEED_FRAME("AB"), FEED_FRAME("\nC")};
    for (size_t i = 1; i < 6; i++) {
        size_t two[2] = {i, 6 - i};
        char name[64];
        snprintf(name, sizeof(name), "AB CRLF C CR split at %zu", i);
        check_reads(&cfg, name, "AB\r\nC\r", 6, two, 2, i == 3 ? lf_first : usual, 2, 0);
    }
    static const size_t bytes[] = {1, 1, 1, 1, 1, 1};
    check_reads(&cfg, "AB CRLF C CR one byte per read", "AB\r\nC\r", 6, bytes, 6, lf_first, 2, 0);
}

static void test_keep_delimiter(void **unused)
{
    (void)unused;
    static const char *const two[] = {"XY", "\r\n", NULL};
    static const feed_case cases[] = {
        {"delimiter kept",
         FEED_INPUT("abXYcd\r\n"),
         {FEED_FRAME("abXY"), FEED_FRAME("cd\r\n"), FEED_END},
         0},
        /* max_frame_length never counts the delimiter. */
        {"limit excludes delimiter",
         FEED_INPUT("abcXYabcdXY"),
         {FEED_FRAME("abcXY"), FEED_ERROR(WEFT_ETOOLONG), FEED_END},
         0},
    };
    weft_codec_config cfg = delim_cfg(two, 3, false, true);
    feed_check_table(&cfg, cases, 2, false);
}

/* Hold for both fail_fast settings. */
static const feed_case too_long_cases[] = {
    {"exactly max", FEED_INPUT("abcXY"), {FEED_FRAME("abc"), FEED_END}, 0},
    /* netty, split inside the delimiter at the limit, would start discarding. */
    {"delimiter split at the limit",
     FEED_INPUT("abcXYokayXY"),
     {FEED_FRAME("abc"), FEED_ERROR(WEFT_ETOOLONG), FEED_END},
     0},
    {"discard then recover",
     FEED_INPUT("abcdefXYokXY"),
     {FEED_ERROR(WEFT_ETOOLONG), FEED_FRAME("ok"), FEED_END},
     0},
    {"delimiter cut while discarding",
     FEED_INPUT("abcdefgXXYokXY"),
     {FEED_ERROR(WEFT_ETOOLONG), FEED_FRAME("ok"), FEED_END},
     0},
    {"one error per long frame",
     FEED_INPUT("abcdefghXYabXYabcdXYXY"),
     {FEED_ERROR(WEFT_ETOOLONG), FEED_FRAME("ab"), FEED_ERROR(WEFT_ETOOLONG), FEED_FRAME(""),
      FEED_END},
     0},
    {"partial delimiter past the limit",
     FEED_INPUT("abcdXokXY"),
     {FEED_ERROR(WEFT_ETOOLONG), FEED_END},
     0},
};

static void test_too_long_fail_fast(void **unused)
{
    (void)unused;
    weft_codec_config cfg = delim_cfg(XY, 3, true, true);
    feed_check_table(&cfg, too_long_cases, sizeof(too_long_cases) / sizeof(too_long_cases[0]),
                     false);
    /* Reported before the end; a possible delimiter start is kept while discarding. */
    static const feed_case loud = {"unterminated long frame",
                                   FEED_INPUT("okXYabcdefgX"),
                                   {FEED_FRAME("ok"), FEED_ERROR(WEFT_ETOOLONG), FEED_END},
                                   1};
    feed_check_case(&cfg, &loud, false);
}

static void test_too_long_not_fail_fast(void **unused)
{
    (void)unused;
    weft_codec_config cfg = delim_cfg(XY, 3, true, false);
    feed_check_table(&cfg, too_long_cases, sizeof(too_long_cases) / sizeof(too_long_cases[0]),
                     false);
    static const feed_case quiet = {
        "unterminated long frame", FEED_INPUT("okXYabcdefgX"), {FEED_FRAME("ok"), FEED_END}, 1};
    feed_check_case(&cfg, &quiet, false);
}

static void test_line_delimiters_behave_like_line_codec(void **unused)
{
    (void)unused;
    static const char *const lines[] = {"\r\n", "\n", NULL};
    static const feed_case cases[] = {
        {"CR at the limit",
         FEED_INPUT("abc\r\nxy\n"),
         {FEED_FRAME("abc"), FEED_FRAME("xy"), FEED_END},
         0},
        {"too long",
         FEED_INPUT("abcd\r\nxy\n"),
         {FEED_ERROR(WEFT_ETOOLONG), FEED_FRAME("xy"), FEED_END},
         0},
    };
    weft_codec_config cfg = delim_cfg(lines, 3, true, true);
    feed_check_table(&cfg, cases, 2, false);
}

/* "\n" nested in "\n\r" and the size limit: a frame too long for one delimiter is too long
 * for the other, and each too-long frame gives one error, for both fail_fast settings. */
static void test_too_long_with_nested_delimiters(void **unused)
{
    (void)unused;
    static const char *const d[] = {"\n\r", "\n", NULL};
    static const feed_case cases[] = {
        {"lone LF at the end",
         FEED_INPUT("\0\0aabbb\rab\r\n"),
         {FEED_ERROR(WEFT_ETOOLONG), FEED_END},
         0},
        {"first listed wins",
         FEED_INPUT("\0\0aabbb\rab\r\n\rok\n\r"),
         {FEED_ERROR(WEFT_ETOOLONG), FEED_FRAME("ok"), FEED_END},
         0},
        {"second wins",
         FEED_INPUT("\0\0aabbb\rab\r\nxok\n\r"),
         {FEED_ERROR(WEFT_ETOOLONG), FEED_FRAME("xok"), FEED_END},
         0},
    };
    weft_codec_config cfg = delim_cfg(d, 3, true, true);
    for (size_t i = 0; i < 3; i++)
        check_nested_case(&cfg, &cases[i]);
    cfg.delimiter.fail_fast = false;
    for (size_t i = 0; i < 3; i++)
        check_nested_case(&cfg, &cases[i]);
}

static void test_close_on_error(void **unused)
{
    (void)unused;
    weft_codec_config cfg = delim_cfg(XY, 3, true, true);
    cfg.delimiter.close_on_error = true;
    static const feed_case c = {"too long closes",
                                FEED_INPUT("okXYabcdXYokXY"),
                                {FEED_FRAME("ok"), FEED_ERROR(WEFT_ETOOLONG), FEED_END},
                                FEED_NO_LEFTOVER};
    feed_check_case(&cfg, &c, false);
}

/* netty's single-read decoding of a stream ending in a byte that starts no delimiter, written
 * more plainly still: from each frame start, the first position where some delimiter matches
 * ends the frame, the first listed winning at that position. What follows the last delimiter
 * stays buffered, unless it is already too long and so discarded. */
static size_t model(const weft_codec_config *cfg, const char *in, size_t len, feed_expect *out,
                    size_t cap, size_t *leftover)
{
    const weft_delimiter_config *d = &cfg->delimiter;
    size_t n = 0, start = 0;
    for (size_t p = 0; p < len; p++) {
        for (size_t i = 0; i < d->count; i++) {
            size_t dl = d->delimiters[i].len;
            if (p + dl > len || memcmp(in + p, d->delimiters[i].bytes, dl) != 0)
                continue;
            assert_true(n < cap);
            if (p - start > d->max_frame_length)
                out[n++] = (feed_expect)FEED_ERROR(WEFT_ETOOLONG);
            else
                out[n++] = (feed_expect){WEFT_FRAME, in + start,
                                         d->strip_delimiter ? p - start : p - start + dl};
            start = p + dl;
            p = start - 1;
            break;
        }
    }
    *leftover = len - start > d->max_frame_length ? 0 : len - start;
    return n;
}

static void test_generated_streams(void **unused)
{
    (void)unused;
    static const struct {
        const char *delims[5];
        bool nested; /* a delimiter inside another, not at its end: "A" in "XAB" */
    } sets[] = {
        {{"XAB", "A", "\n\n", "\n", NULL}, true},
        {{"ab", "ba", "aab", NULL, NULL}, false}, /* "ab" ends "aab" */
        {{"\r\n", "\n", NULL, NULL, NULL}, false},
    };
    enum { LEN = 400 };
    static char in[LEN + 1];
    static feed_expect want[LEN + 1];
    uint64_t seed = 7;
    for (size_t s = 0; s < sizeof(sets) / sizeof(sets[0]); s++) {
        for (int strip = 0; strip < 2; strip++) {
            weft_codec_config cfg = delim_cfg(sets[s].delims, 6, strip, false);
            for (size_t i = 0; i < LEN; i++)
                in[i] = "abXAB\n\r"[feed_rand(&seed) % 7];
            /* 'Z' starts no delimiter, so nothing is left waiting on a partial one. */
            in[LEN] = 'Z';
            size_t left;
            size_t n = model(&cfg, in, LEN + 1, want, LEN + 1, &left);
            size_t one = LEN + 1;
            check_reads(&cfg, "generated, one read", in, LEN + 1, &one, 1, want, n, left);
            check_every_chunking(&cfg, "generated", in, LEN + 1);
            if (!sets[s].nested)
                feed_check_stream(&cfg, "generated", in, LEN + 1, want, n, (long)left, false);
            /* fail_fast changes when errors come, never which. */
            cfg.delimiter.fail_fast = true;
            check_every_chunking(&cfg, "generated fail_fast", in, LEN + 1);
            if (!sets[s].nested)
                feed_check_stream(&cfg, "generated fail_fast", in, LEN + 1, NULL, 0, (long)left,
                                  false);
        }
    }
}

static void test_prot_none_guard(void **unused)
{
    (void)unused;
    static const char *const many[] = {"XYZW", "Z", "YZ", NULL};
    static const char *inputs[] = {"abc", "abcX", "XYZ", "abcdefghijkXYZ", "X", "", "YZW"};
    weft_codec_config cfgs[2] = {delim_cfg(many, 8192, true, true), delim_cfg(many, 2, true, true)};
    feed_guard g;
    feed_guard_init(&g, 4096);
    for (size_t c = 0; c < 2; c++) {
        weft_codec codec;
        assert_int_equal(weft_codec_init(&codec, &cfgs[c]), 0);
        for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
            size_t n = strlen(inputs[i]);
            for (size_t k = 0; k <= n; k++) {
                weft_codec_state st;
                weft_codec_state_init(&st);
                weft_frame f;
                const uint8_t *p = feed_guard_place(&g, inputs[i], k);
                int rc = weft_codec_decode(&codec, &st, p, k, &f);
                assert_true(rc == WEFT_FRAME || rc == WEFT_AGAIN || rc == WEFT_ETOOLONG);
                assert_true(f.consumed <= k);
            }
        }
        weft_codec_destroy(&codec);
    }
    feed_guard_free(&g);
}

static void test_bad_config(void **unused)
{
    (void)unused;
    weft_codec codec;
    weft_codec_config cfg;
    weft_codec_config_init(&cfg);
    cfg.kind = WEFT_CODEC_DELIMITER;
    assert_int_equal(weft_codec_init(&codec, &cfg), WEFT_EINVAL); /* no delimiter */
    cfg = delim_cfg(XY, 8192, true, true);
    cfg.delimiter.delimiters[0].len = 0;
    assert_int_equal(weft_codec_init(&codec, &cfg), WEFT_EINVAL);
    cfg = delim_cfg(XY, 8192, true, true);
    cfg.delimiter.delimiters[0].len = WEFT_DELIMITER_MAX_LEN + 1;
    assert_int_equal(weft_codec_init(&codec, &cfg), WEFT_EINVAL);
    cfg = delim_cfg(XY, 0, true, true);
    assert_int_equal(weft_codec_init(&codec, &cfg), WEFT_EINVAL);
    cfg = delim_cfg(XY, 8192, true, true);
    cfg.delimiter.count = WEFT_DELIMITER_MAX + 1;
    assert_int_equal(weft_codec_init(&codec, &cfg), WEFT_EINVAL);
}

static void test_encoder(void **unused)
{
    (void)unused;
    static const char *const two[] = {"\r\n", "\n", NULL};
    weft_codec_config cfg = delim_cfg(two, 8192, true, true);
    weft_codec codec;
    weft_encoding enc;
    assert_int_equal(weft_codec_init(&codec, &cfg), 0);
    assert_int_equal(weft_codec_encode(&codec, (const uint8_t *)"hi", 2, &enc), 0);
    assert_int_equal(enc.head_len, 0);
    assert_int_equal(enc.tail_len, 2);
    assert_memory_equal(enc.tail, "\r\n", 2);
    weft_codec_destroy(&codec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_match_netty),
        cmocka_unit_test(test_single_delimiter),
        cmocka_unit_test(test_shortest_frame_wins),
        cmocka_unit_test(test_cr_ends_a_frame_at_once),
        cmocka_unit_test(test_cr_then_lf_in_a_later_read),
        cmocka_unit_test(test_keep_delimiter),
        cmocka_unit_test(test_too_long_fail_fast),
        cmocka_unit_test(test_too_long_not_fail_fast),
        cmocka_unit_test(test_line_delimiters_behave_like_line_codec),
        cmocka_unit_test(test_too_long_with_nested_delimiters),
        cmocka_unit_test(test_close_on_error),
        cmocka_unit_test(test_generated_streams),
        cmocka_unit_test(test_prot_none_guard),
        cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_encoder),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
