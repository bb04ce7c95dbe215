/* weft — the engine: listeners, an acceptor and N event loops.
 *
 * Fill a weft_config (weft_config_init first), set handler.on_traffic, and call weft_run()
 * — or weft_engine_start() + weft_engine_wait() to embed the engine in a program that does
 * other things. Every callback for a connection runs on the thread of the loop that owns
 * it; no lock is taken on that path.
 *
 * libuv's rule holds throughout: if a call that takes a callback fails, that callback never
 * runs.
 */
#ifndef WEFT_ENGINE_H
#define WEFT_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weft/balancer.h"
#include "weft/codec.h"
#include "weft/conn.h"
#include "weft/error.h"
#include "weft/socket.h"
#include "weft/tls.h"
#include "weft/version.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum weft_log_level {
    WEFT_LOG_DEBUG = 0,
    WEFT_LOG_INFO,
    WEFT_LOG_WARN,
    WEFT_LOG_ERROR,
    WEFT_LOG_OFF
} weft_log_level;

/* msg is borrowed until the callback returns. Called on whichever thread logs (weft's own, or
 * a weft_engine_log caller's), concurrently. */
typedef void (*weft_log_cb)(void *ctx, weft_log_level level, const char *msg);

/* The callbacks. All optional but on_traffic. */
typedef struct weft_handler {
    /* Once, on the thread calling weft_engine_start, after every listener is bound and
     * every thread created, before any connection is accepted. Returning
     * WEFT_ACTION_SHUTDOWN stops the engine. */
    weft_action (*on_boot)(weft_engine *engine);
    /* A connection opened, on its loop's thread. May write (a greeting); WEFT_ACTION_CLOSE
     * closes it. */
    weft_action (*on_open)(weft_conn *conn);
    /* Bytes arrived (or weft_async_wake was called). Read them with weft_conn_peek /
     * weft_conn_discard / weft_conn_read, or frames with weft_conn_next_frame. Bytes left
     * unread stay buffered for the next call. When the peer ends its side with bytes still
     * buffered (requests held back at the high-water mark, say), it runs once more over
     * them (once reading resumes, if paused); what it leaves then is dropped and the
     * connection closes after its output. */
    weft_action (*on_traffic)(weft_conn *conn);
    /* The connection is gone. err is 0 for an orderly close (peer EOF, weft_conn_close,
     * weft_async_close, WEFT_ACTION_CLOSE) and a negative WEFT_E* code saying why otherwise
     * (WEFT_ESHUTDOWN when the engine stopped). conn is valid until this returns. On the
     * loop's thread, except for a dial or enroll no loop took before the engine stopped: then
     * on_close(conn, WEFT_ESHUTDOWN) runs in weft_engine_wait, on a stand-in carrying ctx. */
    void (*on_close)(weft_conn *conn, int err);
    /* Optional. conn's queued output has all been handed to the kernel: the queue that
     * writes (or the kernel's push-back) had filled is empty again. Lets a producer that
     * stopped at a mark (or paused another connection with weft_conn_pause_read) go on,
     * without polling weft_conn_get_pending_out. On the loop's thread. A write under 16 KiB
     * is queued until the loop iteration ends (see weft_conn_write), so this follows it once
     * it left; a write the socket took whole at once queued nothing and is not followed. */
    void (*on_drain)(weft_conn *conn);
    /* Optional. The codec found an error in conn's input (err: WEFT_ETOOLONG, WEFT_ECORRUPT,
     * ...; reason: static text), before the engine acts on it, on the loop's thread, inside
     * the weft_conn_next_frame call that met it. May write an error reply. WEFT_ACTION_NONE
     * skips the bad bytes and goes on where the codec can (a too-long line), and closes
     * otherwise; WEFT_ACTION_CLOSE closes gracefully (what it wrote goes first), with err
     * as on_close's reason. Without it, a skippable error is skipped unless the codec's
     * close_on_error is set, and every decode error is logged (rate limited). */
    weft_action (*on_decode_error)(weft_conn *conn, int err, const char *reason);
    /* Optional. conn is about to be closed for idleness (no bytes either way for its idle
     * timeout), on its loop's thread. May write a goodbye. WEFT_ACTION_NONE keeps it (its
     * idle clock starts again); WEFT_ACTION_CLOSE closes it gracefully, the goodbye first,
     * with on_close(conn, WEFT_EIDLE). Without it the connection is closed at once. */
    weft_action (*on_idle)(weft_conn *conn);
    /* Every tick_ms on every loop's thread (loop = its index). WEFT_ACTION_SHUTDOWN stops
     * the engine; other actions are ignored. */
    weft_action (*on_tick)(weft_engine *engine, unsigned loop);
    /* Once, after every connection was closed and every loop stopped, on the thread that
     * runs weft_engine_wait (or weft_run). */
    void (*on_shutdown)(weft_engine *engine);
} weft_handler;

