/* weft — the length-field codec: netty's LengthFieldBasedFrameDecoder to decode and
 * LengthFieldPrepender to encode.
 *
 * frame length = field value + length_adjustment + (length_field_offset +
 * length_field_length), i.e. the whole frame including its header, and that is what
 * max_frame_length is compared with, before initial_bytes_to_strip is applied. Fields of
 * 1 to 4 bytes are unsigned; an 8-byte field is signed as in netty, so a value above
 * INT64_MAX is a negative length. All of this is computed in 64 bits with explicit
 * overflow checks.
 *
 * Errors, in netty's order: a negative field, then a frame shorter than its own header
 * (both WEFT_ECORRUPT, consuming the header), then too long (WEFT_ETOOLONG), and once the
 * whole frame is here, initial_bytes_to_strip beyond the frame (WEFT_ECORRUPT, consuming
 * the frame). Each closes the connection (recoverable is false). A caller that goes on
 * anyway gets netty's behaviour: a too-long frame is discarded, with the error reported
 * at once (fail_fast) or after the last discarded byte.
 *
 * State: u64 is the number of bytes still to discard, with the discarding flag in its top bit;
 * LF_FOREVER bytes is a frame beyond INT64_MAX, discarded for good.
 */
#include <stdint.h>

#include "weft/codec.h"

#define LF_DISCARDING ((uint64_t)1 << 63)
#define LF_FOREVER    (LF_DISCARDING - 1)

static int length_field_init(weft_codec *codec)
{
    const weft_length_field_config *cfg = &codec->config.length_field;
    size_t n = cfg->length_field_length;
    if (n != 1 && n != 2 && n != 3 && n != 4 && n != 8)
        return WEFT_EINVAL;
    if (cfg->byte_order != WEFT_BIG_ENDIAN && cfg->byte_order != WEFT_LITTLE_ENDIAN)
        return WEFT_EINVAL;
    if (cfg->max_frame_length == 0)
        return WEFT_EINVAL;
    /* netty: max_frame_length must cover the length field's end. Kept within int64 so the
     * frame arithmetic below cannot overflow on the header part. */
    if (cfg->length_field_offset > (uint64_t)INT64_MAX - n)
        return WEFT_EINVAL;
    if ((uint64_t)cfg->length_field_offset + n > cfg->max_frame_length)
        return WEFT_EINVAL;
    return 0;
}

static uint64_t lf_read(const uint8_t *p, size_t n, weft_byte_order order)
{
    uint64_t v = 0;
    if (order == WEFT_BIG_ENDIAN) {
        for (size_t i = 0; i < n; i++)
            v = (v << 8) | p[i];
    } else {
        for (size_t i = n; i > 0; i--)
            v = (v << 8) | p[i - 1];
    }
    return v;
}

static void lf_write(uint8_t *p, size_t n, weft_byte_order order, uint64_t v)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t b = (uint8_t)(v >> (8 * i));
        if (order == WEFT_BIG_ENDIAN)
            p[n - 1 - i] = b;
        else
            p[i] = b;
    }
}

static int lf_corrupt(weft_frame *frame, size_t consumed, const char *reason)
{
    frame->consumed = consumed;
    frame->reason = reason;
    frame->recoverable = false;
    return WEFT_ECORRUPT;
}

static int lf_too_long(weft_frame *frame, size_t consumed)
{
    frame->consumed = consumed;
    frame->reason = "frame longer than max_frame_length";
    frame->recoverable = false;
    return WEFT_ETOOLONG;
}

