/* weft — a connection: reading, writing, closing and its timers.
 *
 * Every weft_conn_* call here is for the owning loop's thread only, and a weft_conn * is
 * valid there until on_close returns. Nothing checks the thread (a check on every call would
 * cost on the hot path): a call from another thread is a data race, not an error code. Other
 * threads name a connection by its weft_conn_ref and reach it through the weft_async_* calls
 * (engine.h). On the loop's thread, user code always runs inside a callback.
 */
#ifndef WEFT_CONN_H
#define WEFT_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weft/error.h"
#include "weft/socket.h"
#include "weft/version.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_engine weft_engine;
typedef struct weft_conn weft_conn;

/* Names a connection across threads. A ref to a closed connection is detected
 * (WEFT_ESTALE), never a use-after-free. Plain data: copy it freely. */
typedef struct weft_conn_ref {
    uint32_t loop;
    uint32_t slot;
    uint32_t gen; /* odd for a live connection; 0 is never live */
} weft_conn_ref;

/* True when a and b name the same connection (the same one in its life: a ref to an earlier
 * connection on the same slot differs). */
static inline bool weft_conn_ref_equal(weft_conn_ref a, weft_conn_ref b)
{
    return a.loop == b.loop && a.slot == b.slot && a.gen == b.gen;
}

/* What a callback asks the engine to do next. */
typedef enum weft_action {
    WEFT_ACTION_NONE = 0,
    WEFT_ACTION_CLOSE,   /* close this connection (after flushing what is queued) */
    WEFT_ACTION_SHUTDOWN /* stop the whole engine, as weft_engine_stop() */
} weft_action;

/* ---- Reading ---- */

/* Unread inbound bytes buffered for conn. */
WEFT_API size_t weft_conn_get_buffered(const weft_conn *conn);

/* Points *out at the first min(n, buffered) unread bytes as one contiguous span (n == 0:
 * all of them) and returns that count (never negative; *out may be NULL when it is 0).
 * Nothing is consumed. The span is borrowed until the next read call on conn or the return
 * of on_traffic. */
WEFT_API int weft_conn_peek(weft_conn *conn, size_t n, const uint8_t **out);

/* Drops up to n unread bytes; returns how many were dropped (never negative). */
WEFT_API int weft_conn_discard(weft_conn *conn, size_t n);

/* Copies up to n unread bytes into buf (owned by the caller) and consumes them; returns
 * the count (never negative). */
WEFT_API int weft_conn_read(weft_conn *conn, void *buf, size_t n);

/* With a codec: decodes the next complete frame. Returns WEFT_FRAME (1) and sets *frame and
 * *len (a span borrowed until the next read call on conn or the return of on_traffic),
 * WEFT_AGAIN (0) when no complete frame is buffered, or a negative WEFT_E* code on a decode
 * error that closes the connection (it is closed once on_traffic returns): the same numbers
 * as a codec's decode. Recoverable errors (a too-long line) are logged and skipped.
 * WEFT_ENOCODEC without a codec. */
WEFT_API int weft_conn_next_frame(weft_conn *conn, const uint8_t **frame, size_t *len);

/* As weft_conn_next_frame, and sets *message (when not NULL) to the codec's decoded form of
 * the frame (weft_frame.message: NULL for the built-in codecs), borrowed like the frame. */
WEFT_API int weft_conn_next_message(weft_conn *conn, const uint8_t **frame, size_t *len,
                                    const void **message);

/* The reason text (static) of conn's decode error when it is the most recent one on conn's
 * loop, else NULL. Lets a protocol answer a bad request with the codec's reason before the
 * connection closes. */
WEFT_API const char *weft_conn_get_decode_error(const weft_conn *conn);