#define WEFT_LISTEN_MAX 8

/* How the loops talk to the kernel (weft_config.backend). */
typedef enum weft_backend {
    /* On Linux io_uring where the running kernel has everything that backend uses (probed
     * once per process), epoll otherwise; on Windows IOCP. The environment variable
     * WEFT_BACKEND=epoll|io_uring|iocp overrides AUTO for the whole process. */
    WEFT_BACKEND_AUTO = 0,
    /* Readiness: epoll through libevent; each read and write is a system call. */
    WEFT_BACKEND_EPOLL,
    /* Completion: one io_uring per loop; receives land in buffers the kernel picks from a
     * per-loop pool (an idle connection holds none), accepts and receives are multishot and
     * the sends of an iteration are submitted together. Linux 6.0 or later; asked for
     * where it cannot run, weft_engine_start fails with WEFT_ENOBACKEND. */
    WEFT_BACKEND_IO_URING,
    /* Completion, on Windows: one I/O completion port per loop; accepts (AcceptEx) and sends
     * (WSASend) are overlapped, and an idle connection waits in a zero-byte receive that
     * holds no buffer. Elsewhere weft_engine_start fails with WEFT_ENOBACKEND, as epoll and
     * io_uring do on Windows. */
    WEFT_BACKEND_IOCP
} weft_backend;

