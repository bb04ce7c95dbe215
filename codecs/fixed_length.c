/* weft — the fixed-length codec, netty's FixedLengthFrameDecoder: every frame is exactly
 * frame_length bytes. Stateless; O(1) per frame.
 */
#include "weft/codec.h"

static int fixed_length_init(weft_codec *codec)
{
    return codec->config.fixed_length.frame_length == 0 ? WEFT_EINVAL : 0;
}

static int fixed_length_decode(const weft_codec *codec, weft_codec_state *state, const uint8_t *buf,
                               size_t len, weft_frame *frame)
{
    size_t n = codec->config.fixed_length.frame_length;
    (void)state;
    (void)buf;
    if (len < n) {
        frame->consumed = 0;
        frame->need = n;
        return WEFT_AGAIN;
    }
    frame->offset = 0;
    frame->length = n;
    frame->consumed = n;
    return WEFT_FRAME;
}

/* A payload of any other size cannot be framed: the peer would split it differently. */
static int fixed_length_encode(const weft_codec *codec, const uint8_t *payload, size_t payload_len,
                               weft_encoding *enc)
{
    (void)payload;
    enc->head_len = 0;
    enc->tail = NULL;
    enc->tail_len = 0;
    return payload_len == codec->config.fixed_length.frame_length ? 0 : WEFT_EINVAL;
}

static void fixed_length_traits(const weft_codec *codec, weft_codec_traits *out)
{
    out->max_frame = (uint64_t)codec->config.fixed_length.frame_length;
}

const weft_codec_vtable weft_codec_fixed_length = {
    .name = "fixed_length",
    .init = fixed_length_init,
    .destroy = NULL,
    .decode = fixed_length_decode,
    .encode = fixed_length_encode,
    .state_destroy = NULL,
    .traits = fixed_length_traits,
};
