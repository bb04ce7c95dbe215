/* The length-field codec: netty's LengthFieldBasedFrameDecoder (all seven worked examples of
 * its javadoc, 1- to 8-byte fields, both byte orders, every error) and LengthFieldPrepender.
 * Every case is checked whole, split at every index, one byte per read and in random
 * chunkings. */
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

static weft_codec_config lf_cfg(size_t offset, size_t len, int64_t adj, size_t strip)
{
    weft_codec_config cfg;
    weft_codec_config_init(&cfg);
    cfg.kind = WEFT_CODEC_LENGTH_FIELD;
    cfg.length_field.length_field_offset = offset;
    cfg.length_field.length_field_length = len;
    cfg.length_field.length_adjustment = adj;
    cfg.length_field.initial_bytes_to_strip = strip;
    return cfg;
}

#define HW "HELLO, WORLD"

static void test_defaults_match_netty(void **unused)
{
    (void)unused;
    weft_codec_config cfg;
    weft_codec_config_init(&cfg);
    assert_int_equal(cfg.length_field.byte_order, WEFT_BIG_ENDIAN);
    assert_int_equal(cfg.length_field.length_field_offset, 0);
    assert_int_equal(cfg.length_field.length_field_length, 4);
    assert_int_equal(cfg.length_field.length_adjustment, 0);
    assert_int_equal(cfg.length_field.initial_bytes_to_strip, 0);
    assert_int_equal(cfg.length_field.max_frame_length, 1024 * 1024);
    assert_true(cfg.length_field.fail_fast);
    assert_false(cfg.length_field.length_includes_length_field_length);
    assert_int_equal(cfg.length_field.encoder_length_adjustment, 0);
}

/* Each javadoc example, twice in a row and followed by the start of a third frame. */
static void test_netty_javadoc_examples(void **unused)
{
    (void)unused;
    struct {
        weft_codec_config cfg;
        feed_case c;
    } ex[] = {
        {lf_cfg(0, 2, 0, 0),
         {"1: 2-byte field at 0, no strip",
          FEED_INPUT("\x00\x0c" HW "\x00\x0c" HW "\x00"),
          {FEED_FRAME("\x00\x0c" HW), FEED_FRAME("\x00\x0c" HW), FEED_END},
          1}},
        {lf_cfg(0, 2, 0, 2),
         {"2: 2-byte field at 0, strip header",
          FEED_INPUT("\x00\x0c" HW "\x00\x0c" HW "\x00"),
          {FEED_FRAME(HW), FEED_FRAME(HW), FEED_END},
          1}},
        {lf_cfg(0, 2, -2, 0),
         {"3: field holds the whole length",
          FEED_INPUT("\x00\x0e" HW "\x00\x0e" HW "\x00"),
          {FEED_FRAME("\x00\x0e" HW), FEED_FRAME("\x00\x0e" HW), FEED_END},
          1}},
        {lf_cfg(2, 3, 0, 0),
         {"4: 3-byte field after a 2-byte header",
          FEED_INPUT("\xca\xfe\x00\x00\x0c" HW "\xca\xfe\x00\x00\x0c" HW "\xca\xfe"),
          {FEED_FRAME("\xca\xfe\x00\x00\x0c" HW), FEED_FRAME("\xca\xfe\x00\x00\x0c" HW), FEED_END},
          2}},
        {lf_cfg(0, 3, 2, 0),
         {"5: 3-byte field before a 2-byte header",
          FEED_INPUT("\x00\x00\x0c\xca\xfe" HW "\x00\x00\x0c\xca\xfe" HW "\x00\x00"),
          {FEED_FRAME("\x00\x00\x0c\xca\xfe" HW), FEED_FRAME("\x00\x00\x0c\xca\xfe" HW), FEED_END},
          2}},
        {lf_cfg(1, 2, 1, 3),
         {"6: field inside the header, strip HDR1 and field",
          FEED_INPUT("\xca\x00\x0c\xfe" HW "\xca\x00\x0c\xfe" HW "\xca\x00\x0c"),
          {FEED_FRAME("\xfe" HW), FEED_FRAME("\xfe" HW), FEED_END},
          3}},
        {lf_cfg(1, 2, -3, 3),
         {"7: field holds the whole length, strip HDR1 and field",
          FEED_INPUT("\xca\x00\x10\xfe" HW "\xca\x00\x10\xfe" HW "\xca"),
          {FEED_FRAME("\xfe" HW), FEED_FRAME("\xfe" HW), FEED_END},
          1}},
    };
    for (size_t i = 0; i < sizeof(ex) / sizeof(ex[0]); i++)
        feed_check_case(&ex[i].cfg, &ex[i].c, false);
}

