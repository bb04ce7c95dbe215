/* weft — the line codec, netty's LineBasedFrameDecoder.
 *
 * "\n" and "\r\n" end a line. A line longer than max_length (delimiter excluded) is an
 * error; the decoder then discards up to the next "\n" and goes on. With fail_fast the
 * error is reported as soon as the line is known to be too long, otherwise once its end
 * has been seen; either way each over-long line gives exactly one error.
 *
 * netty decides "too long" on the bytes it holds, so a "\r" waiting for its "\n" counts
 * toward the limit and the outcome depends on how the stream was split. We give netty's
 * single-read answer for every split: a trailing "\r" is not counted until we know whether
 * a "\n" follows it.
 *
 * State: u64 is how far the last call scanned without finding "\n" (relative to the
 * first unconsumed byte, which is where the next call's buffer starts), with the discarding
 * flag in its top bit.
 */
#include <string.h>

#include "weft/codec.h"

#define LINE_DISCARDING ((uint64_t)1 << 63)

static int line_init(weft_codec *codec)
{
    if (codec->config.line.max_length == 0)
        return WEFT_EINVAL;
    return 0;
}

static int line_too_long(const weft_line_config *cfg, weft_frame *frame, size_t consumed)
{
    frame->consumed = consumed;
    frame->reason = "line longer than max_length";
    frame->recoverable = !cfg->close_on_error;
    return WEFT_ETOOLONG;
}

static int line_decode(const weft_codec *codec, weft_codec_state *state, const uint8_t *buf,
                       size_t len, weft_frame *frame)
{
    const weft_line_config *cfg = &codec->config.line;
    size_t base = 0; /* start of the line being looked at */
    size_t scan = (size_t)(state->u64 & ~LINE_DISCARDING);

    if (scan > len)
        scan = 0; /* not the growing buffer we were promised: rescan, never over-read */

    for (;;) {
        const uint8_t *lf = NULL;
        if (len - base > scan)
            lf = memchr(buf + base + scan, '\n', len - base - scan);

        if (state->u64 & LINE_DISCARDING) {
            if (lf == NULL) {
                state->u64 = LINE_DISCARDING;
                frame->consumed = len;
                return WEFT_AGAIN;
            }
            base = (size_t)(lf - buf) + 1;
            scan = 0;
            state->u64 = 0;
            if (!cfg->fail_fast)
                return line_too_long(cfg, frame, base);
            continue; /* the error was reported when discarding began */
        }

        if (lf != NULL) {
            size_t eol = (size_t)(lf - buf);
            size_t delim = 1;
            if (eol > base && buf[eol - 1] == '\r') {
                eol--;
                delim = 2;
            }
            size_t line_len = eol - base;
            state->u64 = 0;
            if (line_len > cfg->max_length)
                return line_too_long(cfg, frame, eol + delim);
            frame->offset = base;
            frame->length = cfg->strip_delimiter ? line_len : line_len + delim;
            frame->consumed = eol + delim;
            return WEFT_FRAME;
        }

        size_t avail = len - base;
        /* A trailing "\r" may be the first half of "\r\n": not part of the line yet. */
        size_t known = avail - (avail > 0 && buf[len - 1] == '\r');
        if (known > cfg->max_length) {
            state->u64 = LINE_DISCARDING;
            frame->consumed = len;
            if (cfg->fail_fast)
                return line_too_long(cfg, frame, len);
            return WEFT_AGAIN;
        }
        state->u64 = avail;
        frame->consumed = base;
        return WEFT_AGAIN;
    }
}

static int line_encode(const weft_codec *codec, const uint8_t *payload, size_t payload_len,
                       weft_encoding *enc)
{
    static const uint8_t crlf[2] = {'\r', '\n'};
    (void)payload;
    (void)payload_len;
    enc->head_len = 0;
    if (codec->config.line.encode_crlf) {
        enc->tail = crlf;
        enc->tail_len = 2;
    } else {
        enc->tail = crlf + 1;
        enc->tail_len = 1;
    }
    return 0;
}

/* A line on the wire is at most max_length bytes and its "\r\n". */
static void line_traits(const weft_codec *codec, weft_codec_traits *out)
{
    const weft_line_config *cfg = &codec->config.line;
    uint64_t max = (uint64_t)cfg->max_length;
    out->max_frame = max > UINT64_MAX - 2 ? UINT64_MAX : max + 2;
    out->close_on_error = cfg->close_on_error;
}

const weft_codec_vtable weft_codec_line = {
    .name = "line",
    .init = line_init,
    .destroy = NULL,
    .decode = line_decode,
    .encode = line_encode,
    .state_destroy = NULL,
    .traits = line_traits,
};
