/* weft — the delimiter codec, netty's DelimiterBasedFrameDecoder.
 *
 * Each delimiter is a byte string. Among the delimiters found in the bytes held, the one
 * giving the shortest frame wins, and between equally short frames the one listed first
 * (netty compares with '<'). As in netty, a frame is reported as soon as a delimiter ends
 * it: the decoder never waits to see whether a delimiter still arriving would have won,
 * because a peer that sent "C\r" to a "\r\n"/"\r" decoder may be waiting for the answer.
 * So when one delimiter lies inside another (see codec.h) the frames depend on where the
 * reads were split, exactly as they do in netty.
 *
 * A frame longer than max_frame_length (delimiter excluded) is an error; the decoder then
 * discards up to the end of the next delimiter and goes on. netty applies the limit to the
 * bytes it holds too, so there a delimiter cut in half at the size limit starts discarding
 * and one cut in half while discarding is missed, dropping the next good frame. Nobody
 * waits on that answer, so here we give netty's single-read answer for every split:
 *  - without a delimiter in the bytes held, a frame is declared too long as soon as no
 *    delimiter still arriving (the buffer's tail is a proper prefix of it) could end it
 *    within max_frame_length bytes, and not before;
 *  - while discarding, a tail that may begin a delimiter is kept, not dropped, so the
 *    delimiter that ends the discarded frame is seen whole.
 *
 * State: u64 is the buffer length the last call looked at without finding a delimiter, so
 * the next call resumes the search just before it, with the discarding flag in its top bit.
 */
#include <string.h>

#include "weft/codec.h"

#define DELIM_DISCARDING ((uint64_t)1 << 63)

typedef struct delim_match {
    size_t pos; /* where the delimiter starts */
    size_t idx; /* which delimiter */
} delim_match;

static int delimiter_init(weft_codec *codec)
{
    const weft_delimiter_config *cfg = &codec->config.delimiter;
    if (cfg->count == 0 || cfg->count > WEFT_DELIMITER_MAX || cfg->max_frame_length == 0)
        return WEFT_EINVAL;
    for (size_t i = 0; i < cfg->count; i++) {
        if (cfg->delimiters[i].len == 0 || cfg->delimiters[i].len > WEFT_DELIMITER_MAX_LEN)
            return WEFT_EINVAL;
    }
    return 0;
}

static size_t delim_max_len(const weft_delimiter_config *cfg)
{
    size_t m = 0;
    for (size_t i = 0; i < cfg->count; i++) {
        if (cfg->delimiters[i].len > m)
            m = cfg->delimiters[i].len;
    }
    return m;
}

/* First occurrence of d in buf[from..end), or NULL. memchr on the first byte then a compare
 * of the rest: memchr is vectorised, and delimiters are short. */
static const uint8_t *delim_find(const weft_delimiter *d, const uint8_t *buf, size_t from,
                                 size_t end)
{
    if (end < from || end - from < d->len)
        return NULL;
    const uint8_t *p = buf + from;
    const uint8_t *last = buf + end - d->len; /* last possible start */
    if (d->len == 1)
        return memchr(p, d->bytes[0], (size_t)(last - p) + 1);
    while (p <= last) {
        p = memchr(p, d->bytes[0], (size_t)(last - p) + 1);
        if (p == NULL)
            return NULL;
        if (memcmp(p + 1, d->bytes + 1, d->len - 1) == 0)
            return p;
        p++;
    }
    return NULL;
}

/* The complete delimiter giving the shortest frame among those lying in buf[from..len).
 * Later delimiters only need to be searched where they could beat the best so far. */
static bool delim_earliest_in(const weft_delimiter_config *cfg, const uint8_t *buf, size_t len,
                              size_t from, delim_match *m)
{
    bool found = false;
    for (size_t i = 0; i < cfg->count; i++) {
        const weft_delimiter *d = &cfg->delimiters[i];
        size_t end = len;
        if (found) {
            /* Must start strictly before m->pos to win; ties go to the one listed first. */
            if (m->pos == from)
                break;
            size_t limit = m->pos - 1 + d->len;
            if (limit < end)
                end = limit;
        }
        const uint8_t *hit = delim_find(d, buf, from, end);
        if (hit != NULL) {
            m->pos = (size_t)(hit - buf);
            m->idx = i;
            found = true;
        }
    }
    return found;
}

/* As delim_earliest_in over buf[from..len), but with several delimiters the search runs in
 * doubling windows: a delimiter that does not occur would otherwise be searched to the end
 * of the buffer for every frame, which is quadratic in the frames per read. */
static bool delim_earliest(const weft_delimiter_config *cfg, size_t maxd, const uint8_t *buf,
                           size_t len, size_t from, delim_match *m)
{
    if (cfg->count == 1)
        return delim_earliest_in(cfg, buf, len, from, m);
    size_t window = 64;
    while (from < len) {
        /* Every delimiter starting in [from, from + window) ends by `end`. */
        size_t end = len;
        if (len - from > window + maxd - 1)
            end = from + window + maxd - 1;
        /* A match starting later in the window may hide a longer delimiter that starts
         * before it but is cut off by the window, so only the window's own starts count. */
        if (delim_earliest_in(cfg, buf, end, from, m) && (end == len || m->pos < from + window))
            return true;
        if (end == len)
            return false;
        from += window;
        if (window < ((size_t)1 << 20))
            window *= 2;
    }
    return false;
}

