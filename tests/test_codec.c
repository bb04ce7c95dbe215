/* The codec interface itself: construction by kind, kind NONE, custom vtables, wrappers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "weft/codec.h"

static void test_none_has_no_decoder(void **unused)
{
    (void)unused;
    weft_codec_config cfg;
    weft_codec_config_init(&cfg);
    weft_codec codec;
    assert_int_equal(weft_codec_init(&codec, &cfg), 0);
    assert_null(codec.vtable);
    weft_codec_state st;
    weft_codec_state_init(&st);
    weft_frame f;
    assert_int_equal(weft_codec_decode(&codec, &st, (const uint8_t *)"x", 1, &f), WEFT_ENOCODEC);
    assert_int_equal(f.consumed, 0);
    assert_non_null(f.reason);
    weft_encoding enc;
    assert_int_equal(weft_codec_encode(&codec, (const uint8_t *)"x", 1, &enc), 0);
    assert_int_equal(enc.head_len, 0);
    assert_int_equal(enc.tail_len, 0);
    weft_codec_destroy(&codec);
}

static void test_builtin_vtables_by_kind(void **unused)
{
    (void)unused;
    weft_codec_config cfg;
    weft_codec_config_init(&cfg);
    weft_codec codec;
    cfg.kind = WEFT_CODEC_LINE;
    assert_int_equal(weft_codec_init(&codec, &cfg), 0);
    assert_ptr_equal(codec.vtable, &weft_codec_line);
    assert_string_equal(codec.vtable->name, "line");
    weft_codec_destroy(&codec);
    cfg.kind = WEFT_CODEC_LENGTH_FIELD;
    assert_int_equal(weft_codec_init(&codec, &cfg), 0);
    assert_ptr_equal(codec.vtable, &weft_codec_length_field);
    weft_codec_destroy(&codec);
    /* Built-ins whose defaults are incomplete refuse to start. */
    cfg.kind = WEFT_CODEC_DELIMITER;
    assert_int_equal(weft_codec_init(&codec, &cfg), WEFT_EINVAL);
    cfg.kind = WEFT_CODEC_FIXED_LENGTH;
    assert_int_equal(weft_codec_init(&codec, &cfg), WEFT_EINVAL);
    cfg.kind = (weft_codec_kind)99;
    assert_int_equal(weft_codec_init(&codec, &cfg), WEFT_EINVAL);
}

/* A custom codec: frames are single bytes; counts its init/destroy/state_destroy calls. */
typedef struct counts {
    int init, destroy, state_destroy;
} counts;

static int one_init(weft_codec *codec)
{
    ((counts *)codec->ctx)->init++;
    return 0;
}

static void one_destroy(weft_codec *codec)
{
    ((counts *)codec->ctx)->destroy++;
}

static int one_decode(const weft_codec *codec, weft_codec_state *state, const uint8_t *buf,
                      size_t len, weft_frame *frame)
{
    (void)codec;
    (void)buf;
    state->u64++;
    if (len == 0)
        return WEFT_AGAIN;
    frame->offset = 0;
    frame->length = 1;
    frame->consumed = 1;
    return WEFT_FRAME;
}

static void one_state_destroy(const weft_codec *codec, weft_codec_state *state)
{
    (void)state;
    ((counts *)codec->ctx)->state_destroy++;
}

static void test_custom_codec(void **unused)
{
    (void)unused;
    static const weft_codec_vtable one = {
        .name = "one",
        .init = one_init,
        .destroy = one_destroy,
        .decode = one_decode,
        .state_destroy = one_state_destroy,
    };
    counts c = {0, 0, 0};
    weft_codec_config cfg;
    weft_codec_config_init(&cfg);
    cfg.kind = WEFT_CODEC_CUSTOM;
    cfg.custom.vtable = &one;
    cfg.custom.ctx = &c;
    weft_codec codec;
    assert_int_equal(weft_codec_init(&codec, &cfg), 0);
    assert_int_equal(c.init, 1);
    assert_ptr_equal(codec.ctx, &c);

    weft_codec_state st;
    weft_codec_state_init(&st);
    weft_frame f;
    assert_int_equal(weft_codec_decode(&codec, &st, (const uint8_t *)"ab", 2, &f), WEFT_FRAME);
    assert_int_equal(f.length, 1);
    assert_int_equal(st.u64, 1);
    weft_encoding enc;
    assert_int_equal(weft_codec_encode(&codec, (const uint8_t *)"ab", 2, &enc), 0);
    assert_int_equal(enc.head_len + enc.tail_len, 0); /* no encoder: sent as is */
    weft_codec_state_destroy(&codec, &st);
    assert_int_equal(c.state_destroy, 1);
    assert_int_equal(st.u64, 0);
    weft_codec_destroy(&codec);
    assert_int_equal(c.destroy, 1);

    /* Without a vtable or a decode function there is no codec. */
    cfg.custom.vtable = NULL;
    assert_int_equal(weft_codec_init(&codec, &cfg), WEFT_EINVAL);
    static const weft_codec_vtable no_decode = {.name = "broken"};
    cfg.custom.vtable = &no_decode;
    assert_int_equal(weft_codec_init(&codec, &cfg), WEFT_EINVAL);
}

static int refuse_init(weft_codec *codec)
{
    (void)codec;
    return WEFT_EINVAL;
}

