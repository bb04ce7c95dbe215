/* libFuzzer target: the length-field codec. Bytes 0-5 choose the config and the chunking.
 * Decoding goes on after errors, so netty's discarding is exercised too. */
#include "fuzz_codec_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t field_lengths[5] = {1, 2, 3, 4, 8};
    if (size < 6)
        return 0;
    weft_codec_config cfg;
    weft_codec_config_init(&cfg);
    cfg.kind = WEFT_CODEC_LENGTH_FIELD;
    weft_length_field_config *lf = &cfg.length_field;
    lf->length_field_length = field_lengths[data[0] % 5];
    lf->byte_order = (data[0] >> 3) & 1 ? WEFT_LITTLE_ENDIAN : WEFT_BIG_ENDIAN;
    lf->fail_fast = (data[0] >> 4) & 1;
    bool keep_going = (data[0] >> 5) & 1;
    lf->length_field_offset = data[1] % 4;
    lf->length_adjustment = (int8_t)data[2];
    if ((data[0] >> 6) == 3) /* now and then an extreme adjustment */
        lf->length_adjustment = (data[2] & 1) ? INT64_MAX : INT64_MIN;
    lf->initial_bytes_to_strip = data[3] % 12;
    lf->max_frame_length = 12 + data[4];
    weft_codec codec;
    FUZZ_CHECK(weft_codec_init(&codec, &cfg) == 0);
    fuzz_check_split_invariance(&codec, data + 6, size - 6, data[5], keep_going);

    /* The prepender's header must decode back to the payload with a matching decoder. */
    weft_encoding enc;
    size_t payload = size - 6;
    int rc = weft_codec_encode(&codec, data + 6, payload, &enc);
    FUZZ_CHECK(rc == 0 || rc == WEFT_EMSGSIZE);
    if (rc == 0) {
        weft_codec_config rt;
        weft_codec_config_init(&rt);
        rt.kind = WEFT_CODEC_LENGTH_FIELD;
        rt.length_field.length_field_length = lf->length_field_length;
        rt.length_field.byte_order = lf->byte_order;
        rt.length_field.initial_bytes_to_strip = lf->length_field_length;
        weft_codec dec;
        FUZZ_CHECK(weft_codec_init(&dec, &rt) == 0);
        uint8_t *wire = malloc(enc.head_len + payload + 1);
        FUZZ_CHECK(wire != NULL);
        memcpy(wire, enc.head, enc.head_len);
        memcpy(wire + enc.head_len, data + 6, payload);
        weft_codec_state st;
        weft_codec_state_init(&st);
        weft_frame f;
        FUZZ_CHECK(weft_codec_decode(&dec, &st, wire, enc.head_len + payload, &f) == WEFT_FRAME);
        FUZZ_CHECK(f.length == payload && f.consumed == enc.head_len + payload);
        FUZZ_CHECK(payload == 0 || memcmp(wire + f.offset, data + 6, payload) == 0);
        free(wire);
        weft_codec_destroy(&dec);
    }
    weft_codec_destroy(&codec);
    return 0;
}
