/* weft-redis — the RESP2 request decoder, written as a weft custom codec.
 *
 * This is the example to copy when writing a protocol of your own: a weft_codec_vtable
 * whose decode() finds one complete request in the bytes it is shown, reports it as a
 * frame, and hands the parsed argument vector along as frame->message, so the server never
 * parses a request twice.
 *
 * Accepted forms, as Redis accepts them: multibulk requests ("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"),
 * inline commands ("PING\r\n", split on blanks, with redis-cli's quoting), any number of
 * requests back to back (pipelining), and a request split at any byte. The decoder is
 * re-entrant: called again with the same unconsumed bytes plus new ones, it resumes where
 * it stopped, so a 512 MB bulk is not rescanned on every read.
 */
#ifndef WEFT_REDIS_RESP_H
#define WEFT_REDIS_RESP_H

#include <stddef.h>
#include <stdint.h>

#include "weft/codec.h"

#define RESP_MAX_BULK_DEFAULT   (512ull * 1024 * 1024) /* Redis's proto-max-bulk-len */
#define RESP_MAX_ARGS_DEFAULT   (1024 * 1024)          /* multibulk count bound */
#define RESP_MAX_INLINE_DEFAULT (64 * 1024)            /* Redis's PROTO_INLINE_MAX_SIZE */

/* Limits of one decoder; hand a pointer to it as cfg.codec.custom.ctx (borrowed until the
 * engine is freed). A NULL ctx means the defaults above. */
typedef struct resp_limits {
    uint64_t max_bulk; /* longest bulk argument */
    uint64_t max_args; /* most arguments in one multibulk request */
    size_t max_inline; /* longest inline request, and longest "*N" or "$N" header line */
} resp_limits;

/* Fills lim with the defaults. */
void resp_limits_init(resp_limits *lim);

/* One decoded request: argc arguments, argv[i] of lens[i] bytes. The pointers are borrowed
 * until the next decode on the same connection or resp_request_done, whichever comes first
 * (they point into the frame or into the decoder's scratch space for unescaped inline
 * arguments). frame/frame_len name the raw request the arguments came from. */
typedef struct resp_request {
    int argc;
    const uint8_t *const *argv;
    const size_t *lens;
    const uint8_t *frame;
    size_t frame_len;
} resp_request;

/* The RESP2 request codec. decode() returns WEFT_FRAME with one frame (frame->message is a
 * const resp_request *, which weft_conn_next_message hands on), WEFT_AGAIN, or WEFT_EPROTO
 * with frame->reason set to Redis's static text ("Protocol error: invalid bulk length"),
 * which weft_conn_get_decode_error hands on. */
extern const weft_codec_vtable resp_codec;

/* Says the caller is done with req (the message of the frame decode returned last on its
 * connection): the parser then gives back what a large request made it grow (argument
 * arrays beyond 64 entries, inline scratch beyond 4 KiB), so an idle connection costs the
 * same after a 1,000,000-argument command as before it. The next decode does the same when
 * this is not called. req and everything it points to are invalid afterwards. NULL is
 * ignored. The connection's loop thread. */
void resp_request_done(const resp_request *req);

/* Heap bytes the decoder keeps in state (0 before the first decode), for tests and stats. */
size_t resp_state_footprint(const weft_codec_state *state);

#endif /* WEFT_REDIS_RESP_H */