/* True when buf[start..len) is a proper prefix of d (d runs past the end of buf). */
static bool delim_partial_at(const weft_delimiter *d, const uint8_t *buf, size_t len, size_t start)
{
    return len - start < d->len && memcmp(buf + start, d->bytes, len - start) == 0;
}

/* Earliest start of a delimiter still arriving at the tail of buf, or len when none. */
static size_t delim_partial_start(const weft_delimiter_config *cfg, const uint8_t *buf, size_t len)
{
    size_t best = len;
    for (size_t i = 0; i < cfg->count; i++) {
        const weft_delimiter *d = &cfg->delimiters[i];
        size_t s = len >= d->len ? len - d->len + 1 : 0;
        for (; s < best; s++) {
            if (delim_partial_at(d, buf, len, s)) {
                best = s;
                break;
            }
        }
    }
    return best;
}

static int delim_too_long(const weft_delimiter_config *cfg, weft_frame *frame, size_t consumed)
{
    frame->consumed = consumed;
    frame->reason = "frame longer than max_frame_length";
    frame->recoverable = !cfg->close_on_error;
    return WEFT_ETOOLONG;
}

static int delimiter_decode(const weft_codec *codec, weft_codec_state *state, const uint8_t *buf,
                            size_t len, weft_frame *frame)
{
    const weft_delimiter_config *cfg = &codec->config.delimiter;
    size_t maxd = delim_max_len(cfg);
    size_t base = 0;
    size_t seen = (size_t)(state->u64 & ~DELIM_DISCARDING);

    if (seen > len)
        seen = 0; /* not the growing buffer we were promised: rescan, never over-read */

    for (;;) {
        const uint8_t *p = buf + base;
        size_t avail = len - base;
        /* No delimiter lay wholly inside the first `seen` bytes, so one can only start in
         * the last maxd - 1 of them or later. */
        size_t from = seen > maxd - 1 ? seen - (maxd - 1) : 0;
        delim_match m = {0, 0};
        bool found = delim_earliest(cfg, maxd, p, avail, from, &m);

        if (state->u64 & DELIM_DISCARDING) {
            if (!found) {
                size_t keep = avail - delim_partial_start(cfg, p, avail);
                state->u64 = keep | DELIM_DISCARDING;
                frame->consumed = len - keep;
                return WEFT_AGAIN;
            }
            base += m.pos + cfg->delimiters[m.idx].len;
            seen = 0;
            state->u64 = 0;
            if (!cfg->fail_fast)
                return delim_too_long(cfg, frame, base);
            continue; /* the error was reported when discarding began */
        }

        if (found) {
            size_t dlen = cfg->delimiters[m.idx].len;
            state->u64 = 0;
            if (m.pos > cfg->max_frame_length)
                return delim_too_long(cfg, frame, base + m.pos + dlen);
            frame->offset = base;
            frame->length = cfg->strip_delimiter ? m.pos : m.pos + dlen;
            frame->consumed = base + m.pos + dlen;
            return WEFT_FRAME;
        }

        if (avail > cfg->max_frame_length) {
            size_t partial = delim_partial_start(cfg, p, avail);
            if (partial > cfg->max_frame_length) {
                /* Too long whatever follows: discard, keeping a possible delimiter start. */
                size_t keep = avail - partial;
                state->u64 = keep | DELIM_DISCARDING;
                frame->consumed = len - keep;
                if (cfg->fail_fast)
                    return delim_too_long(cfg, frame, len - keep);
                return WEFT_AGAIN;
            }
        }
        state->u64 = avail;
        frame->consumed = base;
        return WEFT_AGAIN;
    }
}

static int delimiter_encode(const weft_codec *codec, const uint8_t *payload, size_t payload_len,
                            weft_encoding *enc)
{
    const weft_delimiter *d = &codec->config.delimiter.delimiters[0];
    (void)payload;
    (void)payload_len;
    enc->head_len = 0;
    enc->tail = d->bytes;
    enc->tail_len = d->len;
    return 0;
}

/* A frame on the wire is at most max_frame_length bytes and its delimiter. */
static void delimiter_traits(const weft_codec *codec, weft_codec_traits *out)
{
    const weft_delimiter_config *cfg = &codec->config.delimiter;
    uint64_t max = (uint64_t)cfg->max_frame_length;
    uint64_t maxd = (uint64_t)delim_max_len(cfg);
    out->max_frame = max > UINT64_MAX - maxd ? UINT64_MAX : max + maxd;
    out->close_on_error = cfg->close_on_error;
}

const weft_codec_vtable weft_codec_delimiter = {
    .name = "delimiter",
    .init = delimiter_init,
    .destroy = NULL,
    .decode = delimiter_decode,
    .encode = delimiter_encode,
    .state_destroy = NULL,
    .traits = delimiter_traits,
};
