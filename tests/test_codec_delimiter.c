/* The delimiter codec (netty's DelimiterBasedFrameDecoder): shortest frame wins, ties go to
 * the delimiter listed first, and no chunking of the stream changes the frames or errors. */
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
    /* "A" completes first, but "XAB" starting earlier gives the shorter frame: a decoder
     * that has only seen "abXA" must wait, or a split after the A would change the result. */
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
    feed_check_table(&cfg, c1, 2, false);

    /* Same start: netty compares with '<', so the delimiter listed first wins the tie. */
    static const char *const dd_first[] = {"\n\n", "\n", NULL};
    static const feed_case c2[] = {
        {"tie goes to first listed",
         FEED_INPUT("ab\n\ncd\nx"),
         {FEED_FRAME("ab"), FEED_FRAME("cd"), FEED_END},
         1},
        /* "\n" at the very end may still become "\n\n": it waits. */
        {"tie still open at the end", FEED_INPUT("ab\n\ncd\n"), {FEED_FRAME("ab"), FEED_END}, 3},
    };
    cfg = delim_cfg(dd_first, 8192, true, true);
    feed_check_table(&cfg, c2, 2, false);

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

/* A frame already too long at the start of a delimiter that is still arriving (and would
 * win the tie) is too long whichever delimiter ends it: fail_fast reports it at once. */
static void test_too_long_while_delimiter_undecided(void **unused)
{
    (void)unused;
    static const char *const d[] = {"\n\r", "\n", NULL};
    static const feed_case cases[] = {
        {"undecided at the end",
         FEED_INPUT("\0\0aabbb\rab\r\n"),
         {FEED_ERROR(WEFT_ETOOLONG), FEED_END},
         1},
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
    feed_check_table(&cfg, cases, 3, false);
    static const feed_case quiet[] = {
        {"undecided at the end", FEED_INPUT("\0\0aabbb\rab\r\n"), {FEED_END}, 1},
        {"first listed wins",
         FEED_INPUT("\0\0aabbb\rab\r\n\rok\n\r"),
         {FEED_ERROR(WEFT_ETOOLONG), FEED_FRAME("ok"), FEED_END},
         0},
    };
    cfg.delimiter.fail_fast = false;
    feed_check_table(&cfg, quiet, 2, false);
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

/* netty's single-read decoding, written plainly: from each frame start, the first position
 * where some delimiter matches ends the frame, the first listed winning at that position. */
static size_t model(const weft_codec_config *cfg, const char *in, size_t len, feed_expect *out,
                    size_t cap)
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
    return n;
}

static void test_generated_streams(void **unused)
{
    (void)unused;
    static const char *const sets[][5] = {
        {"XAB", "A", "\n\n", "\n", NULL},
        {"ab", "ba", "aab", NULL, NULL},
        {"\r\n", "\n", NULL, NULL, NULL},
    };
    enum { LEN = 400 };
    static char in[LEN + 1];
    static feed_expect want[LEN];
    uint64_t seed = 7;
    for (size_t s = 0; s < sizeof(sets) / sizeof(sets[0]); s++) {
        for (int strip = 0; strip < 2; strip++) {
            weft_codec_config cfg = delim_cfg(sets[s], 6, strip, false);
            for (size_t i = 0; i < LEN; i++)
                in[i] = "abXAB\n\r"[feed_rand(&seed) % 7];
            /* 'Z' starts no delimiter, so nothing is left waiting on a partial one. */
            in[LEN] = 'Z';
            size_t n = model(&cfg, in, LEN + 1, want, LEN);
            feed_check_stream(&cfg, "generated", in, LEN + 1, want, n, FEED_NO_LEFTOVER, false);
            /* fail_fast changes when errors come, never which. */
            cfg.delimiter.fail_fast = true;
            feed_check_stream(&cfg, "generated fail_fast", in, LEN + 1, NULL, 0, FEED_NO_LEFTOVER,
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
        cmocka_unit_test(test_keep_delimiter),
        cmocka_unit_test(test_too_long_fail_fast),
        cmocka_unit_test(test_too_long_not_fail_fast),
        cmocka_unit_test(test_line_delimiters_behave_like_line_codec),
        cmocka_unit_test(test_too_long_while_delimiter_undecided),
        cmocka_unit_test(test_close_on_error),
        cmocka_unit_test(test_generated_streams),
        cmocka_unit_test(test_prot_none_guard),
        cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_encoder),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