static void test_field_sizes_and_byte_orders(void **unused)
{
    (void)unused;
    struct {
        weft_codec_config cfg;
        weft_byte_order order;
        feed_case c;
    } ex[] = {
        {lf_cfg(0, 1, 0, 1),
         WEFT_BIG_ENDIAN,
         {"1-byte",
          FEED_INPUT("\x03"
                     "abc\x00\x01z"),
          {FEED_FRAME("abc"), FEED_FRAME(""), FEED_FRAME("z"), FEED_END},
          0}},
        {lf_cfg(0, 2, 0, 2),
         WEFT_LITTLE_ENDIAN,
         {"2-byte little endian",
          FEED_INPUT("\x03\x00"
                     "abc\x01\x00z"),
          {FEED_FRAME("abc"), FEED_FRAME("z"), FEED_END},
          0}},
        {lf_cfg(0, 3, 0, 3),
         WEFT_BIG_ENDIAN,
         {"3-byte big endian",
          FEED_INPUT("\x00\x00\x03"
                     "abc\x00\x00\x01z"),
          {FEED_FRAME("abc"), FEED_FRAME("z"), FEED_END},
          0}},
        {lf_cfg(0, 3, 0, 3),
         WEFT_LITTLE_ENDIAN,
         {"3-byte little endian",
          FEED_INPUT("\x03\x00\x00"
                     "abc\x01\x00\x00z"),
          {FEED_FRAME("abc"), FEED_FRAME("z"), FEED_END},
          0}},
        {lf_cfg(0, 4, 0, 4),
         WEFT_LITTLE_ENDIAN,
         {"4-byte little endian",
          FEED_INPUT("\x02\x00\x00\x00"
                     "ab"),
          {FEED_FRAME("ab"), FEED_END},
          0}},
        {lf_cfg(0, 8, 0, 8),
         WEFT_BIG_ENDIAN,
         {"8-byte big endian",
          FEED_INPUT("\0\0\0\0\0\0\0\x03"
                     "abc\0\0\0\0\0\0\0\0"),
          {FEED_FRAME("abc"), FEED_FRAME(""), FEED_END},
          0}},
        {lf_cfg(0, 8, 0, 8),
         WEFT_LITTLE_ENDIAN,
         {"8-byte little endian",
          FEED_INPUT("\x03\0\0\0\0\0\0\0"
                     "abc"),
          {FEED_FRAME("abc"), FEED_END},
          0}},
        /* A 2-byte field at offset 3 in a 5-byte header, adjusted for the trailing byte. */
        {lf_cfg(3, 2, 1, 0),
         WEFT_BIG_ENDIAN,
         {"field in the middle",
          FEED_INPUT("HDR\x00\x02!ab"),
          {FEED_FRAME("HDR\x00\x02!ab"), FEED_END},
          0}},
    };
    for (size_t i = 0; i < sizeof(ex) / sizeof(ex[0]); i++) {
        ex[i].cfg.length_field.byte_order = ex[i].order;
        feed_check_case(&ex[i].cfg, &ex[i].c, false);
    }
}

