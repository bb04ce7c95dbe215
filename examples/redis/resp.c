/* weft-redis — the RESP2 request decoder as a weft custom codec. */
#include "resp.h"

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "number.h"
#include "weft/engine.h"

/* What a parser keeps between requests. A request with more arguments, or a longer inline
 * line, grows the arrays for itself; they are given back once it is done, so one huge
 * request does not pin its peak for the connection's life. */
#define KEEP_ARGS    64
#define KEEP_SCRATCH 4096

/* Per-connection progress, kept in weft_codec_state.ptr and made on the first decode.
 * Offsets count from the first byte of the request being parsed, which is always the
 * first byte shown to decode: a request in progress consumes nothing until it is whole. */
typedef struct resp_parser {
    int64_t argc;          /* multibulk count announced; 0 = between requests */
    int64_t argi;          /* arguments complete so far */
    int64_t bulk;          /* length from the "$N" header just read, or -1 */
    size_t pos;            /* next byte to parse */
    size_t inline_scanned; /* inline: bytes searched for '\n' without finding one */
    size_t cap;            /* room in off/lens/argv */
    size_t *off;
    size_t *lens;
    const uint8_t **argv;
    uint8_t *scratch; /* unescaped inline arguments */
    size_t scratch_cap;
    resp_request req;
} resp_parser;

static const resp_limits default_limits = {
    .max_bulk = RESP_MAX_BULK_DEFAULT,
    .max_args = RESP_MAX_ARGS_DEFAULT,
    .max_inline = RESP_MAX_INLINE_DEFAULT,
};

/* Redis's "expected '$', got 'X'" names the offending byte, but a frame's reason must be
 * static text that outlives the decode call: one text per byte value, made on first use. */
static char expected_dollar[256][48];
static pthread_once_t expected_dollar_once = PTHREAD_ONCE_INIT;

static void expected_dollar_make(void)
{
    for (int c = 0; c < 256; c++) {
        /* Like Redis, but escaped: the text goes into an error reply and a log line, where a
         * raw newline would break the stream and a raw ESC would reach a terminal. */
        uint8_t b = (uint8_t)c;
        char shown[8];
        weft_escape(shown, sizeof(shown), &b, 1);
        snprintf(expected_dollar[c], sizeof(expected_dollar[c]),
                 "Protocol error: expected '$', got '%s'", shown);
    }
}

static const char *expected_dollar_reason(uint8_t c)
{
    (void)pthread_once(&expected_dollar_once, expected_dollar_make);
    return expected_dollar[c];
}

void resp_limits_init(resp_limits *lim)
{
    *lim = default_limits;
}

static void parser_reset(resp_parser *p)
{
    p->argc = 0;
    p->argi = 0;
    p->bulk = -1;
    p->pos = 0;
    p->inline_scanned = 0;
}

/* Gives back what the last request grew beyond the kept size. Only between requests: in
 * the middle of one, off/lens hold the arguments parsed so far. */
static void parser_shrink(resp_parser *p)
{
    if (p->argc != 0)
        return;
    if (p->cap > KEEP_ARGS) {
        free(p->off);
        free(p->lens);
        free(p->argv);
        p->off = p->lens = NULL;
        p->argv = NULL;
        p->cap = 0;
    }
    if (p->scratch_cap > KEEP_SCRATCH) {
        free(p->scratch);
        p->scratch = NULL;
        p->scratch_cap = 0;
    }
}

static void parser_free(resp_parser *p)
{
    if (p == NULL)
        return;
    free(p->off);
    free(p->lens);
    free(p->argv);
    free(p->scratch);
    free(p);
}

/* Makes room for want arguments. Called with the count of arguments that actually arrived,
 * never with the count a "*N" header declares, so a peer's claim reserves nothing; growth is
 * geometric, so the reserve is at most twice what arrived. */
static bool parser_reserve(resp_parser *p, size_t want)
{
    size_t cap = p->cap ? p->cap : 8;
    size_t *off, *lens;
    const uint8_t **argv;

    if (want <= p->cap)
        return true;
    while (cap < want)
        cap *= 2;
    off = realloc(p->off, cap * sizeof(*off));
    if (off == NULL)
        return false;
    p->off = off;
    lens = realloc(p->lens, cap * sizeof(*lens));
    if (lens == NULL)
        return false;
    p->lens = lens;
    argv = realloc(p->argv, cap * sizeof(*argv));
    if (argv == NULL)
        return false;
    p->argv = argv;
    p->cap = cap;
    return true;
}

static int fail(weft_frame *frame, const char *reason)
{
    frame->consumed = 0;
    frame->reason = reason;
    frame->recoverable = false;
    return WEFT_EPROTO;
}

static bool is_blank(uint8_t c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\v' || c == '\f' || c == '\0';
}

