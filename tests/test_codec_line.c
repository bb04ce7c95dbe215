/* The line codec (netty's LineBasedFrameDecoder): every case decoded whole, split at every
 * index, one byte per read and in random chunkings must give the same frames and errors. */
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

static weft_codec_config line_cfg(size_t max, bool strip, bool fail_fast)
{
    weft_codec_config cfg;
    weft_codec_config_init(&cfg);
    cfg.kind = WEFT_CODEC_LINE;
    cfg.line.max_length = max;
    cfg.line.strip_delimiter = strip;
    cfg.line.fail_fast = fail_fast;
    return cfg;
}

static void test_defaults_match_netty(void **unused)
{
    (void)unused;
    weft_codec_config cfg;
    weft_codec_config_init(&cfg);
    assert_int_equal(cfg.kind, WEFT_CODEC_NONE);
    assert_int_equal(cfg.line.max_length, 8192);
    assert_true(cfg.line.strip_delimiter);
    assert_false(cfg.line.fail_fast);
    assert_false(cfg.line.close_on_error);
    assert_false(cfg.line.encode_crlf);
}

static void test_plain_lines(void **unused)
{
    (void)unused;
    static const feed_case cases[] = {
        {"LF and CRLF",
         FEED_INPUT("abc\ndef\r\nghi\n"),
         {FEED_FRAME("abc"), FEED_FRAME("def"), FEED_FRAME("ghi"), FEED_END},
         0},
        {"empty lines",
         FEED_INPUT("\n\r\n\n"),
         {FEED_FRAME(""), FEED_FRAME(""), FEED_FRAME(""), FEED_END},
         0},
        {"unterminated tail stays buffered",
         FEED_INPUT("abc\ndef"),
         {FEED_FRAME("abc"), FEED_END},
         3},
        {"lone CR is data", FEED_INPUT("a\rb\n"), {FEED_FRAME("a\rb"), FEED_END}, 0},
        {"only the CR before LF is delimiter",
         FEED_INPUT("a\r\r\n"),
         {FEED_FRAME("a\r"), FEED_END},
         0},
        {"NUL bytes are data",
         FEED_INPUT("a\0b\n\0\n"),
         {FEED_FRAME("a\0b"), FEED_FRAME("\0"), FEED_END},
         0},
        {"no line at all", FEED_INPUT("abc\r"), {FEED_END}, 4},
    };
    weft_codec_config cfg = line_cfg(8192, true, false);
    size_t n = feed_check_table(&cfg, cases, sizeof(cases) / sizeof(cases[0]), false);
    assert_true(n > 7 * 60);
}

static void test_keep_delimiter(void **unused)
{
    (void)unused;
    static const feed_case cases[] = {
        {"delimiters kept",
         FEED_INPUT("abc\ndef\r\n\n"),
         {FEED_FRAME("abc\n"), FEED_FRAME("def\r\n"), FEED_FRAME("\n"), FEED_END},
         0},
        /* max_length never counts the delimiter, stripped or not. */
        {"limit excludes delimiter",
         FEED_INPUT("abc\r\nabcd\n"),
         {FEED_FRAME("abc\r\n"), FEED_ERROR(WEFT_ETOOLONG), FEED_END},
         0},
    };
    weft_codec_config cfg = line_cfg(3, false, false);
    feed_check_table(&cfg, cases, sizeof(cases) / sizeof(cases[0]), false);
}

/* The over-long cases hold for both fail_fast settings: the error comes earlier with
 * fail_fast, but the sequence of frames and errors is the same. */
