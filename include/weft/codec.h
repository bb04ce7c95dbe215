/* weft — frame codecs.
 *
 * A codec turns a byte stream into frames and frames a payload for sending. The built-in
 * codecs follow netty's LineBasedFrameDecoder, DelimiterBasedFrameDecoder,
 * FixedLengthFrameDecoder, LengthFieldBasedFrameDecoder and LengthFieldPrepender. A user
 * codec (the Redis sample's RESP codec is one) fills in the same weft_codec_vtable.
 *
 * Codecs work without an engine: weft_codec_init() + weft_codec_decode() decode a plain
 * byte buffer, so a codec can be tested offline.
 */
#ifndef WEFT_CODEC_H
#define WEFT_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weft/error.h"
#include "weft/version.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum weft_codec_kind {
    WEFT_CODEC_NONE = 0, /* raw bytes: peek/discard/read in on_traffic */
    WEFT_CODEC_LINE,
    WEFT_CODEC_DELIMITER,
    WEFT_CODEC_FIXED_LENGTH,
    WEFT_CODEC_LENGTH_FIELD,
    WEFT_CODEC_CUSTOM
} weft_codec_kind;

typedef enum weft_byte_order { WEFT_BIG_ENDIAN = 0, WEFT_LITTLE_ENDIAN = 1 } weft_byte_order;

/* netty's LineBasedFrameDecoder: "\n" and "\r\n" end a line. */
typedef struct weft_line_config {
    size_t max_length;    /* longest line without its delimiter; default 8192 */
    bool strip_delimiter; /* default true */
    bool fail_fast;       /* report too-long as soon as it is seen; default false */
    bool close_on_error;  /* close the connection on a too-long line; default false */
    bool encode_crlf;     /* the encoder appends "\r\n" instead of "\n"; default false */
} weft_line_config;

#define WEFT_DELIMITER_MAX     8  /* delimiters per codec */
#define WEFT_DELIMITER_MAX_LEN 16 /* bytes per delimiter */

typedef struct weft_delimiter {
    uint8_t bytes[WEFT_DELIMITER_MAX_LEN];
    size_t len; /* 1..WEFT_DELIMITER_MAX_LEN */
} weft_delimiter;

/* netty's DelimiterBasedFrameDecoder: among the delimiters in the bytes received so far, the
 * one giving the shortest frame wins (ties: the one listed first), and the frame is handed
 * over at once, without waiting to see whether a longer delimiter is still arriving.
 *
 * So when a delimiter occurs inside a longer one other than at its end ("\r" in "\r\n", "A"
 * in "XAB"), the frames depend on how the bytes were split into reads, as they do in netty.
 * With "\r\n" and "\r", in that order: "AB\r\nC\r" in one read gives "AB" and "C" at once;
 * "C\r\nD\r" in one read gives "C" and "D", but "C\r" then "\nD\r" gives "C" and then "\nD"
 * (a lone "\n" is no delimiter). A prefix listed before the longer delimiter always wins the
 * tie, so that case is not split-dependent, nor is "\r\n" with "\n": every configuration
 * without such a pair gives the same frames and errors however the stream is split.
 *
 * The encoder appends delimiters[0]. */
typedef struct weft_delimiter_config {
    weft_delimiter delimiters[WEFT_DELIMITER_MAX];
    size_t count;            /* 1..WEFT_DELIMITER_MAX; default 0 (must be set) */
    size_t max_frame_length; /* default 8192 */
    bool strip_delimiter;    /* default true */
    bool fail_fast;          /* default true */
    bool close_on_error;     /* close the connection on a too-long frame; default false */
} weft_delimiter_config;

/* netty's FixedLengthFrameDecoder. */
typedef struct weft_fixed_length_config {
    size_t frame_length; /* > 0; default 0 (must be set) */
} weft_fixed_length_config;

/* netty's LengthFieldBasedFrameDecoder (decode) and LengthFieldPrepender (encode). */
typedef struct weft_length_field_config {
    weft_byte_order byte_order;    /* default WEFT_BIG_ENDIAN */
    size_t length_field_offset;    /* default 0 */
    size_t length_field_length;    /* 1, 2, 3, 4 or 8; default 4 */
    int64_t length_adjustment;     /* added to the field's value; may be negative; default 0 */
    size_t initial_bytes_to_strip; /* default 0 */
    uint64_t max_frame_length;     /* whole frame, header included, before stripping;
                                      default 1 MiB */
    bool fail_fast;                /* default true */
    /* Encoder (LengthFieldPrepender): the prepended field counts itself too. */
    bool length_includes_length_field_length; /* default false */
    int64_t encoder_length_adjustment;        /* default 0 */
} weft_length_field_config;

struct weft_codec_vtable;

/* Which codec a connection uses; lives inside weft_config. Plain data, copied by weft. */
typedef struct weft_codec_config {
    weft_codec_kind kind; /* default WEFT_CODEC_NONE */
    weft_line_config line;
    weft_delimiter_config delimiter;
    weft_fixed_length_config fixed_length;
    weft_length_field_config length_field;
    struct {
        const struct weft_codec_vtable *vtable; /* borrowed until the engine is freed */
        void *ctx;                              /* handed to the vtable as codec->ctx */
    } custom;
} weft_codec_config;

/* Fills every field with its default (kind = WEFT_CODEC_NONE). */
WEFT_API void weft_codec_config_init(weft_codec_config *cfg);

/* Per-connection decoder state: zeroed when a connection opens. Built-in codecs keep their
 * scan position or discard count in u64, with the discarding mode in its top bit. A codec
 * needing more may instead keep a pointer in ptr (it shares u64) and release it in
 * state_destroy. Eight bytes, because every connection carries one (0.1.0 had u64[2], sixteen
 * bytes). */