static int hex_val(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Splits an inline line into arguments as Redis's sdssplitargs does: blanks separate,
 * "double quotes" take \n \r \t \b \a \xHH and \<any> escapes, 'single quotes' take \',
 * and a closing quote must be followed by a blank or the end. Arguments are unescaped
 * into p->scratch. Returns the count, or -1 on unbalanced quotes. */
static int split_inline(resp_parser *p, const uint8_t *s, size_t n)
{
    size_t i = 0, out = 0;
    int argc = 0;

    for (;;) {
        bool inq = false, insq = false, done = false;
        size_t start;

        while (i < n && is_blank(s[i]))
            i++;
        if (i == n)
            return argc;
        start = out;
        while (!done) {
            if (inq) {
                if (i == n)
                    return -1;
                if (s[i] == '\\' && i + 3 < n && s[i + 1] == 'x' && hex_val(s[i + 2]) >= 0 &&
                    hex_val(s[i + 3]) >= 0) {
                    p->scratch[out++] = (uint8_t)(hex_val(s[i + 2]) * 16 + hex_val(s[i + 3]));
                    i += 3;
                } else if (s[i] == '\\' && i + 1 < n) {
                    uint8_t c;
                    i++;
                    switch (s[i]) {
                    case 'n':
                        c = '\n';
                        break;
                    case 'r':
                        c = '\r';
                        break;
                    case 't':
                        c = '\t';
                        break;
                    case 'b':
                        c = '\b';
                        break;
                    case 'a':
                        c = '\a';
                        break;
                    default:
                        c = s[i];
                        break;
                    }
                    p->scratch[out++] = c;
                } else if (s[i] == '"') {
                    if (i + 1 < n && !is_blank(s[i + 1]))
                        return -1;
                    done = true;
                } else {
                    p->scratch[out++] = s[i];
                }
            } else if (insq) {
                if (i == n)
                    return -1;
                if (s[i] == '\\' && i + 1 < n && s[i + 1] == '\'') {
                    i++;
                    p->scratch[out++] = '\'';
                } else if (s[i] == '\'') {
                    if (i + 1 < n && !is_blank(s[i + 1]))
                        return -1;
                    done = true;
                } else {
                    p->scratch[out++] = s[i];
                }
            } else {
                if (i == n || is_blank(s[i])) {
                    done = true;
                } else if (s[i] == '"') {
                    inq = true;
                } else if (s[i] == '\'') {
                    insq = true;
                } else {
                    p->scratch[out++] = s[i];
                }
            }
            if (i < n)
                i++;
        }
        p->off[argc] = start;
        p->lens[argc] = out - start;
        argc++;
    }
}

static int decode_inline(const resp_limits *lim, resp_parser *p, const uint8_t *buf, size_t len,
                         weft_frame *frame)
{
    const uint8_t *nl = memchr(buf + p->inline_scanned, '\n', len - p->inline_scanned);
    size_t line, frame_len;
    int argc;

    if (nl == NULL) {
        if (len > lim->max_inline)
            return fail(frame, "Protocol error: too big inline request");
        p->inline_scanned = len;
        frame->consumed = 0;
        return WEFT_AGAIN;
    }
    /* Refused whether or not the newline has arrived yet, so the verdict does not depend on
     * how the bytes were split into reads. */
    if ((size_t)(nl - buf) > lim->max_inline)
        return fail(frame, "Protocol error: too big inline request");
    frame_len = (size_t)(nl - buf) + 1;
    line = frame_len - 1;
    if (line > 0 && buf[line - 1] == '\r')
        line--;
    /* At most one argument per two bytes, plus one; unescaping never grows an argument. */
    if (!parser_reserve(p, line / 2 + 1))
        return fail(frame, "Protocol error: out of memory");
    if (p->scratch_cap < line + 1) {
        uint8_t *s = realloc(p->scratch, line + 1);
        if (s == NULL)
            return fail(frame, "Protocol error: out of memory");
        p->scratch = s;
        p->scratch_cap = line + 1;
    }
    argc = split_inline(p, buf, line);
    if (argc < 0)
        return fail(frame, "Protocol error: unbalanced quotes in request");
    for (int i = 0; i < argc; i++)
        p->argv[i] = p->scratch + p->off[i];
    p->req.argc = argc;
    p->req.frame = buf;
    p->req.frame_len = frame_len;
    frame->consumed = frame_len;
    frame->offset = 0;
    frame->length = frame_len;
    return WEFT_FRAME;
}

/* Finds the "\r\n" ending a header line that starts at buf[from]. Returns its offset, 0 when
 * more bytes are needed (a header is never empty, so 0 cannot be a real answer), or -1 when
 * the line is too long or a '\r' is not followed by '\n'. */
static int64_t header_end(const resp_limits *lim, const uint8_t *buf, size_t len, size_t from)
{
    const uint8_t *cr = memchr(buf + from, '\r', len - from);

    if (cr == NULL)
        return len - from > lim->max_inline ? -1 : 0;
    if ((size_t)(cr - buf) + 1 >= len)
        return 0;
    return (size_t)(cr - buf) - from > lim->max_inline ? -1 : cr - buf;
}

static int decode_multibulk(const resp_limits *lim, resp_parser *p, const uint8_t *buf, size_t len,
                            weft_frame *frame)
{
    if (p->argc == 0) {
        int64_t end = header_end(lim, buf, len, 1), ll;
        if (end < 0)
            return fail(frame, "Protocol error: too big mbulk count string");
        if (end == 0) {
            frame->consumed = 0;
            return WEFT_AGAIN;
        }
        if (!num_parse_ll(buf + 1, (size_t)end - 1, &ll) || buf[end + 1] != '\n' ||
            (ll > 0 && ((uint64_t)ll > lim->max_args || ll > INT_MAX)))
            return fail(frame, "Protocol error: invalid multibulk length");
        p->pos = (size_t)end + 2;
        if (ll <= 0) {
            /* "*0" and "*-1" are empty requests: Redis skips them without a reply. */
            p->req.argc = 0;
            goto done;
        }
        p->argc = ll;
        p->argi = 0;
        p->bulk = -1;
    }
    while (p->argi < p->argc) {
        if (p->bulk < 0) {
            int64_t end, ll;
            if (p->pos >= len) {
                frame->consumed = 0;
                return WEFT_AGAIN;
            }
            if (buf[p->pos] != '$')
                return fail(frame, expected_dollar_reason(buf[p->pos]));
            end = header_end(lim, buf, len, p->pos + 1);
            if (end < 0)
                return fail(frame, "Protocol error: too big bulk count string");
            if (end == 0) {
                frame->consumed = 0;
                return WEFT_AGAIN;
            }
            if (!num_parse_ll(buf + p->pos + 1, (size_t)end - p->pos - 1, &ll) || ll < 0 ||
                (uint64_t)ll > lim->max_bulk || buf[end + 1] != '\n')
                return fail(frame, "Protocol error: invalid bulk length");
            p->bulk = ll;
            p->pos = (size_t)end + 2;
        }
        if (len - p->pos < (size_t)p->bulk + 2) {
            /* The whole request's size is not known yet, but this bulk's end is. */
            frame->consumed = 0;
            frame->need = p->pos + (size_t)p->bulk + 2;
            return WEFT_AGAIN;
        }
        if (buf[p->pos + p->bulk] != '\r' || buf[p->pos + p->bulk + 1] != '\n')
            return fail(frame, "Protocol error: expected CRLF after bulk data");
        if (!parser_reserve(p, (size_t)p->argi + 1))
            return fail(frame, "Protocol error: out of memory");
        p->off[p->argi] = p->pos;
        p->lens[p->argi] = (size_t)p->bulk;
        p->argi++;
        p->pos += (size_t)p->bulk + 2;
        p->bulk = -1;
    }
    for (int64_t i = 0; i < p->argc; i++)
        p->argv[i] = buf + p->off[i];
    p->req.argc = (int)p->argc;
done:
    p->req.frame = buf;
    p->req.frame_len = p->pos;
    frame->consumed = p->pos;
    frame->offset = 0;
    frame->length = p->pos;
    return WEFT_FRAME;
}

static int resp_decode(const weft_codec *codec, weft_codec_state *state, const uint8_t *buf,
                       size_t len, weft_frame *frame)
{
    const resp_limits *lim = codec != NULL && codec->ctx != NULL ? codec->ctx : &default_limits;
    resp_parser *p = state->ptr;
    int rc;

    frame->consumed = 0;
    frame->need = 0;
    frame->message = NULL;
    if (p == NULL) {
        p = calloc(1, sizeof(*p));
        if (p == NULL)
            return fail(frame, "Protocol error: out of memory");
        parser_reset(p);
        state->ptr = p;
    }
    /* A shorter buffer than last time means the caller started over: so do we. */
    if (len < p->pos || len < p->inline_scanned)
        parser_reset(p);
    /* The previous request is no longer borrowed: what it grew goes back now, if the caller
     * did not say so already with resp_request_done. */
    if (p->cap > KEEP_ARGS || p->scratch_cap > KEEP_SCRATCH)
        parser_shrink(p);
    if (len == 0)
        return WEFT_AGAIN;
    if (buf[0] == '*')
        rc = decode_multibulk(lim, p, buf, len, frame);
    else
        rc = decode_inline(lim, p, buf, len, frame);
    if (rc == WEFT_FRAME) {
        p->req.argv = p->argv;
        p->req.lens = p->lens;
        frame->message = &p->req;
        parser_reset(p);
    } else if (rc < 0) {
        parser_reset(p);
    }
    return rc;
}

void resp_request_done(const resp_request *req)
{
    if (req == NULL)
        return;
    /* req is the parser's own req member (decode hands out nothing else): the parser it
     * belongs to is around it. */
    parser_shrink((resp_parser *)(void *)((const char *)req - offsetof(resp_parser, req)));
}

size_t resp_state_footprint(const weft_codec_state *state)
{
    const resp_parser *p = state->ptr;
    if (p == NULL)
        return 0;
    return sizeof(*p) + p->cap * (sizeof(*p->off) + sizeof(*p->lens) + sizeof(*p->argv)) +
           p->scratch_cap;
}

static void resp_state_destroy(const weft_codec *codec, weft_codec_state *state)
{
    (void)codec;
    parser_free(state->ptr);
    state->ptr = NULL;
}

const weft_codec_vtable resp_codec = {
    .name = "resp2",
    .decode = resp_decode,
    .state_destroy = resp_state_destroy,
};