static const feed_case too_long_cases[] = {
    {"exactly max_length", FEED_INPUT("abc\n"), {FEED_FRAME("abc"), FEED_END}, 0},
    /* netty, split after the CR, would count it and discard: we give the one-read answer. */
    {"CR at the limit",
     FEED_INPUT("abc\r\nxy\n"),
     {FEED_FRAME("abc"), FEED_FRAME("xy"), FEED_END},
     0},
    {"CR at the limit not followed by LF",
     FEED_INPUT("abc\rx\nok\n"),
     {FEED_ERROR(WEFT_ETOOLONG), FEED_FRAME("ok"), FEED_END},
     0},
    {"two CRs at the limit",
     FEED_INPUT("abc\r\r\nok\n"),
     {FEED_ERROR(WEFT_ETOOLONG), FEED_FRAME("ok"), FEED_END},
     0},
    {"discard then recover",
     FEED_INPUT("abcd\nxy\n"),
     {FEED_ERROR(WEFT_ETOOLONG), FEED_FRAME("xy"), FEED_END},
     0},
    {"discard CRLF line then recover",
     FEED_INPUT("abcdefghij\r\nok\r\n"),
     {FEED_ERROR(WEFT_ETOOLONG), FEED_FRAME("ok"), FEED_END},
     0},
    {"one error per long line",
     FEED_INPUT("abcdefg\nabcdefgh\r\n\nabc\n"),
     {FEED_ERROR(WEFT_ETOOLONG), FEED_ERROR(WEFT_ETOOLONG), FEED_FRAME(""), FEED_FRAME("abc"),
      FEED_END},
     0},
    {"long line after a good one",
     FEED_INPUT("ok\nabcdefgh\nok\n"),
     {FEED_FRAME("ok"), FEED_ERROR(WEFT_ETOOLONG), FEED_FRAME("ok"), FEED_END},
     0},
    {"long line ends the stream",
     FEED_INPUT("ok\nabcd\n"),
     {FEED_FRAME("ok"), FEED_ERROR(WEFT_ETOOLONG), FEED_END},
     0},
};

static void test_too_long_not_fail_fast(void **unused)
{
    (void)unused;
    weft_codec_config cfg = line_cfg(3, true, false);
    feed_check_table(&cfg, too_long_cases, sizeof(too_long_cases) / sizeof(too_long_cases[0]),
                     false);
    /* Without fail_fast an unterminated long line is discarded silently. */
    static const feed_case quiet = {
        "unterminated long line", FEED_INPUT("ok\nabcdefgh"), {FEED_FRAME("ok"), FEED_END}, 0};
    feed_check_case(&cfg, &quiet, false);
}

static void test_too_long_fail_fast(void **unused)
{
    (void)unused;
    weft_codec_config cfg = line_cfg(3, true, true);
    feed_check_table(&cfg, too_long_cases, sizeof(too_long_cases) / sizeof(too_long_cases[0]),
                     false);
    /* With fail_fast the error comes before the line ends, even if it never does. */
    static const feed_case loud = {"unterminated long line",
                                   FEED_INPUT("ok\nabcdefgh"),
                                   {FEED_FRAME("ok"), FEED_ERROR(WEFT_ETOOLONG), FEED_END},
                                   0};
    feed_check_case(&cfg, &loud, false);
}

static void test_fail_fast_reports_before_line_end(void **unused)
{
    (void)unused;
    weft_codec_config cfg = line_cfg(3, true, true);
    weft_codec codec;
    assert_int_equal(weft_codec_init(&codec, &cfg), 0);
    weft_codec_state st;
    weft_codec_state_init(&st);
    weft_frame f;

    /* Four bytes and no LF: already too long, reported now and dropped. */
    assert_int_equal(weft_codec_decode(&codec, &st, (const uint8_t *)"abcd", 4, &f), WEFT_ETOOLONG);
    assert_int_equal(f.consumed, 4);
    assert_true(f.recoverable);
    assert_non_null(f.reason);
    /* The rest of the line is dropped without a second error, then decoding goes on. */
    assert_int_equal(weft_codec_decode(&codec, &st, (const uint8_t *)"ef", 2, &f), WEFT_AGAIN);
    assert_int_equal(f.consumed, 2);
    assert_int_equal(weft_codec_decode(&codec, &st, (const uint8_t *)"g\nhi\n", 5, &f), WEFT_FRAME);
    assert_int_equal(f.offset, 2);
    assert_int_equal(f.length, 2);
    assert_int_equal(f.consumed, 5);
    weft_codec_state_destroy(&codec, &st);
    weft_codec_destroy(&codec);
}