static void test_short_fields_are_unsigned(void **unused)
{
    (void)unused;
    /* 0xff in a 1-byte field is 255, not -1: a 255-byte frame follows. */
    static char in[1 + 255 + 2];
    in[0] = (char)0xff;
    for (size_t i = 1; i <= 255; i++)
        in[i] = (char)('a' + i % 26);
    in[256] = 0x01;
    in[257] = 'z';
    feed_expect want[2] = {{WEFT_FRAME, in + 1, 255}, {WEFT_FRAME, "z", 1}};
    weft_codec_config cfg = lf_cfg(0, 1, 0, 1);
    /* The next header (1) has arrived but not its byte; then it has. */
    feed_check_stream(&cfg, "1-byte 255", in, 257, want, 1, 1, false);
    feed_check_stream(&cfg, "1-byte 255 and more", in, 258, want, 2, 0, false);

    /* 0x80000000 in a 4-byte field is 2 GiB, too long, not negative. */
    cfg = lf_cfg(0, 4, 0, 0);
    static const feed_case big = {"4-byte top bit",
                                  FEED_INPUT("\x80\x00\x00\x00xyz"),
                                  {FEED_ERROR(WEFT_ETOOLONG), FEED_END},
                                  FEED_NO_LEFTOVER};
    feed_check_case(&cfg, &big, false);
}

static void test_errors(void **unused)
{
    (void)unused;
    struct {
        weft_codec_config cfg;
        feed_case c;
    } ex[] = {
        /* 8-byte fields are signed, as netty's getLong. */
        {lf_cfg(0, 8, 0, 0),
         {"8-byte negative",
          FEED_INPUT("\x80\0\0\0\0\0\0\0abc"),
          {FEED_ERROR(WEFT_ECORRUPT), FEED_END},
          FEED_NO_LEFTOVER}},
        {lf_cfg(0, 8, 0, 0),
         {"8-byte huge",
          FEED_INPUT("\x7f\xff\xff\xff\xff\xff\xff\xff"
                     "abc"),
          {FEED_ERROR(WEFT_ETOOLONG), FEED_END},
          FEED_NO_LEFTOVER}},
        /* Field + adjustment overflows int64: too long, not a wrapped small length. */
        {lf_cfg(0, 8, INT64_MAX, 0),
         {"8-byte plus adjustment overflows",
          FEED_INPUT("\x7f\xff\xff\xff\xff\xff\xff\xff"),
          {FEED_ERROR(WEFT_ETOOLONG), FEED_END},
          FEED_NO_LEFTOVER}},
        {lf_cfg(0, 8, 1, 0),
         {"8-byte plus header overflows",
          FEED_INPUT("\x7f\xff\xff\xff\xff\xff\xff\xf8"),
          {FEED_ERROR(WEFT_ETOOLONG), FEED_END},
          FEED_NO_LEFTOVER}},
        /* Negative adjustment beyond the field: the frame would end inside its header. */
        {lf_cfg(0, 2, -3, 0),
         {"shorter than header",
          FEED_INPUT("\x00\x01xyz"),
          {FEED_ERROR(WEFT_ECORRUPT), FEED_END},
          FEED_NO_LEFTOVER}},
        {lf_cfg(0, 2, INT64_MIN, 0),
         {"hugely negative adjustment",
          FEED_INPUT("\xff\xffxyz"),
          {FEED_ERROR(WEFT_ECORRUPT), FEED_END},
          FEED_NO_LEFTOVER}},
        {lf_cfg(0, 2, -2, 0),
         {"exactly the header is fine",
          FEED_INPUT("\x00\x02\x00\x01"),
          {FEED_FRAME("\x00\x02"), FEED_ERROR(WEFT_ECORRUPT), FEED_END},
          FEED_NO_LEFTOVER}},
        /* Strip beyond the frame: reported once the whole frame is here, as netty does. */
        {lf_cfg(0, 2, 0, 5),
         {"strip longer than frame",
          FEED_INPUT("\x00\x01z\x00"),
          {FEED_ERROR(WEFT_ECORRUPT), FEED_END},
          FEED_NO_LEFTOVER}},
        {lf_cfg(0, 2, 0, 3),
         {"strip exactly the frame", FEED_INPUT("\x00\x01z"), {FEED_FRAME(""), FEED_END}, 0}},
    };
    for (size_t i = 0; i < sizeof(ex) / sizeof(ex[0]); i++)
        feed_check_case(&ex[i].cfg, &ex[i].c, false);

    /* A strip error needs the whole frame before it is reported. */
    weft_codec_config cfg = lf_cfg(0, 2, 0, 5);
    static const feed_case wait = {
        "strip error waits for the frame", FEED_INPUT("\x00\x01"), {FEED_END}, 2};
    feed_check_case(&cfg, &wait, false);
}

