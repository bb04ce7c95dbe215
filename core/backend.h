/* weft — the I/O backend seam: what a loop and its connections need from an I/O model.
 *
 * A backend is how one loop thread talks to the kernel. Two models fit behind this table:
 * readiness (epoll through libevent: "this socket can be read", then the backend reads
 * into the buffer the connection layer names) and completion (io_uring, IOCP: "these
 * bytes arrived, in this buffer the kernel picked", "this send finished"). The connection
 * layer is written only against the calls and upcalls below; it never asks which backend
 * runs. Each backend is one file that fills in a weft__backend and is listed once, in
 * engine.c, where weft_engine_start picks one for every loop of the engine.
 *
 * Rules every backend keeps:
 * - Everything runs on the loop's thread; upcalls are made only from inside poll.
 * - A span handed to weft__conn_recv_done is the backend's until the upcall returns; the
 *   connection layer copies what it keeps.
 * - A completion backend never reuses a buffer the kernel may still write into, and never
 *   lets a connection's slot be reused while an operation on it is in flight.
 * - Timers are not the backend's: the loop keeps its own heap (timer_heap.h) and tells
 *   poll how long it may wait.
 */
#ifndef WEFT_BACKEND_H
#define WEFT_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "platform.h" /* weft__sock; weft/socket.h */

/* Room in every connection (at most; each backend says how much it uses) and listener for
 * the backend's own state (libevent's struct event and the interest bits it registered), so
 * no backend allocates per connection. */
#define WEFT__BE_CONN_BYTES     128
#define WEFT__BE_LISTENER_BYTES 136

struct weft__loop;
struct weft__listener;
struct weft_conn;
struct weft__outq;

typedef struct weft__backend {
    const char *name;
    /* Bytes of a connection's be[] this backend uses (at most WEFT__BE_CONN_BYTES): a slot
     * is struct weft_conn and this much more. */
    size_t conn_bytes;
    /* Completion model: a send is submitted and finishes later, so the bytes it names must
     * stay put until weft__conn_sent; the connection layer then sends only from its own
     * output queue. Readiness model (false): conn_send is done with the memory when it
     * returns. */
    bool completion;

    /* Makes the loop's instance (loop->be_state) and starts watching the loop's wakeup
     * (its queue's eventfd). Returns 0 or a negative WEFT_E* code. */
    int (*loop_init)(struct weft__loop *loop);
    /* Frees the instance; every connection and listener was closed or stopped before. */
    void (*loop_destroy)(struct weft__loop *loop);
    /* Waits at most timeout_ms (-1: until something happens; 0: not at all) and delivers
     * what happened through the upcalls. Returns how many events it delivered, or a
     * negative WEFT_E* code when the loop cannot go on. */
    int (*poll)(struct weft__loop *loop, int timeout_ms);

    /* c->fd joins the loop; called once, before any conn_want. 0 or a WEFT_E* code. */
    int (*conn_open)(struct weft_conn *c);
    /* What c wants now: bytes (weft__conn_recv_done) and, in the readiness model, to hear
     * when its socket takes more output or a connect finished (weft__conn_writable).
     * Cheap when nothing changes: called after every flush. */
    void (*conn_want)(struct weft_conn *c, bool read, bool write);
    /* Sends iov[0..iovcnt) in order. Readiness: returns the bytes the kernel took now (maybe
     * fewer than asked, 0 for none), or a negated errno. Completion: submits them and
     * returns 0; weft__conn_sent follows. */
    ssize_t (*conn_send)(struct weft_conn *c, const struct iovec *iov, int iovcnt);
    /* c closes: no upcall for it follows but weft__conn_released; its fd is closed by the
     * caller right after. Returns true when operations on c are still in flight (a
     * completion backend cancels them): c's slot and output queue then stay put until the
     * backend calls weft__conn_released. */
    bool (*conn_close)(struct weft_conn *c);
    /* Optional (completion): the bytes of c's output that sends finished with but the
     * backend still holds (zero-copy sends before their notification, what
     * weft__conn_sent_held counted). Asked only while the loop's stats.zc_held is not 0. */
    size_t (*conn_held)(const struct weft_conn *c);
    /* Optional: closes c's fd itself, right after conn_close (a completion backend queues
     * the close behind what conn_close queued, and it goes with the loop's next submission:
     * the number stays taken until then, so nothing queued can meet another socket).
     * Returns false when it cannot: the caller closes the fd. */
    bool (*conn_close_fd)(struct weft_conn *c);

    /* Starts / stops accepting on a stream listener (weft__listener_accepted for every
     * connection) or receiving on a datagram socket (weft__dgram_ready), on this loop. */
    int (*listener_start)(struct weft__loop *loop, struct weft__listener *l);
    void (*listener_stop)(struct weft__loop *loop, struct weft__listener *l);

    /* Optional: a backend that connects a dialled socket itself (IOCP's ConnectEx). The
     * socket was made but not connected; the backend connects it to to and, once that
     * finished, calls weft__conn_writable (connected: SO_ERROR then says 0) or closes c with
     * the connect's error. 0 or a negated errno (c is then closed by the caller). Without it,
     * the control side starts a non-blocking connect() and conn_want(write) waits for it. */
    int (*conn_connect)(struct weft_conn *c, const struct sockaddr *to, socklen_t len);
    /* Optional. Runs on the loop's own thread before it runs its loop (weft_engine_start
     * waits for it, and fails with what it returns: 0 or a negative WEFT_E* code). */
    int (*thread_init)(struct weft__loop *loop);
    /* Optional. The loop's thread leaves its loop for good (every connection closed): a
     * completion backend waits here for every operation still in flight, so that nothing
     * the kernel may still touch is freed after. */
    void (*loop_quit)(struct weft__loop *loop);
} weft__backend;