/* Sends data; it is copied, so data stays owned by the caller. A write under 16 KiB is
 * queued, and what callbacks queued for conn leaves in one syscall when the loop iteration
 * ends; a larger one goes straight to the socket when nothing is queued before it. Bytes the
 * kernel does not take wait, in order. Returns 0, WEFT_ECLOSED (closing or closed),
 * WEFT_EOUTCAP (the hard cap: the connection is then closed), WEFT_ENOMEM (closed too), or
 * the socket's own error (a negated errno such as WEFT_EPIPE or WEFT_ECONNRESET; closed too).
 * A send error after a 0 (when the queue leaves) closes conn and reaches on_close as err. */
WEFT_API int weft_conn_write(weft_conn *conn, const void *data, size_t len);

/* As weft_conn_write, for several buffers sent as one (iov and the buffers are borrowed
 * until the call returns); also WEFT_EINVAL (iovcnt < 0, or iov NULL). Keep iovcnt at most
 * IOV_MAX: more, in a write that goes straight out, fail with WEFT_EMSGSIZE and close conn. */
WEFT_API int weft_conn_writev(weft_conn *conn, const struct iovec *iov, int iovcnt);

/* As weft_conn_write, but frames data through the engine's codec encoder first. Also
 * WEFT_ENOCODEC without a codec, or the encoder's error (e.g. WEFT_EMSGSIZE: too long for the
 * length field; WEFT_EINVAL: not frame_length long): nothing is sent and conn stays open. */
WEFT_API int weft_conn_write_frame(weft_conn *conn, const void *data, size_t len);

/* Closes once everything queued was sent and taken by the peer; reading stops now. on_close
 * follows with 0, or WEFT_ETIMEDOUT when that takes longer than stop_timeout_ms, or the
 * socket's error. Returns 0, WEFT_ECLOSED (already closing or closed), or WEFT_EINVAL for a
 * datagram connection. */
WEFT_API int weft_conn_close(weft_conn *conn);

/* Closes now, dropping queued output (the peer gets a reset), also during a graceful close;
 * on_close(conn, WEFT_ECANCELED) follows when the loop iteration ends, never inside this call.
 * Returns 0, WEFT_ECLOSED (a close is already final), or WEFT_EINVAL for a datagram one. */
WEFT_API int weft_conn_abort(weft_conn *conn);

/* Getters: they never fail. The context is the caller's (weft never frees it); the fd stays
 * weft's (never close it; a datagram connection's is its listener's socket); a datagram
 * connection's ref is never live (WEFT_ESTALE). get_loop is the owning loop's index. */
WEFT_API void *weft_conn_get_context(const weft_conn *conn);
WEFT_API void weft_conn_set_context(weft_conn *conn, void *ctx);
WEFT_API weft_conn_ref weft_conn_get_ref(const weft_conn *conn);
WEFT_API weft_engine *weft_conn_get_engine(const weft_conn *conn);
WEFT_API unsigned weft_conn_get_loop(const weft_conn *conn);
WEFT_API int weft_conn_get_fd(const weft_conn *conn);
/* Bytes queued for sending and not yet taken by the kernel, and those io_uring's zero-copy
 * sends hold until the kernel lets go of them (uring_zc_min): what write_high_water and
 * write_hard_cap look at. */
WEFT_API size_t weft_conn_get_pending_out(const weft_conn *conn);

/* Copies the local / peer address into *addr (owned by the caller) and sets *len to its
 * length (the value in is not read). Returns 0 or a negated errno (e.g. WEFT_ENOTCONN); on a
 * datagram connection the peer is the sender, and WEFT_ENOTCONN outside its on_traffic. */
WEFT_API int weft_conn_get_local_addr(const weft_conn *conn, struct sockaddr_storage *addr,
                                      socklen_t *len);
WEFT_API int weft_conn_get_peer_addr(const weft_conn *conn, struct sockaddr_storage *addr,
                                     socklen_t *len);

/* Stops reading conn's socket: new bytes wait in the kernel, whose receive window then holds
 * the peer back, instead of piling up in conn's inbound buffer (which closes it at
 * max_inbound). Bytes already buffered stay. This is flow control between connections: a
 * proxy pauses one side while the other side's output drains. Returns 0, WEFT_ECLOSED, or
 * WEFT_EINVAL for a datagram connection. */