typedef struct weft_config {
    /* Listen addresses as URLs: "tcp://127.0.0.1:9000", "tcp://[::1]:0" (port 0 picks
     * one; see weft_engine_get_listen_addr), "unix:///run/app.sock", and for datagrams
     * "udp://127.0.0.1:9000" (a SO_REUSEPORT socket per loop) and "unixgram:///path"
     * (served by loop 0); see weft_conn_is_datagram. Borrowed until weft_engine_start
     * returns. Unused entries are NULL; none at all makes a client-only engine. */
    const char *listen[WEFT_LISTEN_MAX];
    unsigned loops;           /* event loops (threads), at most 1024; 0 = one per CPU;
                                      default 0 */
    bool reuse_port;          /* a SO_REUSEPORT listener per loop for each tcp:// and
                                      tls:// URL, no acceptor hand-off (a TLS handshake runs
                                      on the loop that accepted): the kernel balances, and lb
                                      serves only Unix listeners; default false */
    bool tcp_nodelay;         /* on TCP connections, accepted, dialled or enrolled;
                                      default true */
    int tcp_keepalive_s;      /* keepalive idle seconds; 0 = off; default 0 */
    int backlog;              /* listen() backlog; <= 0 means 1024; default 1024 */
    size_t read_buffer_size;  /* per-loop read buffer, 1 KiB to 2 GiB; also the largest
                                      datagram taken; default 64 KiB */
    size_t write_high_water;  /* queued outbound bytes that pause reading the connection
                                      until it drains below half; at most write_hard_cap;
                                      default 1 MiB */
    size_t write_hard_cap;    /* queued outbound bytes that close the connection
                                      (WEFT_EOUTCAP); default 64 MiB */
    size_t max_inbound;       /* buffered unread inbound bytes that close the
                                      connection (WEFT_EINCAP); default 4 MiB */
    unsigned tick_ms;         /* on_tick period; 0 = no tick; default 0 */
    unsigned stop_timeout_ms; /* how long stop, and a graceful close, wait for queued
                                      output before closing anyway (WEFT_ETIMEDOUT); 0 = a
                                      graceful close waits for ever, a stop not at all;
                                      default 5000 */
    unsigned idle_timeout_ms; /* close a connection with no bytes either way for this
                                      long (WEFT_EIDLE); 0 = never; default 300000 */
    unsigned read_timeout_ms; /* close a connection whose unread bytes (a partial frame)
                                      wait this long without progress (WEFT_EREADTIMEOUT,
                                      slowloris); 0 = never; default 30000 */
    unsigned max_connections; /* open connections in the whole engine; past it new ones
                                      are accepted and closed at once (stats: rejected) and
                                      weft_engine_dial / weft_engine_enroll return
                                      WEFT_EMAXCONN; 0 = no limit; default 100000 */
    unsigned busy_poll_us;    /* after I/O a loop polls without sleeping for up to this
                                      long before it blocks, so a peer that answers within
                                      it does not pay a cross-CPU wake-up. Only while I/O
                                      comes closer together than this: a poll that finds
                                      nothing turns it off until it does again, so idle or
                                      trickling traffic costs (almost) nothing; 0 = off;
                                      default 0 */
    weft_log_cb log_cb;       /* NULL = write to stderr */
    void *log_ctx;            /* passed to log_cb; weft never frees it */
    weft_log_level log_level; /* default WEFT_LOG_WARN */
    weft_handler handler;
    bool stop_on_signals;    /* weft_run waits for SIGINT or SIGTERM and then stops the
                                engine (as weft_engine_wait_signals); default false */
    void *user_data;         /* weft_engine_get_user_data() */
    weft_codec_config codec; /* default WEFT_CODEC_NONE */
    weft_lb_config lb;       /* default round-robin */
    unsigned workers;        /* worker-pool threads, at most 1024; 0 = no pool; default 0 */
    size_t worker_queue;     /* worker-pool queue capacity (1 to 2^24); default 1024 */
    weft_backend backend;    /* default WEFT_BACKEND_AUTO */
    unsigned uring_buffers;  /* io_uring: receive buffers of read_buffer_size bytes in each
                                loop's pool, a power of two up to 32768; default 64. Where
                                the kernel fills buffers a piece at a time (Linux 6.12),
                                small messages share one; a connection holds a buffer only
                                while its bytes are handed to on_traffic. A loop with
                                datagram sockets has as many again for them, each with
                                room for a header and the sender's address */
    size_t uring_zc_min;     /* io_uring: a TCP send of at least this many bytes goes out
                                with IORING_OP_SEND_ZC (the kernel reads the output queue,
                                or a weft_async_write_zc buffer, in place; both are kept
                                until its notification says it let go); 0 = never; default
                                0, as on loopback it is slower (README, io_uring) */

    /* TLS (weft/tls.h). tls: the tls:// listeners' certificates and settings; tls_client:
     * what weft_engine_dial("tls://...") verifies and offers; tls_handshake_timeout_ms: a
     * handshake not done by then is closed (WEFT_ETIMEDOUT), 0 = no limit, default 10000. */
    weft_tls_config tls;
    weft_tls_config tls_client;
    unsigned tls_handshake_timeout_ms;
} weft_config;

/* Fills every field with its default. */
WEFT_API void weft_config_init(weft_config *cfg);

/* Starts an engine and returns it in *out (owned by the caller until weft_engine_wait):
 * listeners bound, threads running, on_boot called. cfg is copied; strings are borrowed
 * until this returns. Returns 0 or, with nothing started and no callback called: WEFT_EINVAL
 * (a NULL argument, no on_traffic, a setting out of range), WEFT_EBADADDR (a listen URL),
 * WEFT_ENOMEM, a user codec's or balancer's own error, or a negated errno from a socket or a
 * thread (e.g. WEFT_EADDRINUSE, WEFT_EACCES, WEFT_EAGAIN). Any thread. */
