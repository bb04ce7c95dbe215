/* libFuzzer target: the delimiter codec. Byte 0 gives the delimiter count and flags, byte 1
 * the size limit and the chunking, then 1 + 4 bytes per delimiter (length, bytes drawn from a
 * small alphabet so delimiters overlap and occur often). */
#include "fuzz_codec_common.h"

/* True when a delimiter lies inside a longer one, not at its end, and can win against it
 * there: starting after the longer one's start, or at it but listed after it. Then, as in
 * netty, a frame ends at the shorter one if the longer has not fully arrived, and the
 * frames depend on the split. Every other set must be split-invariant. */
static bool delimiters_nested(const weft_delimiter_config *cfg)
{
    for (size_t i = 0; i < cfg->count; i++) {
        const weft_delimiter *in = &cfg->delimiters[i];
        for (size_t j = 0; j < cfg->count; j++) {
            const weft_delimiter *outer = &cfg->delimiters[j];
            if (i == j || in->len >= outer->len)
                continue;
            for (size_t k = 0; k + in->len < outer->len; k++) {
                if ((k > 0 || j < i) && memcmp(outer->bytes + k, in->bytes, in->len) == 0)
                    return true;
            }
        }
    }
    return false;
}

/* The reads fuzz_check_split_invariance makes, with only the decoder contract checked on
 * each call: for a nested set, where the frames may differ with the split. */
static void check_contract(const weft_codec *codec, const uint8_t *in, size_t len, uint64_t seed)
{
    static const size_t max_chunks[3] = {2, 7, 64};
    fuzz_log log;
    fuzz_decode(codec, in, len, 0, 0, false, &log);
    free(log.bytes);
    for (int i = 0; i < 3; i++) {
        fuzz_decode(codec, in, len, seed * 3 + (uint64_t)i + 1, max_chunks[i], false, &log);
        free(log.bytes);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t alphabet[4] = {'a', 'b', '\r', '\n'};
    if (size < 2)
        return 0;
    weft_codec_config cfg;
    weft_codec_config_init(&cfg);
    cfg.kind = WEFT_CODEC_DELIMITER;
    size_t count = 1 + (data[0] & 3);
    cfg.delimiter.strip_delimiter = data[0] & 4;
    cfg.delimiter.fail_fast = data[0] & 8;
    cfg.delimiter.close_on_error = data[0] & 16;
    cfg.delimiter.max_frame_length = 1 + data[1] % 24;
    size_t pos = 2;
    if (size < pos + 5 * count)
        return 0;
    cfg.delimiter.count = count;
    for (size_t i = 0; i < count; i++) {
        weft_delimiter *d = &cfg.delimiter.delimiters[i];
        d->len = 1 + data[pos++] % 4;
        for (size_t k = 0; k < 4; k++)
            d->bytes[k] = alphabet[data[pos++] % 4];
    }
    weft_codec codec;
    FUZZ_CHECK(weft_codec_init(&codec, &cfg) == 0);
    if (delimiters_nested(&cfg.delimiter))
        check_contract(&codec, data + pos, size - pos, data[1] >> 3);
    else
        fuzz_check_split_invariance(&codec, data + pos, size - pos, data[1] >> 3, false);
    weft_codec_destroy(&codec);
    return 0;
}