static int length_field_decode(const weft_codec *codec, weft_codec_state *state, const uint8_t *buf,
                               size_t len, weft_frame *frame)
{
    const weft_length_field_config *cfg = &codec->config.length_field;
    size_t base = 0;

    if (state->u64 & LF_DISCARDING) {
        uint64_t left = state->u64 & ~LF_DISCARDING;
        size_t n = left < len ? (size_t)left : len;
        if (left != LF_FOREVER)
            left -= n;
        if (left > 0) {
            state->u64 = left | LF_DISCARDING;
            frame->consumed = len;
            return WEFT_AGAIN;
        }
        state->u64 = 0;
        if (!cfg->fail_fast)
            return lf_too_long(frame, n);
        base = n; /* reported when discarding began; go on with what follows */
    }

    const uint8_t *p = buf + base;
    size_t avail = len - base;
    size_t end = cfg->length_field_offset + cfg->length_field_length; /* checked in init */

    if (avail < end) {
        frame->consumed = base;
        frame->need = end;
        return WEFT_AGAIN;
    }

    uint64_t raw = lf_read(p + cfg->length_field_offset, cfg->length_field_length, cfg->byte_order);
    if (raw > (uint64_t)INT64_MAX)
        return lf_corrupt(frame, base + end, "negative length field");

    /* total = raw + adjustment + end, exactly, or `huge` when it exceeds INT64_MAX. raw and
     * end are non-negative, so only an upward overflow is possible. */
    int64_t adj = cfg->length_adjustment;
    bool huge = false;
    int64_t total = 0;
    if (adj > 0 && raw > (uint64_t)(INT64_MAX - adj)) {
        huge = true;
    } else {
        total = (int64_t)raw + adj;
        if (total > INT64_MAX - (int64_t)end)
            huge = true;
        else
            total += (int64_t)end;
    }

    if (!huge && total < (int64_t)end)
        return lf_corrupt(frame, base + end, "adjusted frame length shorter than its header");

    if (huge || (uint64_t)total > cfg->max_frame_length) {
        /* netty's exceededFrameLength: drop the frame's bytes we hold, discard the rest as
         * it arrives. A frame beyond INT64_MAX never ends; discard for good. */
        uint64_t whole = huge ? UINT64_MAX : (uint64_t)total;
        if (whole <= avail)
            return lf_too_long(frame, base + (size_t)whole);
        state->u64 = (huge ? LF_FOREVER : whole - avail) | LF_DISCARDING;
        if (cfg->fail_fast)
            return lf_too_long(frame, len);
        frame->consumed = len;
        return WEFT_AGAIN;
    }

    uint64_t whole = (uint64_t)total; /* <= max_frame_length */
    if (whole > avail) {
        frame->consumed = base;
        frame->need = whole < (uint64_t)SIZE_MAX ? (size_t)whole : SIZE_MAX;
        return WEFT_AGAIN;
    }
    if (cfg->initial_bytes_to_strip > whole)
        return lf_corrupt(frame, base + (size_t)whole,
                          "initial_bytes_to_strip longer than the frame");

    frame->offset = base + cfg->initial_bytes_to_strip;
    frame->length = (size_t)whole - cfg->initial_bytes_to_strip;
    frame->consumed = base + (size_t)whole;
    return WEFT_FRAME;
}

/* netty's LengthFieldPrepender: the field holds payload_len + encoder_length_adjustment
 * (+ the field's own length when length_includes_length_field_length). Only the field is
 * prepended; length_field_offset and initial_bytes_to_strip are decoder settings. */
static int length_field_encode(const weft_codec *codec, const uint8_t *payload, size_t payload_len,
                               weft_encoding *enc)
{
    const weft_length_field_config *cfg = &codec->config.length_field;
    size_t n = cfg->length_field_length;
    (void)payload;

    enc->head_len = 0;
    enc->tail = NULL;
    enc->tail_len = 0;
    if ((uint64_t)payload_len > (uint64_t)INT64_MAX)
        return WEFT_EMSGSIZE;

    int64_t length = (int64_t)payload_len;
    int64_t adj = cfg->encoder_length_adjustment;
    if (cfg->length_includes_length_field_length) {
        if (length > INT64_MAX - (int64_t)n)
            return WEFT_EMSGSIZE;
        length += (int64_t)n;
    }
    if (adj > 0 && length > INT64_MAX - adj)
        return WEFT_EMSGSIZE;
    length += adj; /* cannot underflow: length >= 0 */
    if (length < 0)
        return WEFT_EINVAL;
    if (n < 8 && (uint64_t)length >= ((uint64_t)1 << (8 * n)))
        return WEFT_EMSGSIZE;

    lf_write(enc->head, n, cfg->byte_order, (uint64_t)length);
    enc->head_len = n;
    return 0;
}

/* max_frame_length already counts the header. Every error closes the connection anyway
 * (recoverable is false), so close_on_error stays false. */
static void length_field_traits(const weft_codec *codec, weft_codec_traits *out)
{
    out->max_frame = codec->config.length_field.max_frame_length;
}

const weft_codec_vtable weft_codec_length_field = {
    .name = "length_field",
    .init = length_field_init,
    .destroy = NULL,
    .decode = length_field_decode,
    .encode = length_field_encode,
    .state_destroy = NULL,
    .traits = length_field_traits,
};