WEFT_API int weft_engine_start(const weft_config *cfg, weft_engine **out);

/* Asks the engine to stop: no more accepts, queued output flushed (up to stop_timeout_ms),
 * on_close for every connection, then on_shutdown. Returns 0 at once (WEFT_EINVAL for a NULL
 * engine); calling it again is harmless. Safe from any thread while the engine exists
 * (until weft_engine_wait returns), and async-signal-safe: it sets a flag and writes one
 * eventfd. */
WEFT_API int weft_engine_stop(weft_engine *engine);

/* Waits until the engine stopped (it does not stop it), joins its threads, shuts its
 * worker pool down and frees it. engine is invalid afterwards. Call once, from a thread that
 * is not one of the engine's. Returns 0 (WEFT_EINVAL for a NULL engine). */
WEFT_API int weft_engine_wait(weft_engine *engine);

/* Waits until SIGINT or SIGTERM arrives or the engine stops by itself, then stops it,
 * waits for it and frees it, as weft_engine_wait (engine is invalid afterwards). Blocks
 * both signals in the calling thread (engine threads never take them), so call it from
 * the program's main thread with no handler of its own for them. Returns the signal that
 * came, or 0 when the engine stopped by itself (WEFT_EINVAL for a NULL engine). */
WEFT_API int weft_engine_wait_signals(weft_engine *engine);

/* weft_engine_start + weft_engine_wait on the calling thread (weft_engine_wait_signals with
 * cfg.stop_on_signals): runs until stopped. Returns 0 or weft_engine_start's error. */
WEFT_API int weft_run(const weft_config *cfg);

/* Writes listen URL i's bound address ("tcp://127.0.0.1:40211"; i counts the non-NULL
 * cfg.listen entries) into buf (owned by the caller). Returns its length, WEFT_EINVAL (NULL
 * engine or buf, no listener i), or WEFT_ENOSPC (len too small). Any thread. */
WEFT_API int weft_engine_get_listen_addr(weft_engine *engine, size_t i, char *buf, size_t len);

/* Listener i's bound TCP or UDP port, or WEFT_EINVAL (no listener i, or a Unix one). Any
 * thread. */
WEFT_API int weft_engine_get_listen_port(weft_engine *engine, size_t i);

/* cfg.user_data (weft never frees it), and the number of loops (cfg.loops, or the CPU count
 * it stood for). Any thread. */
WEFT_API void *weft_engine_get_user_data(const weft_engine *engine);
WEFT_API unsigned weft_engine_get_loop_count(const weft_engine *engine);
/* The backend the engine's loops run on (never WEFT_BACKEND_AUTO). Any thread. */
WEFT_API weft_backend weft_engine_get_backend(const weft_engine *engine);
/* "epoll", "io_uring" or "auto". */
WEFT_API const char *weft_backend_name(weft_backend backend);
/* Whether backend can run in this process; if not and why is not NULL, *why says what is
 * missing (static text). The probe runs once per process. Any thread. */
WEFT_API bool weft_backend_is_supported(weft_backend backend, const char **why);

/* Logs through the engine's log callback (printf-style; fmt is borrowed until this returns;
 * below cfg.log_level nothing is written; longer than 511 bytes is cut). Any thread. */
WEFT_API void weft_engine_log(weft_engine *engine, weft_log_level level, const char *fmt, ...)
    WEFT_PRINTF(3, 4);

/* As weft_engine_log, for what a peer did (a protocol error, a bad request): at most
 * WEFT_PEER_LOG_PER_SEC lines a second per loop, the rest counted and summed up in one line
 * ("... and 4512 more in the last second"), so a hostile peer cannot flood the log. The
 * line says which connection. Quote peer bytes through weft_escape. Owning loop's thread. */
