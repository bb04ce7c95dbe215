/* Shared by the codec fuzz targets: decode the input once in one read and once in reads of
 * pseudo-random sizes, checking the decoder contract on every call, and trap unless both
 * give the same frames, errors and leftover. Each call's buffer is an exact-size heap copy,
 * so AddressSanitizer catches any read outside buf[0..len).
 */
#ifndef WEFT_FUZZ_CODEC_COMMON_H
#define WEFT_FUZZ_CODEC_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "weft/codec.h"

#define FUZZ_CHECK(cond)      \
    do {                      \
        if (!(cond))          \
            __builtin_trap(); \
    } while (0)

typedef struct fuzz_log {
    uint8_t *bytes; /* frames and error codes, serialised */
    size_t len, cap;
    size_t leftover;
    bool closed;
} fuzz_log;

static void fuzz_log_put(fuzz_log *l, const void *p, size_t n)
{
    if (l->len + n > l->cap) {
        l->cap = (l->len + n) * 2 + 64;
        l->bytes = realloc(l->bytes, l->cap);
        FUZZ_CHECK(l->bytes != NULL);
    }
    if (n > 0)
        memcpy(l->bytes + l->len, p, n);
    l->len += n;
}

static uint64_t fuzz_rand(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return *s >> 33;
}

/* seed == 0: one read of everything; otherwise reads of 1..max_chunk bytes. */
static void fuzz_decode(const weft_codec *codec, const uint8_t *in, size_t len, uint64_t seed,
                        size_t max_chunk, bool keep_going, fuzz_log *log)
{
    memset(log, 0, sizeof(*log));
    weft_codec_state st;
    weft_codec_state_init(&st);
    size_t start = 0, end = 0;
    while (end < len && !log->closed) {
        size_t k = len - end;
        if (seed != 0) {
            size_t r = 1 + (size_t)(fuzz_rand(&seed) % max_chunk);
            if (r < k)
                k = r;
        }
        end += k;
        while (end > start) {
            size_t n = end - start;
            uint8_t *buf = malloc(n);
            FUZZ_CHECK(buf != NULL);
            memcpy(buf, in + start, n);
            weft_frame f;
            int rc = weft_codec_decode(codec, &st, buf, n, &f);
            FUZZ_CHECK(f.consumed <= n);
            if (rc == WEFT_FRAME) {
                FUZZ_CHECK(f.consumed > 0);
                FUZZ_CHECK(f.offset <= f.consumed && f.length <= f.consumed - f.offset);
                uint64_t hdr[2] = {0, f.length};
                fuzz_log_put(log, hdr, sizeof(hdr));
                fuzz_log_put(log, buf + f.offset, f.length);
                free(buf);
                start += f.consumed;
                continue;
            }
            free(buf);
            start += f.consumed;
            if (rc == WEFT_AGAIN)
                break;
            FUZZ_CHECK(rc < 0 && f.reason != NULL);
            uint64_t hdr[2] = {(uint64_t)(int64_t)rc, f.recoverable};
            fuzz_log_put(log, hdr, sizeof(hdr));
            FUZZ_CHECK(f.consumed > 0 || (!f.recoverable && !keep_going));
            if (!f.recoverable && !keep_going)
                log->closed = true;
            if (log->closed)
                break;
        }
    }
    log->leftover = log->closed ? 0 : end - start;
    weft_codec_state_destroy(codec, &st);
}

/* One-shot versus three random chunkings (tiny, small and large reads). */
static void fuzz_check_split_invariance(const weft_codec *codec, const uint8_t *in, size_t len,
                                        uint64_t seed, bool keep_going)
{
    fuzz_log whole, split;
    fuzz_decode(codec, in, len, 0, 0, keep_going, &whole);
    static const size_t max_chunks[3] = {2, 7, 64};
    for (int i = 0; i < 3; i++) {
        fuzz_decode(codec, in, len, seed * 3 + (uint64_t)i + 1, max_chunks[i], keep_going, &split);
        FUZZ_CHECK(whole.len == split.len && whole.leftover == split.leftover &&
                   whole.closed == split.closed);
        FUZZ_CHECK(whole.len == 0 || memcmp(whole.bytes, split.bytes, whole.len) == 0);
        free(split.bytes);
    }
    free(whole.bytes);
}

#endif /* WEFT_FUZZ_CODEC_COMMON_H */
