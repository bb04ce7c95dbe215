/* The fixed-length codec (netty's FixedLengthFrameDecoder). */
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

static weft_codec_config fixed_cfg(size_t n)
{
    weft_codec_config cfg;
    weft_codec_config_init(&cfg);
    cfg.kind = WEFT_CODEC_FIXED_LENGTH;
    cfg.fixed_length.frame_length = n;
    return cfg;
}

static void test_frames(void **unused)
{
    (void)unused;
    static const feed_case three[] = {
        {"whole frames",
         FEED_INPUT("abcdefghi"),
         {FEED_FRAME("abc"), FEED_FRAME("def"), FEED_FRAME("ghi"), FEED_END},
         0},
        {"partial tail stays",
         FEED_INPUT("abcdefg"),
         {FEED_FRAME("abc"), FEED_FRAME("def"), FEED_END},
         1},
        {"less than a frame", FEED_INPUT("ab"), {FEED_END}, 2},
        {"binary",
         FEED_INPUT("\0\n\r\xff\0\0"),
         {FEED_FRAME("\0\n\r"), FEED_FRAME("\xff\0\0"), FEED_END},
         0},
    };
    weft_codec_config cfg = fixed_cfg(3);
    feed_check_table(&cfg, three, sizeof(three) / sizeof(three[0]), false);

    static const feed_case one[] = {
        {"one-byte frames",
         FEED_INPUT("xyz"),
         {FEED_FRAME("x"), FEED_FRAME("y"), FEED_FRAME("z"), FEED_END},
         0},
    };
    cfg = fixed_cfg(1);
    feed_check_table(&cfg, one, 1, false);
}

static void test_need_is_frame_length(void **unused)
{
    (void)unused;
    weft_codec_config cfg = fixed_cfg(4096);
    weft_codec codec;
    assert_int_equal(weft_codec_init(&codec, &cfg), 0);
    weft_codec_state st;
    weft_codec_state_init(&st);
    weft_frame f;
    static uint8_t buf[5000];
    assert_int_equal(weft_codec_decode(&codec, &st, buf, 100, &f), WEFT_AGAIN);
    assert_int_equal(f.need, 4096);
    assert_int_equal(f.consumed, 0);
    assert_int_equal(weft_codec_decode(&codec, &st, buf, 5000, &f), WEFT_FRAME);
    assert_int_equal(f.offset, 0);
    assert_int_equal(f.length, 4096);
    assert_int_equal(f.consumed, 4096);
    weft_codec_destroy(&codec);
}

static void test_prot_none_guard(void **unused)
{
    (void)unused;
    weft_codec_config cfg = fixed_cfg(8);
    weft_codec codec;
    assert_int_equal(weft_codec_init(&codec, &cfg), 0);
    feed_guard g;
    feed_guard_init(&g, 64);
    for (size_t k = 0; k <= 16; k++) {
        weft_codec_state st;
        weft_codec_state_init(&st);
        weft_frame f;
        const uint8_t *p = feed_guard_place(&g, "0123456789abcdef", k);
        int rc = weft_codec_decode(&codec, &st, p, k, &f);
        assert_int_equal(rc, k < 8 ? WEFT_AGAIN : WEFT_FRAME);
    }
    feed_guard_free(&g);
    weft_codec_destroy(&codec);
}

static void test_bad_config(void **unused)
{
    (void)unused;
    weft_codec_config cfg = fixed_cfg(0);
    weft_codec codec;
    assert_int_equal(weft_codec_init(&codec, &cfg), WEFT_EINVAL);
}

static void test_encoder_refuses_wrong_size(void **unused)
{
    (void)unused;
    weft_codec_config cfg = fixed_cfg(4);
    weft_codec codec;
    weft_encoding enc;
    assert_int_equal(weft_codec_init(&codec, &cfg), 0);
    assert_int_equal(weft_codec_encode(&codec, (const uint8_t *)"abcd", 4, &enc), 0);
    assert_int_equal(enc.head_len, 0);
    assert_int_equal(enc.tail_len, 0);
    assert_int_equal(weft_codec_encode(&codec, (const uint8_t *)"abc", 3, &enc), WEFT_EINVAL);
    assert_int_equal(weft_codec_encode(&codec, (const uint8_t *)"abcde", 5, &enc), WEFT_EINVAL);
    weft_codec_destroy(&codec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frames),
        cmocka_unit_test(test_need_is_frame_length),
        cmocka_unit_test(test_prot_none_guard),
        cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_encoder_refuses_wrong_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