WEFT_API int weft_conn_pause_read(weft_conn *conn);

/* Reads again after weft_conn_pause_read; bytes left buffered meanwhile reach on_traffic
 * soon after (as with weft_async_wake) unless this runs in conn's own on_traffic. After the
 * peer's EOF it only offers what is still buffered, then the connection closes. Returns 0,
 * WEFT_ECLOSED when reading ended for good (closing, a decode error: it stays paused), or
 * WEFT_EINVAL for a datagram connection. */
WEFT_API int weft_conn_resume_read(weft_conn *conn);

/* Runs a user timer's callback on conn's loop thread. */
typedef void (*weft_timer_cb)(weft_conn *conn, void *arg);

/* Calls cb(conn, arg) on conn's loop after ms milliseconds, once, unless conn closes first
 * or the timer is cancelled: then cb never runs (arg stays the caller's to free, e.g. in
 * on_close). Sets *id (may be NULL) for weft_conn_cancel_timer. Returns 0, WEFT_EINVAL (cb
 * NULL, or a datagram connection), WEFT_ECLOSED or WEFT_ENOMEM; on failure cb never runs. */
WEFT_API int weft_conn_after(weft_conn *conn, unsigned ms, weft_timer_cb cb, void *arg,
                             uint64_t *id);

/* Cancels a pending timer of conn: 0 (cb will not run), or WEFT_ENOENT when it already ran,
 * was cancelled or is unknown. */
WEFT_API int weft_conn_cancel_timer(weft_conn *conn, uint64_t id);

/* Gives conn timeouts of its own instead of the engine's idle_timeout_ms and
 * read_timeout_ms: milliseconds (rounded up to the timer wheel's 100 ms, at most
 * WEFT_TIMEOUT_MAX_MS: longer ones are that), 0 for never, WEFT_TIMEOUT_DEFAULT to go back
 * to the engine's (e.g. a connection waiting on its own worker job should not be
 * idle-closed). Returns 0, WEFT_ECLOSED, WEFT_EINVAL (a datagram connection) or WEFT_ENOMEM
 * (the first connection of a block of 1,024 to have timeouts of its own takes 4 KiB for
 * them; the connection keeps the timeouts it had). */
#define WEFT_TIMEOUT_DEFAULT 0xffffffffu
#define WEFT_TIMEOUT_MAX_MS  6553400u
WEFT_API int weft_conn_set_timeouts(weft_conn *conn, unsigned idle_ms, unsigned read_ms);

/* ---- Datagrams ---- */

/* True for the connection object of a udp:// or unixgram:// listener. Each datagram is one
 * on_traffic call on it (weft_conn_peek sees the whole datagram; what is left unread is
 * dropped with it), weft_conn_get_peer_addr is its sender, and weft_conn_write answers the
 * sender with one datagram (only there: elsewhere it returns WEFT_EDESTADDRREQ). Datagrams
 * are received in batches, and the answers sent while a batch is handled leave together
 * (sendmmsg); one the kernel refuses is dropped and counted in datagrams_dropped. Outside a
 * batch (in another callback) weft_conn_sendto sends at once or not at all (WEFT_EAGAIN).
 * Nothing is ever queued. It has no live ref, no timers, no on_open and no on_close; close,
 * abort, pause_read and resume_read return WEFT_EINVAL. */
WEFT_API bool weft_conn_is_datagram(const weft_conn *conn);

/* Sends one datagram from a datagram connection to any address (to and data are borrowed
 * until the call returns); inside a batch it joins the batch's answers. Returns 0, WEFT_EINVAL
 * (not a datagram connection, or to NULL), or a negated errno (WEFT_EAGAIN when the socket
 * buffer is full: the datagram is dropped). */
WEFT_API int weft_conn_sendto(weft_conn *conn, const struct sockaddr *to, socklen_t tolen,
                              const void *data, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_CONN_H */
