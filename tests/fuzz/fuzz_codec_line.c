/* libFuzzer target: the line codec. Bytes 0-2 choose the config and the chunking. */
#include "fuzz_codec_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    weft_codec_config cfg;
    weft_codec_config_init(&cfg);
    cfg.kind = WEFT_CODEC_LINE;
    cfg.line.max_length = 1 + data[0] % 24;
    cfg.line.strip_delimiter = data[1] & 1;
    cfg.line.fail_fast = data[1] & 2;
    cfg.line.close_on_error = data[1] & 4;
    weft_codec codec;
    FUZZ_CHECK(weft_codec_init(&codec, &cfg) == 0);
    fuzz_check_split_invariance(&codec, data + 3, size - 3, data[2], false);
    weft_codec_destroy(&codec);
    return 0;
}