/* max_frame_length covers the whole frame, header included, before stripping. */
static void test_max_frame_length_counts_header(void **unused)
{
    (void)unused;
    weft_codec_config cfg = lf_cfg(0, 2, 0, 2);
    cfg.length_field.max_frame_length = 5;
    static const feed_case fits = {"header + 3 = 5",
                                   FEED_INPUT("\x00\x03"
                                              "abc"),
                                   {FEED_FRAME("abc"), FEED_END},
                                   0};
    static const feed_case over = {"header + 4 = 6",
                                   FEED_INPUT("\x00\x04"
                                              "abcd"),
                                   {FEED_ERROR(WEFT_ETOOLONG), FEED_END},
                                   FEED_NO_LEFTOVER};
    feed_check_case(&cfg, &fits, false);
    feed_check_case(&cfg, &over, false);
}

/* A caller that goes on after the error gets netty's discarding: the too-long frame is
 * skipped and the next one decoded, whether the error came first (fail_fast) or last. */
static void test_too_long_discards_then_goes_on(void **unused)
{
    (void)unused;
    static const feed_case cases[] = {
        {"discard across reads",
         FEED_INPUT("\x00\x0a"
                    "0123456789\x00\x01z\x00\x02yy"),
         {FEED_ERROR(WEFT_ETOOLONG), FEED_FRAME("z"), FEED_FRAME("yy"), FEED_END},
         0},
        {"frame ends the stream",
         FEED_INPUT("\x00\x01z\x00\x0a"
                    "0123456789"),
         {FEED_FRAME("z"), FEED_ERROR(WEFT_ETOOLONG), FEED_END},
         0},
        {"two in a row",
         FEED_INPUT("\x00\x06"
                    "012345\x00\x05"
                    "01234\x00\x00"),
         {FEED_ERROR(WEFT_ETOOLONG), FEED_ERROR(WEFT_ETOOLONG), FEED_FRAME(""), FEED_END},
         0},
    };
    for (int fast = 0; fast < 2; fast++) {
        weft_codec_config cfg = lf_cfg(0, 2, 0, 2);
        cfg.length_field.max_frame_length = 6;
        cfg.length_field.fail_fast = fast;
        feed_check_table(&cfg, cases, sizeof(cases) / sizeof(cases[0]), true);
    }

    /* fail_fast reports at the header; without it, only after the last discarded byte. */
    weft_codec_config cfg = lf_cfg(0, 2, 0, 2);
    cfg.length_field.max_frame_length = 6;
    weft_codec codec;
    assert_int_equal(weft_codec_init(&codec, &cfg), 0);
    weft_codec_state st;
    weft_codec_state_init(&st);
    weft_frame f;
    assert_int_equal(weft_codec_decode(&codec, &st,
                                       (const uint8_t *)"\x00\x0a"
                                                        "01",
                                       4, &f),
                     WEFT_ETOOLONG);
    assert_false(f.recoverable);
    assert_int_equal(f.consumed, 4);
    assert_int_equal(weft_codec_decode(&codec, &st, (const uint8_t *)"234567", 6, &f), WEFT_AGAIN);
    assert_int_equal(f.consumed, 6);
    assert_int_equal(weft_codec_decode(&codec, &st, (const uint8_t *)"89\x00\x01z", 5, &f),
                     WEFT_FRAME);
    assert_int_equal(f.offset, 4);
    assert_int_equal(f.length, 1);
    assert_int_equal(f.consumed, 5);
    weft_codec_destroy(&codec);

    cfg.length_field.fail_fast = false;
    assert_int_equal(weft_codec_init(&codec, &cfg), 0);
    weft_codec_state_init(&st);
    assert_int_equal(weft_codec_decode(&codec, &st,
                                       (const uint8_t *)"\x00\x0a"
                                                        "01",
                                       4, &f),
                     WEFT_AGAIN);
    assert_int_equal(f.consumed, 4);
    assert_int_equal(weft_codec_decode(&codec, &st, (const uint8_t *)"2345678", 7, &f), WEFT_AGAIN);
    assert_int_equal(weft_codec_decode(&codec, &st, (const uint8_t *)"9\x00", 2, &f),
                     WEFT_ETOOLONG);
    assert_int_equal(f.consumed, 1);
    weft_codec_destroy(&codec);
}

