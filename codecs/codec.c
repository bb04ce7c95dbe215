/* weft — the codec interface: defaults, construction and the decode/encode entry points.
 *
 * The built-in codecs live one per file beside this one and are picked here by kind; a
 * custom codec brings its own vtable. Everything here is engine-free so a codec can be
 * driven from a unit test or an offline tool.
 */
#include <string.h>

#include "weft/codec.h"

void weft_codec_config_init(weft_codec_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->kind = WEFT_CODEC_NONE;

    /* Defaults follow netty's constructors: line fail_fast is off, delimiter and length
     * field fail fast. */
    cfg->line.max_length = 8192;
    cfg->line.strip_delimiter = true;
    cfg->line.fail_fast = false;
    cfg->line.close_on_error = false;
    cfg->line.encode_crlf = false;

    cfg->delimiter.count = 0;
    cfg->delimiter.max_frame_length = 8192;
    cfg->delimiter.strip_delimiter = true;
    cfg->delimiter.fail_fast = true;
    cfg->delimiter.close_on_error = false;

    cfg->fixed_length.frame_length = 0;

    cfg->length_field.byte_order = WEFT_BIG_ENDIAN;
    cfg->length_field.length_field_offset = 0;
    cfg->length_field.length_field_length = 4;
    cfg->length_field.length_adjustment = 0;
    cfg->length_field.initial_bytes_to_strip = 0;
    cfg->length_field.max_frame_length = 1024 * 1024;
    cfg->length_field.fail_fast = true;
    cfg->length_field.length_includes_length_field_length = false;
    cfg->length_field.encoder_length_adjustment = 0;

    cfg->custom.vtable = NULL;
    cfg->custom.ctx = NULL;
}

static const weft_codec_vtable *codec_vtable_for(const weft_codec_config *cfg)
{
    switch (cfg->kind) {
    case WEFT_CODEC_LINE:
        return &weft_codec_line;
    case WEFT_CODEC_DELIMITER:
        return &weft_codec_delimiter;
    case WEFT_CODEC_FIXED_LENGTH:
        return &weft_codec_fixed_length;
    case WEFT_CODEC_LENGTH_FIELD:
        return &weft_codec_length_field;
    case WEFT_CODEC_CUSTOM:
        return cfg->custom.vtable;
    case WEFT_CODEC_NONE:
    default:
        return NULL;
    }
}

int weft_codec_init(weft_codec *codec, const weft_codec_config *cfg)
{
    if (codec == NULL || cfg == NULL)
        return WEFT_EINVAL;
    memset(codec, 0, sizeof(*codec));

    const weft_codec_vtable *vt = codec_vtable_for(cfg);
    if (cfg->kind == WEFT_CODEC_NONE) {
        /* Raw bytes: a valid configuration with nothing to decode. decode() answers
         * WEFT_ENOCODEC and encode() gives an empty framing. */
        codec->config = *cfg;
        return 0;
    }
    if (vt == NULL || vt->decode == NULL)
        return WEFT_EINVAL;

    codec->vtable = vt;
    codec->config = *cfg;
    codec->ctx = cfg->custom.ctx;
    if (vt->init != NULL) {
        int rc = vt->init(codec);
        if (rc != 0) {
            memset(codec, 0, sizeof(*codec));
            return rc < 0 ? rc : WEFT_EINVAL;
        }
    }
    return 0;
}

void weft_codec_destroy(weft_codec *codec)
{
    if (codec == NULL)
        return;
    if (codec->vtable != NULL && codec->vtable->destroy != NULL)
        codec->vtable->destroy(codec);
    memset(codec, 0, sizeof(*codec));
}

void weft_codec_state_init(weft_codec_state *state)
{
    memset(state, 0, sizeof(*state));
}

void weft_codec_state_destroy(const weft_codec *codec, weft_codec_state *state)
{
    if (codec != NULL && codec->vtable != NULL && codec->vtable->state_destroy != NULL)
        codec->vtable->state_destroy(codec, state);
    memset(state, 0, sizeof(*state));
}

int weft_codec_decode(const weft_codec *codec, weft_codec_state *state, const uint8_t *buf,
                      size_t len, weft_frame *frame)
{
    memset(frame, 0, sizeof(*frame));
    if (codec == NULL || codec->vtable == NULL) {
        frame->reason = "no codec configured";
        return WEFT_ENOCODEC;
    }
    return codec->vtable->decode(codec, state, buf, len, frame);
}

void weft_codec_get_traits(const weft_codec *codec, weft_codec_traits *out)
{
    memset(out, 0, sizeof(*out));
    if (codec != NULL && codec->vtable != NULL && codec->vtable->traits != NULL)
        codec->vtable->traits(codec, out);
}

int weft_codec_encode(const weft_codec *codec, const uint8_t *payload, size_t payload_len,
                      weft_encoding *enc)
{
    enc->head_len = 0;
    enc->tail = NULL;
    enc->tail_len = 0;
    if (codec == NULL || codec->vtable == NULL || codec->vtable->encode == NULL)
        return 0;
    return codec->vtable->encode(codec, payload, payload_len, enc);
}