static void test_failed_init_leaves_nothing(void **unused)
{
    (void)unused;
    static const weft_codec_vtable refuse = {
        .name = "refuse",
        .init = refuse_init,
        .destroy = one_destroy,
        .decode = one_decode,
    };
    weft_codec_config cfg;
    weft_codec_config_init(&cfg);
    cfg.kind = WEFT_CODEC_CUSTOM;
    cfg.custom.vtable = &refuse;
    weft_codec codec;
    assert_int_equal(weft_codec_init(&codec, &cfg), WEFT_EINVAL);
    assert_null(codec.vtable);
    weft_codec_destroy(&codec); /* harmless: nothing to release, destroy not called */
}

/* The engine learns a codec's frame bound and error policy only through its traits. */
static void test_builtin_traits(void **unused)
{
    (void)unused;
    weft_codec_config cfg;
    weft_codec_config_init(&cfg);
    weft_codec codec;
    weft_codec_traits t;

    cfg.kind = WEFT_CODEC_LINE;
    cfg.line.max_length = 100;
    cfg.line.close_on_error = true;
    assert_int_equal(weft_codec_init(&codec, &cfg), 0);
    weft_codec_get_traits(&codec, &t);
    assert_int_equal(t.max_frame, 102); /* with its "\r\n" */
    assert_true(t.close_on_error);
    weft_codec_destroy(&codec);

    cfg.kind = WEFT_CODEC_DELIMITER;
    cfg.delimiter.count = 2;
    cfg.delimiter.delimiters[0] = (weft_delimiter){{'|'}, 1};
    cfg.delimiter.delimiters[1] = (weft_delimiter){{'E', 'N', 'D'}, 3};
    cfg.delimiter.max_frame_length = 50;
    assert_int_equal(weft_codec_init(&codec, &cfg), 0);
    weft_codec_get_traits(&codec, &t);
    assert_int_equal(t.max_frame, 53); /* with the longest delimiter */
    assert_false(t.close_on_error);
    weft_codec_destroy(&codec);

    cfg.kind = WEFT_CODEC_FIXED_LENGTH;
    cfg.fixed_length.frame_length = 7;
    assert_int_equal(weft_codec_init(&codec, &cfg), 0);
    weft_codec_get_traits(&codec, &t);
    assert_int_equal(t.max_frame, 7);
    assert_false(t.close_on_error);
    weft_codec_destroy(&codec);

    cfg.kind = WEFT_CODEC_LENGTH_FIELD;
    cfg.length_field.max_frame_length = 4096; /* header included already */
    assert_int_equal(weft_codec_init(&codec, &cfg), 0);
    weft_codec_get_traits(&codec, &t);
    assert_int_equal(t.max_frame, 4096);
    assert_false(t.close_on_error);
    weft_codec_destroy(&codec);

    /* A line limit at the top of the range saturates instead of wrapping to 1. */
    cfg.kind = WEFT_CODEC_LINE;
    cfg.line.max_length = SIZE_MAX;
    assert_int_equal(weft_codec_init(&codec, &cfg), 0);
    weft_codec_get_traits(&codec, &t);
    assert_true(t.max_frame >= (uint64_t)SIZE_MAX);
    weft_codec_destroy(&codec);
}

static void fill_traits(const weft_codec *codec, weft_codec_traits *out)
{
    (void)codec;
    out->max_frame = 9;
}

/* Without a traits entry (or without a codec) every trait reads zero: no bound, skip. */
static void test_traits_default_to_zero(void **unused)
{
    (void)unused;
    weft_codec_traits t;
    memset(&t, 0xff, sizeof(t));
    weft_codec_get_traits(NULL, &t);
    assert_int_equal(t.max_frame, 0);
    assert_false(t.close_on_error);

    weft_codec_config cfg;
    weft_codec_config_init(&cfg);
    weft_codec codec;
    assert_int_equal(weft_codec_init(&codec, &cfg), 0); /* WEFT_CODEC_NONE */
    memset(&t, 0xff, sizeof(t));
    weft_codec_get_traits(&codec, &t);
    assert_int_equal(t.max_frame, 0);
    assert_false(t.close_on_error);
    weft_codec_destroy(&codec);

    static const weft_codec_vtable bare = {.name = "bare", .decode = one_decode};
    cfg.kind = WEFT_CODEC_CUSTOM;
    cfg.custom.vtable = &bare;
    assert_int_equal(weft_codec_init(&codec, &cfg), 0);
    memset(&t, 0xff, sizeof(t));
    weft_codec_get_traits(&codec, &t);
    assert_int_equal(t.max_frame, 0);
    assert_false(t.close_on_error);
    weft_codec_destroy(&codec);

    /* A traits entry that sets one field finds the others zeroed. */
    static const weft_codec_vtable partial = {
        .name = "partial", .decode = one_decode, .traits = fill_traits};
    cfg.custom.vtable = &partial;
    assert_int_equal(weft_codec_init(&codec, &cfg), 0);
    memset(&t, 0xff, sizeof(t));
    weft_codec_get_traits(&codec, &t);
    assert_int_equal(t.max_frame, 9);
    assert_false(t.close_on_error);
    weft_codec_destroy(&codec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_none_has_no_decoder),
        cmocka_unit_test(test_builtin_vtables_by_kind),
        cmocka_unit_test(test_custom_codec),
        cmocka_unit_test(test_failed_init_leaves_nothing),
        cmocka_unit_test(test_builtin_traits),
        cmocka_unit_test(test_traits_default_to_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