/* A frame longer than INT64_MAX never ends: everything after its header is discarded, however
 * much comes. One just under it is discarded to its last byte (the count and the discarding
 * flag share the state's one word), and the next frame is found. */
static void test_discard_counts_to_int64_max(void **unused)
{
    (void)unused;
    static uint8_t junk[1 << 16];
    weft_codec_config cfg = lf_cfg(0, 8, 1, 8);
    cfg.length_field.max_frame_length = 16;
    weft_codec codec;
    assert_int_equal(weft_codec_init(&codec, &cfg), 0);
    weft_codec_state st;
    weft_codec_state_init(&st);
    weft_frame f;
    const uint8_t huge[8] = {0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}; /* + 1: huge */
    assert_int_equal(weft_codec_decode(&codec, &st, huge, 8, &f), WEFT_ETOOLONG);
    assert_int_equal(f.consumed, 8);
    for (int i = 0; i < 64; i++) {
        assert_int_equal(weft_codec_decode(&codec, &st, junk, sizeof(junk), &f), WEFT_AGAIN);
        assert_int_equal(f.consumed, sizeof(junk));
    }
    weft_codec_destroy(&codec);

    /* 2^62 - 1 + 1 + 8 bytes: the count goes down by what arrives and stays discarding. */
    cfg = lf_cfg(0, 8, 0, 8);
    cfg.length_field.max_frame_length = 16;
    assert_int_equal(weft_codec_init(&codec, &cfg), 0);
    weft_codec_state_init(&st);
    const uint8_t big[8] = {0x3f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    assert_int_equal(weft_codec_decode(&codec, &st, big, 8, &f), WEFT_ETOOLONG);
    uint64_t left = st.u64 & ~((uint64_t)1 << 63);
    assert_true(st.u64 >> 63);
    assert_true(left == 0x3fffffffffffffffull);
    assert_int_equal(weft_codec_decode(&codec, &st, junk, sizeof(junk), &f), WEFT_AGAIN);
    assert_true((st.u64 & ~((uint64_t)1 << 63)) == left - sizeof(junk));
    weft_codec_destroy(&codec);

    /* A short discard ends, and the frame after it is decoded. */
    cfg = lf_cfg(0, 1, 0, 1);
    cfg.length_field.max_frame_length = 4;
    assert_int_equal(weft_codec_init(&codec, &cfg), 0);
    weft_codec_state_init(&st);
    assert_int_equal(weft_codec_decode(&codec, &st,
                                       (const uint8_t *)"\x0a"
                                                        "0123",
                                       5, &f),
                     WEFT_ETOOLONG);
    assert_int_equal(weft_codec_decode(&codec, &st, (const uint8_t *)"456789\x01z", 8, &f),
                     WEFT_FRAME);
    assert_int_equal(f.offset, 7);
    assert_int_equal(f.length, 1);
    assert_int_equal(st.u64, 0);
    weft_codec_destroy(&codec);
}

static void test_need(void **unused)
{
    (void)unused;
    weft_codec_config cfg = lf_cfg(2, 2, 0, 0);
    weft_codec codec;
    assert_int_equal(weft_codec_init(&codec, &cfg), 0);
    weft_codec_state st;
    weft_codec_state_init(&st);
    weft_frame f;
    assert_int_equal(weft_codec_decode(&codec, &st, (const uint8_t *)"HD", 2, &f), WEFT_AGAIN);
    assert_int_equal(f.need, 4); /* the header */
    assert_int_equal(weft_codec_decode(&codec, &st, (const uint8_t *)"HD\x01\x00", 4, &f),
                     WEFT_AGAIN);
    assert_int_equal(f.need, 4 + 256); /* the whole frame */
    assert_int_equal(f.consumed, 0);
    weft_codec_destroy(&codec);
}

static void test_prot_none_guard(void **unused)
{
    (void)unused;
    weft_codec_config cfgs[3] = {lf_cfg(0, 8, 0, 0), lf_cfg(3, 3, -1, 2), lf_cfg(1, 2, 0, 9)};
    cfgs[1].length_field.byte_order = WEFT_LITTLE_ENDIAN;
    static const char in[] = "\x00\x00\x00\x00\x00\x00\x00\x02xy\x01\x02\x03\x04";
    feed_guard g;
    feed_guard_init(&g, 64);
    for (size_t c = 0; c < 3; c++) {
        weft_codec codec;
        assert_int_equal(weft_codec_init(&codec, &cfgs[c]), 0);
        for (size_t k = 0; k < sizeof(in); k++) {
            weft_codec_state st;
            weft_codec_state_init(&st);
            weft_frame f;
            const uint8_t *p = feed_guard_place(&g, in, k);
            int rc = weft_codec_decode(&codec, &st, p, k, &f);
            assert_true(rc <= WEFT_FRAME);
            assert_true(f.consumed <= k);
            assert_true(rc != WEFT_FRAME || f.offset + f.length <= k);
        }
        weft_codec_destroy(&codec);
    }
    feed_guard_free(&g);
}

static void test_bad_config(void **unused)
{
    (void)unused;
    weft_codec codec;
    size_t bad_lengths[] = {0, 5, 6, 7, 9, 16};
    for (size_t i = 0; i < sizeof(bad_lengths) / sizeof(bad_lengths[0]); i++) {
        weft_codec_config cfg = lf_cfg(0, bad_lengths[i], 0, 0);
        assert_int_equal(weft_codec_init(&codec, &cfg), WEFT_EINVAL);
    }
    weft_codec_config cfg = lf_cfg(0, 4, 0, 0);
    cfg.length_field.max_frame_length = 0;
    assert_int_equal(weft_codec_init(&codec, &cfg), WEFT_EINVAL);
    cfg = lf_cfg(10, 4, 0, 0);
    cfg.length_field.max_frame_length = 13; /* the field would end past the limit */
    assert_int_equal(weft_codec_init(&codec, &cfg), WEFT_EINVAL);
    cfg.length_field.max_frame_length = 14;
    assert_int_equal(weft_codec_init(&codec, &cfg), 0);
    weft_codec_destroy(&codec);
    cfg = lf_cfg(SIZE_MAX - 2, 4, 0, 0);
    cfg.length_field.max_frame_length = UINT64_MAX;
    assert_int_equal(weft_codec_init(&codec, &cfg), WEFT_EINVAL);
    cfg = lf_cfg(0, 4, 0, 0);
    cfg.length_field.byte_order = (weft_byte_order)7;
    assert_int_equal(weft_codec_init(&codec, &cfg), WEFT_EINVAL);
}

static void encode_expect(const weft_codec_config *cfg, size_t payload_len, int rc,
                          const char *head, size_t head_len)
{
    weft_codec codec;
    weft_encoding enc;
    static uint8_t payload[70000];
    assert_int_equal(weft_codec_init(&codec, cfg), 0);
    assert_int_equal(weft_codec_encode(&codec, payload, payload_len, &enc), rc);
    if (rc == 0) {
        assert_int_equal(enc.head_len, head_len);
        assert_memory_equal(enc.head, head, head_len);
        assert_int_equal(enc.tail_len, 0);
    }
    weft_codec_destroy(&codec);
}

static void test_prepender(void **unused)
{
    (void)unused;
    weft_codec_config cfg = lf_cfg(0, 2, 0, 0);
    encode_expect(&cfg, 5, 0, "\x00\x05", 2);
    encode_expect(&cfg, 65535, 0, "\xff\xff", 2);
    encode_expect(&cfg, 65536, WEFT_EMSGSIZE, NULL, 0);
    cfg.length_field.length_includes_length_field_length = true;
    encode_expect(&cfg, 5, 0, "\x00\x07", 2);
    encode_expect(&cfg, 65534, WEFT_EMSGSIZE, NULL, 0);
    cfg.length_field.encoder_length_adjustment = -9;
    encode_expect(&cfg, 5, WEFT_EINVAL, NULL, 0); /* 5 + 2 - 9 < 0 */
    cfg.length_field.encoder_length_adjustment = INT64_MAX;
    encode_expect(&cfg, 5, WEFT_EMSGSIZE, NULL, 0);

    cfg = lf_cfg(0, 1, 0, 0);
    encode_expect(&cfg, 255, 0, "\xff", 1);
    encode_expect(&cfg, 256, WEFT_EMSGSIZE, NULL, 0);
    cfg = lf_cfg(0, 3, 0, 0);
    cfg.length_field.byte_order = WEFT_LITTLE_ENDIAN;
    encode_expect(&cfg, 0x10203, 0, "\x03\x02\x01", 3);
    cfg = lf_cfg(0, 4, 0, 0);
    encode_expect(&cfg, 0x10203, 0, "\x00\x01\x02\x03", 4);
    cfg = lf_cfg(0, 8, 3, 0);
    cfg.length_field.encoder_length_adjustment = 3;
    encode_expect(&cfg, 1, 0, "\0\0\0\0\0\0\0\x04", 8);
    cfg.length_field.byte_order = WEFT_LITTLE_ENDIAN;
    encode_expect(&cfg, 1, 0, "\x04\0\0\0\0\0\0\0", 8);
}

/* What the prepender frames, a decoder configured to match gives back. */
static void test_round_trip(void **unused)
{
    (void)unused;
    size_t lens[] = {1, 2, 3, 4, 8};
    for (size_t i = 0; i < 5; i++) {
        for (int order = 0; order < 2; order++) {
            weft_codec_config cfg = lf_cfg(0, lens[i], -(int64_t)lens[i], lens[i]);
            cfg.length_field.byte_order = (weft_byte_order)order;
            cfg.length_field.length_includes_length_field_length = true;
            weft_codec codec;
            assert_int_equal(weft_codec_init(&codec, &cfg), 0);
            weft_encoding enc;
            assert_int_equal(weft_codec_encode(&codec, (const uint8_t *)"payload", 7, &enc), 0);
            uint8_t wire[32];
            memcpy(wire, enc.head, enc.head_len);
            memcpy(wire + enc.head_len, "payload", 7);
            weft_codec_state st;
            weft_codec_state_init(&st);
            weft_frame f;
            assert_int_equal(weft_codec_decode(&codec, &st, wire, enc.head_len + 7, &f),
                             WEFT_FRAME);
            assert_int_equal(f.length, 7);
            assert_memory_equal(wire + f.offset, "payload", 7);
            assert_int_equal(f.consumed, enc.head_len + 7);
            weft_codec_destroy(&codec);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_match_netty),
        cmocka_unit_test(test_netty_javadoc_examples),
        cmocka_unit_test(test_field_sizes_and_byte_orders),
        cmocka_unit_test(test_short_fields_are_unsigned),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_max_frame_length_counts_header),
        cmocka_unit_test(test_too_long_discards_then_goes_on),
        cmocka_unit_test(test_discard_counts_to_int64_max),
        cmocka_unit_test(test_need),
        cmocka_unit_test(test_prot_none_guard),
        cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_prepender),
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