/* The backends, one file each. */
extern const weft__backend weft__backend_event; /* backend_event.c: epoll through libevent */
extern const weft__backend weft__backend_uring; /* backend_uring.c: io_uring */
extern const weft__backend weft__backend_iocp;  /* backend_iocp.c: I/O completion ports */
/* Whether io_uring has everything backend_uring.c uses here (probed once; any thread); if
 * not, *why says what is missing. */
bool weft__uring_supported(const char **why);

/* ---- Upcalls: the core's side of the seam, called by a backend from poll. ---- */

/* Where the next bytes for c should land, and how many fit: the loop's read buffer, or the
 * free space behind a partial frame in c's inbound buffer (so the frame ends up in one
 * span without a copy). NULL when c must not read now (it was closed, at max_inbound). */
uint8_t *weft__conn_recv_buf(struct weft_conn *c, size_t *room);
/* n > 0: bytes arrived at data (where weft__conn_recv_buf pointed, or a span the backend
 * owns until this returns); 0: the peer ended its side; < 0: a negated errno. A completion
 * backend may deliver bytes that were under way when c stopped wanting them: they are kept
 * (or dropped, if c is closing) and an end of input is left for reading to find again. */
void weft__conn_recv_done(struct weft_conn *c, const uint8_t *data, ssize_t n);
/* Readiness: c's socket takes more output now, or its connect finished. */
void weft__conn_writable(struct weft_conn *c);
/* Completion: the send that conn_send submitted for c finished: n bytes went (n >= 0), or
 * it failed with a negated errno. */
void weft__conn_sent(struct weft_conn *c, ssize_t n);
/* Completion: as weft__conn_sent, for a send whose bytes the kernel may go on reading after
 * it finished (a zero-copy send, until its notification), or one that finished while such a
 * send is still held: the output queue's chunks the n bytes emptied move to held (kept by
 * the backend) instead of going back to the pool. The bytes that moved are added to
 * *held_bytes (c's count, which conn_held reports) before the output limits are looked at:
 * held bytes count towards the high-water mark and the hard cap as queued ones do. */
void weft__conn_sent_held(struct weft_conn *c, ssize_t n, struct weft__outq *held,
                          uint32_t *held_bytes);
/* Completion: the kernel let go of what weft__conn_sent_held moved to held, bytes of it,
 * already taken off c's count: the chunks go back to the loop's pool and, as when queued
 * bytes leave, reading may resume and on_drain may run (c may be closed: its slot is still
 * held by the backend then, and only the memory goes back). */
void weft__conn_held_release(struct weft_conn *c, struct weft__outq *held, size_t bytes);
/* An accept on l gave fd (non-blocking, not inherited by child processes) from peer, or,
 * when err < 0, failed with that negated errno (fd is then WEFT__SOCK_NONE). Returns false
 * when the backend must stop this batch. */
bool weft__listener_accepted(struct weft__listener *l, weft__sock fd, int err,
                             const struct sockaddr *peer, socklen_t plen);
/* Readiness: datagrams wait on the datagram socket l. */
void weft__dgram_ready(struct weft__listener *l);
/* Completion: one datagram arrived on l from `from` (fromlen bytes; 0 when the sender has
 * no address): n bytes at data, a span the backend owns until this returns. truncated: it
 * did not fit the read buffer (n is its full length, as the kernel reports it) and is
 * dropped. The replies it makes are gathered until weft__dgram_recv_end. */
void weft__dgram_recv(struct weft__listener *l, const uint8_t *data, size_t n, bool truncated,
                      const struct sockaddr *from, socklen_t fromlen);
/* Completion: the datagrams this poll delivered were all handed over: the replies they
 * gathered leave now, and the iteration's end work runs (the batch is one dispatch, from
 * the first weft__dgram_recv on: other upcalls made meanwhile join it). Cheap when there
 * were none. */
void weft__dgram_recv_end(struct weft__loop *loop);
/* The loop's wakeup fired: its queue has tasks (or the acceptor has a stop to look at). */
void weft__loop_woken(struct weft__loop *loop);
/* Completion: the last operation on the closed connection c finished; its slot and what its
 * output queue held can be reused. */
void weft__conn_released(struct weft_conn *c);

#endif /* WEFT_BACKEND_H */
