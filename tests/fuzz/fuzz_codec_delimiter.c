/* libFuzzer target: the delimiter codec. Byte 0 gives the delimiter count and flags, byte 1
 * the size limit and the chunking, then 1 + 4 bytes per delimiter (length, bytes drawn from a
 * small alphabet so delimiters overlap and occur often). */
#include "fuzz_codec_common.h"

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
    fuzz_check_split_invariance(&codec, data + pos, size - pos, data[1] >> 3, false);
    weft_codec_destroy(&codec);
    return 0;
}