static void test_close_on_error(void **unused)
{
    (void)unused;
    weft_codec_config cfg = line_cfg(3, true, false);
    cfg.line.close_on_error = true;
    static const feed_case cases[] = {
        {"too long closes",
         FEED_INPUT("ok\nabcd\nxy\n"),
         {FEED_FRAME("ok"), FEED_ERROR(WEFT_ETOOLONG), FEED_END},
         FEED_NO_LEFTOVER},
    };
    feed_check_table(&cfg, cases, 1, false);

    weft_codec codec;
    assert_int_equal(weft_codec_init(&codec, &cfg), 0);
    weft_codec_state st;
    weft_codec_state_init(&st);
    weft_frame f;
    assert_int_equal(weft_codec_decode(&codec, &st, (const uint8_t *)"abcd\n", 5, &f),
                     WEFT_ETOOLONG);
    assert_false(f.recoverable);
    weft_codec_destroy(&codec);
}

/* A reference model, written independently of the decoder: split at LF, drop one CR before
 * it, and compare with max_length. Used to check a long generated stream. */
static size_t model_lines(const char *in, size_t len, size_t max, feed_expect *out, size_t cap)
{
    size_t n = 0, start = 0;
    for (size_t i = 0; i < len; i++) {
        if (in[i] != '\n')
            continue;
        size_t end = i;
        if (end > start && in[end - 1] == '\r')
            end--;
        assert_true(n < cap);
        if (end - start > max)
            out[n++] = (feed_expect)FEED_ERROR(WEFT_ETOOLONG);
        else
            out[n++] = (feed_expect){WEFT_FRAME, in + start, end - start};
        start = i + 1;
    }
    return n;
}

static void test_generated_stream(void **unused)
{
    (void)unused;
    enum { LEN = 600, MAX = 12 };
    static char in[LEN];
    uint64_t seed = 42;
    size_t i = 0;
    while (i < LEN) {
        uint64_t r = feed_rand(&seed);
        size_t line = (size_t)(r % 20); /* some over MAX */
        for (size_t k = 0; k < line && i < LEN; k++)
            in[i++] = (char)("ab\r\0xyz"[feed_rand(&seed) % 7]);
        if (i < LEN && (r >> 32) % 3 == 0)
            in[i++] = '\r';
        if (i < LEN)
            in[i++] = '\n';
    }
    /* Make sure the stream ends on a line end so the model needs no tail rule. */
    in[LEN - 1] = '\n';

    feed_case c = {"generated", in, LEN, {FEED_END}, 0};
    feed_expect all[LEN];
    size_t n = model_lines(in, LEN, MAX, all, LEN);
    weft_codec_config fast = line_cfg(MAX, true, true);
    weft_codec_config slow = line_cfg(MAX, true, false);
    /* Check the stream in windows of the model's events so the expectation fits the case. */
    size_t done = 0, pos = 0;
    while (done < n) {
        size_t take = n - done < FEED_MAX_EXPECT - 1 ? n - done : FEED_MAX_EXPECT - 1;
        size_t end = pos, seen = 0;
        while (seen < take) {
            if (in[end] == '\n')
                seen++;
            end++;
        }
        c.input = in + pos;
        c.input_len = end - pos;
        for (size_t k = 0; k < take; k++) {
            c.expect[k] = all[done + k];
            if (c.expect[k].rc == WEFT_FRAME)
                c.expect[k].data = all[done + k].data;
        }
        c.expect[take] = (feed_expect)FEED_END;
        feed_check_case(&fast, &c, false);
        feed_check_case(&slow, &c, false);
        done += take;
        pos = end;
    }
}