typedef union weft_codec_state {
    uint64_t u64;
    void *ptr;
} weft_codec_state;

/* What one decode call found. Offsets are relative to the buffer passed in. */
typedef struct weft_frame {
    size_t consumed;     /* input bytes to drop after this call, whatever it returned */
    size_t offset;       /* rc == WEFT_FRAME: frame starts here */
    size_t length;       /* rc == WEFT_FRAME: frame length */
    size_t need;         /* rc == WEFT_AGAIN: total input bytes wanted, counted from the
                            first byte not consumed, if known, else 0 */
    const char *reason;  /* rc < 0: static text saying what was wrong */
    bool recoverable;    /* rc < 0: the codec skipped the bad bytes and can go on */
    const void *message; /* rc == WEFT_FRAME: codec-specific decoded form, or NULL; borrowed
                            until the next decode call on the same state */
} weft_frame;

/* A framing around an outgoing payload: head + payload + tail. */
typedef struct weft_encoding {
    uint8_t head[16];
    size_t head_len;
    const uint8_t *tail; /* borrowed from the codec (its config), or points into tail_buf */
    size_t tail_len;
    uint8_t tail_buf[16];
} weft_encoding;

typedef struct weft_codec weft_codec;

/* What the engine needs to know about a configured codec, so that it never looks at the
 * codec's kind or config. Filled by weft_codec_get_traits. */
typedef struct weft_codec_traits {
    uint64_t max_frame;  /* largest frame on the wire the codec accepts, header and delimiter
                            included; 0 = no bound known. The engine warns at start when it
                            exceeds max_inbound. */
    bool close_on_error; /* close the connection even on an error the codec could skip
                            (weft_frame.recoverable) */
} weft_codec_traits;

typedef struct weft_codec_vtable {
    const char *name;
    /* Optional. Checks codec->config and prepares codec->impl. 0 or WEFT_EINVAL. */
    int (*init)(weft_codec *codec);
    /* Optional. Releases what init made. */
    void (*destroy)(weft_codec *codec);
    /* Looks at buf[0..len) and returns how many frames it found: WEFT_FRAME (1) with one
     * frame, WEFT_AGAIN (0) when more bytes are needed, or a negative WEFT_E* code (reason
     * set). weft_conn_next_frame answers with the same numbers. Anything above 1 is a codec
     * bug, which the engine treats as WEFT_ECORRUPT. Sets frame->consumed in every case.
     * Must not read outside buf[0..len). Called on one connection's loop thread. */
    int (*decode)(const weft_codec *codec, weft_codec_state *state, const uint8_t *buf, size_t len,
                  weft_frame *frame);
    /* Optional. Frames a payload of payload_len bytes. 0, or a negative WEFT_E* code when
     * the payload cannot be framed (wrong size, too long). NULL means "send as is". */
    int (*encode)(const weft_codec *codec, const uint8_t *payload, size_t payload_len,
                  weft_encoding *enc);
    /* Optional. Frees what decode kept in state->ptr when the connection goes away. */
    void (*state_destroy)(const weft_codec *codec, weft_codec_state *state);
    /* Optional. Describes the codec as configured: out arrives zeroed, so a codec sets only
     * what it knows. Called after init, on any thread; must not write to codec. */
    void (*traits)(const weft_codec *codec, weft_codec_traits *out);
} weft_codec_vtable;

/* A codec instance: vtable + a private copy of its config. Shared read-only by every loop
 * (decode/encode must not write to it). */
struct weft_codec {
    const weft_codec_vtable *vtable;
    weft_codec_config config;
    void *ctx;  /* config.custom.ctx */
    void *impl; /* the codec's own, made in init */
};

/* Builds a codec from cfg (copied). Returns 0 or WEFT_EINVAL (bad config, e.g. a length
 * field of 5 bytes). On failure nothing needs freeing. WEFT_CODEC_NONE is valid: the codec
 * has no vtable, decode answers WEFT_ENOCODEC and encode an empty framing. */
WEFT_API int weft_codec_init(weft_codec *codec, const weft_codec_config *cfg);

/* Releases what weft_codec_init made. */
WEFT_API void weft_codec_destroy(weft_codec *codec);

/* Zeroes state for a new stream. */
WEFT_API void weft_codec_state_init(weft_codec_state *state);

/* Frees what a decoder kept in state. */
WEFT_API void weft_codec_state_destroy(const weft_codec *codec, weft_codec_state *state);

/* See weft_codec_vtable.decode. */
WEFT_API int weft_codec_decode(const weft_codec *codec, weft_codec_state *state, const uint8_t *buf,
                               size_t len, weft_frame *frame);

/* Fills *out (owned by the caller) from the codec's traits entry; all zero for a codec
 * without one (and for WEFT_CODEC_NONE). Thread-safe on a codec that is not being
 * destroyed. */
WEFT_API void weft_codec_get_traits(const weft_codec *codec, weft_codec_traits *out);

/* See weft_codec_vtable.encode; a codec without an encoder gives an empty framing. */
WEFT_API int weft_codec_encode(const weft_codec *codec, const uint8_t *payload, size_t payload_len,
                               weft_encoding *enc);

/* The vtables of the built-in codecs, for wrapping or testing. */
WEFT_API extern const weft_codec_vtable weft_codec_line;
WEFT_API extern const weft_codec_vtable weft_codec_delimiter;
WEFT_API extern const weft_codec_vtable weft_codec_fixed_length;
WEFT_API extern const weft_codec_vtable weft_codec_length_field;

#ifdef __cplusplus
}
#endif

#endif /* WEFT_CODEC_H */