#define WEFT_PEER_LOG_PER_SEC 20
WEFT_API void weft_conn_log(weft_conn *conn, weft_log_level level, const char *fmt, ...)
    WEFT_PRINTF(3, 4);

/* Writes src[0..n) into dst (owned by the caller, cap bytes) as printable ASCII: bytes
 * outside 0x20..0x7e become \xHH (and \ becomes \\), so peer bytes quoted in a log line
 * or an error reply cannot forge lines or terminal escapes. Always NUL-terminates (cap > 0);
 * output that does not fit is cut before an escape, never inside one. Returns the length
 * written. Any thread. */
WEFT_API size_t weft_escape(char *dst, size_t cap, const void *src, size_t n);

/* ---- Statistics: readable from any thread while the engine runs. ---- */

typedef struct weft_loop_stats {
    uint64_t live;     /* connections open now, or handed to the loop and not yet open */
    uint64_t accepted; /* taken on (accepted, dialled or enrolled), in all */
    uint64_t closed;   /* closed, in all */
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t frames; /* frames decoded */
    uint64_t decode_errors;
    uint64_t backpressure_pauses;  /* times reading paused on the high-water mark */
    uint64_t buffers_out;          /* ring buffers held by connections now */
    uint64_t buffer_bytes;         /* their capacity */
    uint64_t buffers_cached_bytes; /* kept in the loop's buffer pool */
    uint64_t datagrams_in;         /* udp:// and unixgram:// datagrams received */
    uint64_t datagrams_out;        /* ... and sent */
    uint64_t datagrams_dropped;    /* too big for the read buffer, or refused by the kernel */
    uint64_t wakeups;              /* cross-thread wakeups of the loop (one per burst) */
    uint64_t tasks;                /* cross-thread tasks run (hand-offs, async calls) */
    uint64_t sleeps;               /* blocking waits for events (busy_poll_us spares some) */
    uint64_t buffer_resizes;       /* inbound buffers grown or shrunk with their bytes kept */
    uint64_t buffer_copied_bytes;  /* bytes copied to keep them (large ones grow in place) */
    /* io_uring only (0 on epoll): */
    uint64_t submissions;         /* operations handed to the kernel */
    uint64_t completions;         /* completions collected */
    uint64_t buffer_exhaustions;  /* receives the kernel stopped for want of a free buffer
                                     (re-armed once buffers came back) */
    uint64_t zerocopy_sends;      /* sends submitted as IORING_OP_SEND_ZC (uring_zc_min) */
    uint64_t zerocopy_copied;     /* connections that went back to copying: the kernel said
                                     it copied their zero-copy send anyway (loopback) */
    uint64_t zerocopy_held_bytes; /* sent bytes kept now until a zero-copy send's
                                     notification; they count towards write_high_water
                                     and write_hard_cap */
} weft_loop_stats;

typedef struct weft_stats {
    unsigned nloops;
    weft_loop_stats total;
    uint64_t rejected;      /* accepted then closed at once (max_connections, no memory) */
    uint64_t accept_errors; /* accept() failures: EMFILE and such (they pause the listener),
                               and peers gone before they were accepted */
} weft_stats;

/* Fills out with totals and, when per_loop is not NULL, per_loop[0..nloops) with each
 * loop's figures (both owned by the caller, who sizes per_loop with
 * weft_engine_get_loop_count). Returns 0 or WEFT_EINVAL (engine or out NULL). Any thread. */
WEFT_API int weft_engine_get_stats(weft_engine *engine, weft_stats *out, weft_loop_stats *per_loop);

/* ---- Outbound connections and datagrams ---- */