static void test_prot_none_guard(void **unused)
{
    (void)unused;
    static const char *inputs[] = {"abc", "abc\r", "\r", "abcdefghijklmnop", "x\n", ""};
    weft_codec_config cfgs[3] = {line_cfg(8192, true, false), line_cfg(3, true, true),
                                 line_cfg(3, false, false)};
    feed_guard g;
    feed_guard_init(&g, 4096);
    for (size_t c = 0; c < 3; c++) {
        weft_codec codec;
        assert_int_equal(weft_codec_init(&codec, &cfgs[c]), 0);
        for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
            size_t n = strlen(inputs[i]);
            weft_codec_state st;
            weft_codec_state_init(&st);
            weft_frame f;
            /* Every prefix, as a growing buffer ending at the PROT_NONE page. */
            for (size_t k = 0; k <= n; k++) {
                const uint8_t *p = feed_guard_place(&g, inputs[i], k);
                int rc = weft_codec_decode(&codec, &st, p, k, &f);
                assert_true(rc == WEFT_FRAME || rc == WEFT_AGAIN || rc == WEFT_ETOOLONG);
                assert_true(f.consumed <= k);
                if (f.consumed > 0)
                    weft_codec_state_init(&st);
            }
        }
        weft_codec_destroy(&codec);
    }
    feed_guard_free(&g);
}

static void test_shrunk_buffer_is_rescanned(void **unused)
{
    (void)unused;
    /* The scan offset kept in state must never send the decoder past a shorter buffer. */
    weft_codec_config cfg = line_cfg(8192, true, false);
    weft_codec codec;
    assert_int_equal(weft_codec_init(&codec, &cfg), 0);
    weft_codec_state st;
    weft_codec_state_init(&st);
    weft_frame f;
    assert_int_equal(weft_codec_decode(&codec, &st, (const uint8_t *)"abcdefgh", 8, &f),
                     WEFT_AGAIN);
    assert_int_equal(weft_codec_decode(&codec, &st, (const uint8_t *)"a\n", 2, &f), WEFT_FRAME);
    assert_int_equal(f.length, 1);
    assert_int_equal(weft_codec_decode(&codec, &st, NULL, 0, &f), WEFT_AGAIN);
    assert_int_equal(f.consumed, 0);
    weft_codec_destroy(&codec);
}

static void test_bad_config(void **unused)
{
    (void)unused;
    weft_codec_config cfg = line_cfg(0, true, false);
    weft_codec codec;
    assert_int_equal(weft_codec_init(&codec, &cfg), WEFT_EINVAL);
}

static void test_encoder(void **unused)
{
    (void)unused;
    weft_codec_config cfg = line_cfg(8192, true, false);
    weft_codec codec;
    weft_encoding enc;
    assert_int_equal(weft_codec_init(&codec, &cfg), 0);
    assert_int_equal(weft_codec_encode(&codec, (const uint8_t *)"hi", 2, &enc), 0);
    assert_int_equal(enc.head_len, 0);
    assert_int_equal(enc.tail_len, 1);
    assert_memory_equal(enc.tail, "\n", 1);
    weft_codec_destroy(&codec);

    cfg.line.encode_crlf = true;
    assert_int_equal(weft_codec_init(&codec, &cfg), 0);
    assert_int_equal(weft_codec_encode(&codec, (const uint8_t *)"hi", 2, &enc), 0);
    assert_int_equal(enc.tail_len, 2);
    assert_memory_equal(enc.tail, "\r\n", 2);

    /* What the encoder frames, the decoder gives back. */
    uint8_t wire[8];
    memcpy(wire, "hi", 2);
    memcpy(wire + 2, enc.tail, enc.tail_len);
    weft_codec_state st;
    weft_codec_state_init(&st);
    weft_frame f;
    assert_int_equal(weft_codec_decode(&codec, &st, wire, 2 + enc.tail_len, &f), WEFT_FRAME);
    assert_int_equal(f.length, 2);
    assert_memory_equal(wire + f.offset, "hi", 2);
    weft_codec_destroy(&codec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_match_netty),
        cmocka_unit_test(test_plain_lines),
        cmocka_unit_test(test_keep_delimiter),
        cmocka_unit_test(test_too_long_not_fail_fast),
        cmocka_unit_test(test_too_long_fail_fast),
        cmocka_unit_test(test_fail_fast_reports_before_line_end),
        cmocka_unit_test(test_close_on_error),
        cmocka_unit_test(test_generated_stream),
        cmocka_unit_test(test_prot_none_guard),
        cmocka_unit_test(test_shrunk_buffer_is_rescanned),
        cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_encoder),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
