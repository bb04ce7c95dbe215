/* libFuzzer target: the fixed-length codec. Bytes 0-1 choose the config and the chunking. */
#include "fuzz_codec_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    weft_codec_config cfg;
    weft_codec_config_init(&cfg);
    cfg.kind = WEFT_CODEC_FIXED_LENGTH;
    cfg.fixed_length.frame_length = 1 + data[0] % 32;
    weft_codec codec;
    FUZZ_CHECK(weft_codec_init(&codec, &cfg) == 0);
    fuzz_check_split_invariance(&codec, data + 2, size - 2, data[1], false);
    weft_codec_destroy(&codec);
    return 0;
}