/* Dials url (tcp://host:port, unix:///path; borrowed until this returns) from the engine.
 * The connection joins loop (or, when loop < 0, the next loop round-robin) and is served like
 * an accepted one, with ctx as its context (weft_conn_get_context): on_open once connected,
 * or on_close(conn, err) if the connect fails, takes longer than timeout_ms (0 = 10 s;
 * WEFT_ETIMEDOUT) or the engine stops first (WEFT_ESHUTDOWN) — then on_open never runs.
 * Host names are resolved on the calling thread (blocking). Returns 0, or when it fails at
 * once (no callback runs): WEFT_EINVAL (NULL engine or url, loop past the last one),
 * WEFT_ESHUTDOWN, WEFT_EMAXCONN (the engine is at max_connections), WEFT_EBADADDR (malformed,
 * unresolvable or a datagram URL), WEFT_ENOMEM, or the socket's own error (a negated errno
 * such as WEFT_EMFILE; for a Unix path WEFT_ENOENT, WEFT_ECONNREFUSED, or WEFT_EAGAIN when
 * its backlog is full). Any thread; an engine without listeners is a client-only engine. */
WEFT_API int weft_engine_dial(weft_engine *engine, const char *url, int loop, unsigned timeout_ms,
                              void *ctx);

/* Adopts a connected stream socket made elsewhere: on success ownership of fd passes to
 * weft, which makes it non-blocking and serves it on loop (< 0: round-robin) with ctx as its
 * context; on_open follows (or on_close(conn, WEFT_ESHUTDOWN) alone if the engine stops
 * first). Returns 0, or with fd left the caller's and unchanged: WEFT_EINVAL (NULL engine,
 * fd < 0, not a stream socket, loop past the last one), WEFT_ESHUTDOWN, WEFT_EMAXCONN (the
 * engine is at max_connections), WEFT_ENOMEM, or a negated errno (WEFT_EBADF, WEFT_ENOTSOCK).
 * Any thread. */
WEFT_API int weft_engine_enroll(weft_engine *engine, int fd, int loop, void *ctx);

/* ---- Across threads, by ref: safe from any thread, including the loops. ---- */

/* Frees a zero-copy buffer once weft is done with it. */
typedef void (*weft_free_cb)(void *data, void *ctx);

/* Copies data (borrowed until this returns) and queues it for ref's connection. Returns 0
 * (queued: if the connection closes before its loop runs the write, it is dropped),
 * WEFT_EINVAL (NULL engine, or data NULL with len > 0), WEFT_ESTALE (closed), WEFT_EOUTCAP
 * (it would pass write_hard_cap: the connection is then closed with on_close(conn,
 * WEFT_EOUTCAP), as weft_conn_write closes it; a producer that wants to slow down before
 * that asks weft_async_get_pending_out), WEFT_ESHUTDOWN (weft_engine_stop was called) or
 * WEFT_ENOMEM. Writes, calls, wakes and closes to one connection run in the order of the
 * calls, from whichever thread; a weft_conn_write made on the loop goes out in its own
 * order, and so may overtake an async write still in the loop's queue. */
WEFT_API int weft_async_write(weft_engine *engine, weft_conn_ref ref, const void *data, size_t len);

/* As weft_async_write without the copy, and also WEFT_EINVAL for a NULL free_cb. On success
 * ownership of data passes to weft, which calls free_cb(data, free_ctx) exactly once (on the
 * loop thread, or in weft_engine_wait for a write still queued at stop) once it is done with
 * the bytes: sent, copied, or dropped with the connection. Large writes wait in the
 * connection's queue without a copy. On failure data stays the caller's and free_cb is never
 * called. */
WEFT_API int weft_async_write_zc(weft_engine *engine, weft_conn_ref ref, void *data, size_t len,
                                 weft_free_cb free_cb, void *free_ctx);

/* As weft_async_write for several buffers (copied, borrowed until this returns) sent as
 * one; WEFT_EINVAL also for iovcnt < 0 or a NULL iov. */
WEFT_API int weft_async_writev(weft_engine *engine, weft_conn_ref ref, const struct iovec *iov,
                               int iovcnt);

