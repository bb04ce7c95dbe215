/* weft — a connection: reading, writing, closing and its timers.
 *
 * Every weft_conn_* call here is for the owning loop's thread only, and a weft_conn * is
 * valid there until on_close returns. Other threads name a connection by its
 * weft_conn_ref and reach it through the weft_async_* calls (engine.h).
 */
#ifndef WEFT_CONN_H
#define WEFT_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "weft/error.h"
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
 * all of them) and returns that count. Nothing is consumed. The span is borrowed until the
 * next read call on conn or the return of on_traffic. */
WEFT_API int weft_conn_peek(weft_conn *conn, size_t n, const uint8_t **out);

/* Drops up to n unread bytes; returns how many were dropped. */
WEFT_API int weft_conn_discard(weft_conn *conn, size_t n);

/* Copies up to n unread bytes into buf (owned by the caller) and consumes them; returns
 * the count. */
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

/* The reason text (static) of the most recent decode error on conn, or NULL. Lets a
 * protocol answer a bad request with the codec's reason before the connection closes. */
WEFT_API const char *weft_conn_get_decode_error(const weft_conn *conn);

/* Queues data for sending; it is copied, so data stays owned by the caller. Written to the
 * socket at once when nothing waits, otherwise in order after what waits. Returns 0,
 * WEFT_ECLOSED, WEFT_EOUTCAP (the hard cap: the connection is then closed), or the socket's
 * own error (WEFT_EPIPE, WEFT_ECONNRESET, ...: the connection is then closed too). */
WEFT_API int weft_conn_write(weft_conn *conn, const void *data, size_t len);

/* As weft_conn_write, for several buffers sent as one. */
WEFT_API int weft_conn_writev(weft_conn *conn, const struct iovec *iov, int iovcnt);

/* As weft_conn_write, but frames data through the connection's codec encoder first. */
WEFT_API int weft_conn_write_frame(weft_conn *conn, const void *data, size_t len);

/* Closes after everything queued is sent (or stop_timeout_ms passed); on_close(conn, 0)
 * follows. Reading stops now. Returns 0 or WEFT_ECLOSED. */
WEFT_API int weft_conn_close(weft_conn *conn);

/* Closes now, dropping queued output; on_close(conn, WEFT_ECANCELED) follows once the
 * current callback returns. */
WEFT_API int weft_conn_abort(weft_conn *conn);

WEFT_API void *weft_conn_get_context(const weft_conn *conn);
WEFT_API void weft_conn_set_context(weft_conn *conn, void *ctx);
WEFT_API weft_conn_ref weft_conn_get_ref(const weft_conn *conn);
WEFT_API weft_engine *weft_conn_get_engine(const weft_conn *conn);
WEFT_API unsigned weft_conn_get_loop(const weft_conn *conn);
WEFT_API int weft_conn_get_fd(const weft_conn *conn);
/* Bytes queued for sending and not yet taken by the kernel. */
WEFT_API size_t weft_conn_get_pending_out(const weft_conn *conn);

/* Copies the local / peer address into *addr (owned by the caller); *len is its size in and
 * the address length out. Returns 0 or a negated errno. */
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
 * soon after (as with weft_async_wake). Returns 0, WEFT_ECLOSED (closing: it stays paused),
 * or WEFT_EINVAL for a datagram connection. */
WEFT_API int weft_conn_resume_read(weft_conn *conn);

/* Runs a user timer's callback on conn's loop thread. */
typedef void (*weft_timer_cb)(weft_conn *conn, void *arg);

/* Calls cb(conn, arg) on conn's loop after ms milliseconds, once, unless conn closes first
 * or the timer is cancelled: then cb never runs (arg stays the caller's to free, e.g. in
 * on_close). Sets *id (may be NULL) for weft_conn_cancel_timer. Returns 0, WEFT_ECLOSED or
 * WEFT_ENOMEM; on failure cb never runs. */
WEFT_API int weft_conn_after(weft_conn *conn, unsigned ms, weft_timer_cb cb, void *arg,
                             uint64_t *id);

/* Cancels a pending timer of conn: 0, or WEFT_ENOENT when it already ran or is unknown. */
WEFT_API int weft_conn_cancel_timer(weft_conn *conn, uint64_t id);

/* ---- Datagrams ---- */

/* True for the connection object of a udp:// or unixgram:// listener. Each datagram is one
 * on_traffic call on it (weft_conn_peek sees the whole datagram; what is left unread is
 * dropped with it), weft_conn_get_peer_addr is its sender, and weft_conn_write answers the
 * sender with one datagram. Datagrams are received in batches, and the answers written
 * while a batch is handled leave together at its end (sendmmsg); one the kernel refuses is
 * dropped and counted in datagrams_dropped. Outside a batch (a timer, another connection)
 * a datagram is sent at once or not at all (WEFT_EAGAIN). Nothing is ever queued. It has no
 * ref, no on_open and no on_close. */
WEFT_API bool weft_conn_is_datagram(const weft_conn *conn);

/* Sends one datagram from a datagram connection to any address. Returns 0 or a negated
 * errno (WEFT_EAGAIN when the socket buffer is full: the datagram is dropped). */
WEFT_API int weft_conn_sendto(weft_conn *conn, const struct sockaddr *to, socklen_t tolen,
                              const void *data, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_CONN_H */