/* As weft_async_write, but frames data through the engine's codec encoder first, as
 * weft_conn_write_frame does (a line gets its "\n" or "\r\n", a length-field frame its
 * length): encoded on the calling thread, then queued as one write, so the frame is never
 * split by another write. Also WEFT_ENOCODEC without a codec, or the encoder's error (e.g.
 * WEFT_EMSGSIZE, WEFT_EINVAL): nothing is queued and the connection stays open. Any
 * thread. */
WEFT_API int weft_async_write_frame(weft_engine *engine, weft_conn_ref ref, const void *data,
                                    size_t len);

/* Closes ref's connection gracefully (as weft_conn_close) after what was queued before this
 * call is sent. Returns 0, WEFT_EINVAL (NULL engine), WEFT_ESTALE, WEFT_ESHUTDOWN or
 * WEFT_ENOMEM. */
WEFT_API int weft_async_close(weft_engine *engine, weft_conn_ref ref);

/* Schedules on_traffic for ref's connection (even with no new bytes; not once it is
 * closing). Returns 0, WEFT_EINVAL (NULL engine), WEFT_ESTALE, WEFT_ESHUTDOWN or
 * WEFT_ENOMEM. */
WEFT_API int weft_async_wake(weft_engine *engine, weft_conn_ref ref);

/* Closes ref's connection now, dropping what is queued (as weft_conn_abort):
 * on_close(conn, WEFT_ECANCELED) follows on its loop. Returns as weft_async_close. */
WEFT_API int weft_async_abort(weft_engine *engine, weft_conn_ref ref);

/* Runs on a connection's loop: conn is the connection, valid until this returns; or NULL
 * when it closed (or the engine stopped) before the call could run, so that arg can be
 * released. Owning loop's thread (or, after a stop, the thread in weft_engine_wait). */
typedef void (*weft_conn_call_cb)(weft_conn *conn, void *arg);

/* Runs fn(conn, arg) on the loop that owns ref, in order with the async writes, wakes and
 * closes made to ref before and after it (netty's eventLoop().execute, gnet's Wake). Returns
 * 0 (fn runs exactly once), or WEFT_EINVAL (NULL engine or fn), WEFT_ESTALE, WEFT_ESHUTDOWN
 * or WEFT_ENOMEM: then fn never runs and arg stays the caller's. Any thread. */
WEFT_API int weft_async_call(weft_engine *engine, weft_conn_ref ref, weft_conn_call_cb fn,
                             void *arg);

/* Runs on a loop's thread for weft_loop_call; status is 0, or WEFT_ESHUTDOWN when the loop
 * had stopped first and this runs in weft_engine_wait instead, only to release arg. */
typedef void (*weft_loop_call_cb)(weft_engine *engine, unsigned loop, void *arg, int status);

/* Runs fn(engine, loop, arg, 0) on loop's thread, for work that belongs to a loop and not to
 * one connection (a loop-local cache, a fan-out over the loop's own connections). Returns 0
 * (fn runs exactly once), WEFT_EINVAL (NULL engine or fn, loop out of range),
 * WEFT_ESHUTDOWN or WEFT_ENOMEM: then fn never runs. Any thread, the loop's own included
 * (then fn runs later, in the loop's next pass over its queue). */
WEFT_API int weft_loop_call(weft_engine *engine, unsigned loop, weft_loop_call_cb fn, void *arg);

/* How many bytes wait to go out to ref's connection: its queue, and async writes not yet
 * run, as the hard cap counts them (so a publisher can drop a slow consumer, or skip it,
 * before the cap). Sets *bytes; returns 0, WEFT_EINVAL or WEFT_ESTALE. Any thread; the
 * figure is a moment's, exact only on the owning loop. */
WEFT_API int weft_async_get_pending_out(weft_engine *engine, weft_conn_ref ref, size_t *bytes);

/* The engine's worker pool (cfg.workers > 0), or NULL. Any thread. Borrowed until
 * weft_engine_wait, which shuts it down (WEFT_POOL_CANCEL): never weft_pool_shutdown it. */
struct weft_pool;
WEFT_API struct weft_pool *weft_engine_get_pool(weft_engine *engine);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_ENGINE_H */
