/* weft — what the core's files share: the engine, its loops and their connections.
 *
 * The core has three layers; a file calls only into its own layer and the ones below it:
 *
 *   control side (any thread)  engine.c acceptor.c listen.c dial.c async.c group.c
 *   per-thread loop            loop.c (the iteration, and what runs before it sleeps)
 *                              conn.c conn_read.c conn_write.c conn_close.c
 *                              wheel.c conn_timer.c accept.c dgram.c tls.c (tls.h: TLS
 *                              between the backend and the codec, for tls:// connections)
 *                              send_cap.c (send_cap.h: a test-only cap on a send's bytes)
 *                              backend.h, and one file per I/O backend: backend_event.c,
 *                              backend_uring.c (with backend_uring_probe.c and
 *                              backend_uring_dgram.c), backend_iocp.c (with dgram_iocp.c;
 *                              Windows)
 *   leaf helpers               log.c queue.c ring.c bufpool.c timer_heap.c error.c
 *                              platform_posix.c or platform_win.c (platform.h: pages, clocks)
 *
 * Only the loop / connection / wheel group calls each other in a circle (a connection
 * closes on a timer, a timer is re-filed by a read). Where the loop layer must call back
 * up (a hand-off, a finished connect, a dial to adopt, a group member closing) it goes
 * through a function pointer the control side set, as libuv's handles call their callbacks. The control side reaches
 * a loop only
 * through its queue, its statistics (atomics) and a slot's generation (atomic), which is
 * how a weft_conn_ref is checked without a lock. A loop thread owns its backend instance,
 * its read buffer, its buffer pool, its timers and every connection in its slot table.
 * The acceptor thread is a loop too, of its own kind: it owns the hand-off listeners and
 * no connections.
 */
#ifndef WEFT_INTERNAL_H
#define WEFT_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "weft/balancer.h"
#include "weft/codec.h"
#include "weft/conn.h"
#include "weft/engine.h"
#include "weft/pool.h"
#include "backend.h"
#include "bufpool.h"
#include "outq.h"
#include "platform.h"
#include "queue.h"
#include "ring.h"
#include "timer_heap.h"

/* Connection flags (loop thread only). */
enum {
    CONN_READING = 1u << 0,       /* reading is wanted (weft_conn_pause_read clears it) */
    CONN_SENDING = 1u << 1,       /* completion backends: a send of the queue is in flight */
    CONN_STAGED = 1u << 2,        /* small writes wait in the loop's staging area (stage_head) */
    CONN_PAUSED = 1u << 3,        /* reading paused by the high-water mark */
    CONN_CLOSING = 1u << 4,       /* graceful close: flush, then close */
    CONN_CLOSE_PENDING = 1u << 5, /* close requested inside a callback */
    CONN_CLOSED = 1u << 6,
    CONN_CORKED = 1u << 7, /* on the loop's corked list: flush before the loop sleeps */
    CONN_PEER_EOF = 1u << 8,
    CONN_LINGER = 1u << 9,         /* closing, output all with the kernel and FIN sent:
                                      dropping input until the peer took every byte */
    CONN_LIVE = 1u << 10,          /* the slot holds an open connection */
    CONN_DECODE_FAILED = 1u << 11, /* a fatal decode error: close once on_traffic returns */
    CONN_PARTIAL = 1u << 12,       /* unread bytes wait since since_ms (read timeout) */
    CONN_HAS_TIMERS = 1u << 13,    /* user timers (weft_conn_after) may be pending */
    CONN_DGRAM = 1u << 14,         /* a datagram socket: each on_traffic is one datagram */
    CONN_CONNECTING = 1u << 15     /* dialled, connect() not finished (active_ms: deadline) */
};

typedef struct weft__loop weft__loop;
struct weft__group_slots;

/* The struct that holds member m at p (timer nodes find their owners this way). */
#define WEFT__CONTAINER_OF(p, type, m) ((type *)(void *)((char *)(p)-offsetof(type, m)))

struct weft_conn {
    weft__loop *loop;
    void *ctx;
    weft__ring in;
    weft__outq out;
    weft_codec_state cstate;
    weft__sock fd;
    _Atomic uint32_t gen;           /* odd while open, even while the slot is free */
    _Atomic uint32_t async_pending; /* bytes in async writes queued for this connection */
    uint32_t slot;
    /* Links by slot number. tw_next/tw_prev chain the timer wheel (wheel.c; a bucket's
     * first entry has WEFT__TW_HEAD | bucket as its prev). A connection leaves the wheel
     * when its close is requested, so tw_next then chains the pending-close list, and
     * later the free list. Activity only stamps active_ms; the wheel finds the real
     * deadline when it visits the bucket. */
    uint32_t tw_prev;
    uint32_t tw_next;
    uint32_t active_ms; /* last read or write progress (loop clock) */
    uint32_t since_ms;  /* CONN_PARTIAL: unread bytes wait since; CONN_CLOSING: closing since */
    uint32_t cork_idx;  /* CONN_CORKED: its entry in the loop's corked list (conn_write.c) */
    uint16_t flags;
    int16_t close_err; /* reason for a pending close (every WEFT_E* code fits) */
    /* The backend's own per-connection state (backend.h): opaque here, and only as long
     * as the loop's backend needs (its conn_bytes), so a slot is this struct plus that. */
    _Alignas(8) unsigned char be[];
};

#define WEFT__CHUNK_SHIFT       10
#define WEFT__CHUNK_SIZE        (1u << WEFT__CHUNK_SHIFT)
#define WEFT__CHUNK_MAX         4096u /* 4 Mi connections per loop */
#define WEFT__NO_SLOT           UINT32_MAX
#define WEFT__TW_SLOTS          512u
#define WEFT__TW_TICK_MS        100u
#define WEFT__TW_HEAD           0x80000000u
#define WEFT__TIMEOUT_DEFAULT   0xffffu /* a connection's timeout: the engine's */
#define WEFT__TIMEOUT_MAX_TICKS 0xfffeu
#define WEFT__TIMEOUTS_DEFAULT  0xffffffffu /* both of a connection's: the engine's */

typedef struct weft__loop_stats {
    _Atomic uint64_t live; /* handed off (or accepted here) and not yet closed */
    _Atomic uint64_t accepted;
    _Atomic uint64_t closed;
    _Atomic uint64_t bytes_in;
    _Atomic uint64_t bytes_out;
    _Atomic uint64_t frames;
    _Atomic uint64_t decode_errors;
    _Atomic uint64_t pauses;
    _Atomic uint64_t buffers_out;
    _Atomic uint64_t buffer_bytes;
    _Atomic uint64_t cached_bytes;
    _Atomic uint64_t resizes;
    _Atomic uint64_t copied_bytes;
    _Atomic uint64_t dgrams_in;
    _Atomic uint64_t dgrams_out;
    _Atomic uint64_t dgrams_dropped;
    _Atomic uint64_t wakeups;
    _Atomic uint64_t tasks;
    _Atomic uint64_t sleeps;
    _Atomic uint64_t submissions; /* io_uring */
    _Atomic uint64_t completions;
    _Atomic uint64_t exhaustions;
    _Atomic uint64_t zc_sends;
    _Atomic uint64_t zc_copied;
    _Atomic uint64_t zc_held;      /* also: 0 means no connection of the loop holds any */
    _Atomic uint64_t capped_sends; /* sends the test-only cap cut short (send_cap.h) */
} weft__loop_stats;

/* Single-writer counters: a relaxed load and store, no locked instruction. */
#define WEFT__STAT_ADD(field, n)                                                                \
    atomic_store_explicit(&(field),                                                             \
                          atomic_load_explicit(&(field), memory_order_relaxed) + (uint64_t)(n), \
                          memory_order_relaxed)

typedef struct weft__listener {
    /* The backend's own per-listener state (backend.h): opaque here. */
    _Alignas(8) unsigned char be[WEFT__BE_LISTENER_BYTES];
    weft__sock fd;
    int family;       /* AF_INET, AF_INET6, AF_UNIX */
    int type;         /* SOCK_STREAM (accepting) or SOCK_DGRAM (datagrams, through dgram) */
    weft_conn *dgram; /* SOCK_DGRAM: the socket as a connection of its owner loop */
    char url[160];
    char unix_path[108];
    bool active;             /* the backend is accepting (or receiving) on it */
    weft__timer_node resume; /* re-arms accepting after EMFILE and friends */
    unsigned backoff_ms;
    weft__loop *owner; /* reuse_port and single loop: the loop that accepts on it; NULL: the
                          acceptor, which hands connections off */
    struct weft_engine *engine;
    struct weft__tls_server *tls; /* tls://: its certificates (tls.c); NULL: plain */
} weft__listener;

struct weft__loop {
    struct weft_engine *engine;
    unsigned index; /* the acceptor's is the loop count */
    pthread_t thread;
    bool thread_started;
    const weft__backend *be;
    void *be_state; /* the backend's instance for this thread */
    weft__queue queue;
    /* What a wake-up does: run the inbox (loops) or look at the stop flag (the acceptor). */
    void (*woken)(weft__loop *loop);
    weft__timer_heap timers;
    weft__timer_node tick_timer;  /* on_tick */
    weft__timer_node stop_timer;  /* stop_timeout_ms after a stop began */
    weft__timer_node wheel_timer; /* the timeout wheel's tick */
    uint64_t mono0_ns;            /* CLOCK_MONOTONIC at loop start: the timers' zero */
    bool quit;                    /* leave the loop once this iteration ends */
    uint8_t *rbuf;
    size_t rbuf_size;
    size_t slot_size; /* bytes of one connection slot: the struct and its backend's state */
    weft__bufpool *bufpool;

    /* Slot table: chunks never move or shrink while the engine lives, so another thread
     * may read a slot's generation at any time. */
    _Atomic(weft_conn *) chunks[WEFT__CHUNK_MAX];
    /* weft_conn_set_timeouts: per chunk of slots, made when one of its connections first
     * sets timeouts of its own (few do, so a connection carries no bytes for them): idle
     * ticks << 16 | read ticks, in wheel ticks of 100 ms, WEFT__TIMEOUT_DEFAULT each for
     * the engine's. */
    uint32_t *timeouts[WEFT__CHUNK_MAX];
    uint32_t nchunks;
    uint32_t free_head;
    uint32_t high_slot; /* slots below this were handed out at least once */
    uint32_t nconns;    /* open connections (loop thread) */
    /* Which groups each slot's connection is in (group.c's, made by the first weft_group_add
     * to a connection of this loop and never moved until the engine is freed): NULL while
     * none ever was, so a program without groups pays nothing per connection for them. */
    _Atomic(struct weft__group_slots *) groups;

    /* Timer wheel for idle, read and close timeouts: one visit per connection per timeout
     * period, not a scan of every connection per tick. */
    uint32_t now_ms;     /* loop clock, read as each callback starts (wraps: deltas only) */
    uint64_t now64_ms;   /* the same, not wrapping */
    uint64_t clock0_ns;  /* CLOCK_MONOTONIC_COARSE at loop start */
    uint64_t wheel_tick; /* last tick processed */
    uint32_t wheel[WEFT__TW_SLOTS];

    /* Dispatch state: the connection whose on_traffic runs and its inbound view. */
    unsigned depth;   /* callbacks running, + 1 for the iteration: writes cork while > 0 */
    uint64_t nruns;   /* callbacks run, so a busy poll can tell a pass found work */
    uint64_t nio;     /* socket and inbox events: what makes a busy poll worth it */
    uint64_t poll_ns; /* busy_poll_us in ns; 0 = off */
    uint64_t woke_ns; /* when the loop last woke; 0 until a callback after the sleep reads it
                         (only while busy polling is on) */
    weft_conn *cur;
    const uint8_t *view;
    size_t view_len;
    size_t view_used;
    size_t view_need; /* bytes the codec still wants beyond the view, if it said */
    bool view_in_ring;

    /* Work deferred to the end of the iteration (weft__loop_before_sleep): connections with
     * corked output, in a growable array (a connection that cannot be remembered there is
     * flushed through its writable event instead), and connections to close, chained
     * through their slots' tw_next, which never allocates. */
    struct weft__corked *corked;
    uint32_t ncorked, corked_cap;
    uint32_t pending_head;
    /* The staging area for corked small writes (conn_write.c): their bytes, and runs of them
     * chained per connection. Per loop, not per connection, and of a fixed size: a burst of
     * every connection writing at once costs one area, spilled whenever it fills. */
    uint8_t *stage;
    uint32_t stage_len;
    struct weft__staged *recs;
    uint32_t nrecs;

    weft__listener **listeners; /* the listeners this loop accepts (or receives) on */
    size_t nlisteners;

    bool stopping;
    weft__loop_stats stats;
    /* The most bytes one send may carry, for tests only (send_cap.h); 0: no cap. */
    size_t send_cap;

    /* User timers (weft_conn_after) of this loop's connections. */
    struct weft__timer *timers_user;
    uint64_t next_timer_id;

    /* Receive batch for datagram sockets (dgram.c), allocated only if the loop has one. */
    struct weft__dgram_batch *dgram_batch;
    /* The sender of the datagram being dispatched (dgram.c). */
    struct sockaddr_storage dgram_peer;
    socklen_t dgram_peer_len;

    /* Peer log lines in the current second (log.c). */
    uint64_t peer_log_sec;
    uint32_t peer_log_lines;
    uint64_t peer_log_dropped;

    /* The last decode error on this loop, for weft_conn_get_decode_error. */
    const char *err_reason;
    uint32_t err_slot;
    uint32_t err_gen;

    /* TLS state of this loop's TLS connections, by slot (tls.c), made by the first one: NULL
     * while there is none, so plain connections pay one test for TLS and no memory. */
    struct weft__tls_loop *tls;
};

struct weft_engine {
    weft_config cfg;
    weft_codec codec;
    bool has_codec;
    const weft__backend *be;
    weft_backend backend; /* which one be is */
    unsigned nloops;
    weft__loop *loops;
    weft__loop acceptor; /* the acceptor thread's loop: hand-off listeners, the stop signal */
    weft__listener *listeners;
    size_t nlisteners;
    weft_balancer *balancer;
    weft_pool *pool;
    /* How the loop layer calls back into the control side, so that its arrows point one
     * way: a hand-off listener's connection goes to a loop (acceptor.c), a dialled socket
     * finished connecting (dial.c). */
    void (*hand_off)(weft_engine *e, weft__listener *l, weft__sock fd, const struct sockaddr *peer,
                     socklen_t plen);
    void (*connect_done)(weft_conn *c);
    /* A connection of a loop with a group table finishes: it leaves its groups, if any
     * (group.c; set with the first group, under group.c's lock, and read only once the
     * loop's table was seen). */
    void (*group_leave)(weft_conn *c);
    bool acceptor_started;
    _Atomic int stop_requested;
    _Atomic uint64_t rejected;
    _Atomic uint64_t accept_errors;
    _Atomic unsigned loops_running;
    _Atomic unsigned dial_next; /* round-robin for dial/enroll without a loop */
    pthread_mutex_t gate_mu;    /* the start gate (engine.c) */
    pthread_cond_t gate_cv;
    int gate;
    unsigned threads_ready;  /* engine threads past their backend's thread_init */
    int thread_err;          /* the first thread_init that failed */
    uint64_t *live_snapshot; /* acceptor scratch for balancers that want live counts */
    /* TLS (tls.c): the listeners' certificates, the dials' context and settings. */
    struct weft__tls_engine *tls;
    size_t send_cap; /* WEFT_TEST_SEND_CAP, read at start (send_cap.h); 0: none */
};

/* ==== leaf helpers ==== */

/* ---- log.c ---- */
void weft__log(weft_engine *e, weft_log_level level, const char *fmt, ...) WEFT_PRINTF(3, 4);

/* What a peer did, at most WEFT_PEER_LOG_PER_SEC lines a second per loop; the rest are
 * counted and summed up once the second is over (loop thread). */
void weft__log_peer(weft__loop *loop, weft_log_level level, const char *fmt, ...) WEFT_PRINTF(3, 4);
/* Says what the last second held back, once it is over (the wheel's tick). */
void weft__log_peer_tick(weft__loop *loop);

/* ---- platform.h: weft__mono_ns, weft__coarse_ns (the clocks) ---- */

/* ==== per-thread loop ==== */

/* ---- loop.c: the iteration, slots, the inbox ---- */
/* Sets up a loop's common parts (backend instance, inbox, timers); worker loops also get
 * their read buffer, buffer pool, wheel and listeners. */
int weft__loop_init(weft_engine *e, weft__loop *loop, unsigned index);
int weft__loop_init_acceptor(weft_engine *e, weft__loop *loop);
void weft__loop_destroy(weft__loop *loop);
/* Runs what tasks are left once the loop has stopped: fds closed, buffers freed, a dial or
 * enroll's on_close delivered (on the calling thread). */
void weft__loop_drain_leftovers(weft__loop *loop);
/* Runs the loop until it quits (on its own thread; the acceptor's too). */
void weft__loop_run(weft__loop *loop);
/* Milliseconds on the loop's timer clock (CLOCK_MONOTONIC since the loop started). */
uint64_t weft__loop_timer_now(const weft__loop *loop);
/* Arms a timer node ms from now on loop's heap. 0 or WEFT_ENOMEM. */
int weft__loop_timer_arm(weft__loop *loop, weft__timer_node *n, uint64_t ms);
/* Refreshes loop->now_ms (the coarse clock connections are stamped with). */
void weft__loop_clock_update(weft__loop *loop);
/* Enter / leave a callback. Leaving the outermost runs weft__loop_before_sleep. */
void weft__loop_enter(weft__loop *loop);
void weft__loop_leave(weft__loop *loop);
/* What runs once per iteration before the loop sleeps (Redis's beforeSleep): corked output
 * is flushed and the closes requested during the iteration are carried out. */
void weft__loop_before_sleep(weft__loop *loop);
weft_conn *weft__slot_get(weft__loop *loop, uint32_t slot);
/* Publishes the buffer pool's figures in the loop's statistics. */
void weft__loop_publish_buffers(weft__loop *loop);
/* Makes fd a connection of this loop (not yet watched), or closes it and returns NULL.
 * tune: set the socket options (an accepted socket inherited them from its listener). */
weft_conn *weft__conn_setup(weft__loop *loop, weft__sock fd, int family, void *ctx, bool tune);
/* Sets up an accepted fd as a connection on this loop and opens it; one from a TLS listener
 * (tls: its certificates, NULL for plain) once its handshake is done. */
void weft__loop_adopt(weft__loop *loop, weft__sock fd, int family, void *ctx, bool tune,
                      struct weft__tls_server *tls);
/* A dial or enroll was promised on_close and gets it, on a stand-in connection that carries
 * ctx and was never opened (no connection could be made, or the loop is gone). */
void weft__loop_promise_close(weft__loop *loop, weft__sock fd, void *ctx, int err);
/* Asks the engine to stop (what weft_engine_stop does; async-signal-safe), for the loop
 * layer's WEFT_ACTION_SHUTDOWN. */
void weft__loop_request_stop(weft_engine *e);
/* The engine holds max_connections already: past it an accept, dial or enroll is refused
 * (every loop's live count; any thread). */
bool weft__engine_at_max_conns(weft_engine *e);
/* A dial or enroll the caller was told succeeded owes it on_close: on a stopping loop the
 * connection is made and closed at once with WEFT_ESHUTDOWN. */
void weft__loop_refuse_promised(weft__loop *loop, weft__task *t);
/* Posts a wake of ref's connection to its own loop (inside the engine: no stop check). */
int weft__loop_post_wake(weft__loop *loop, weft_conn_ref ref);

/* ---- conn.c: a connection's events and accessors ---- */
/* The connection is open: watch it and tell the user (on_open). */
void weft__conn_opened(weft_conn *c);
/* The user part of weft__conn_opened, for a connection the balancer already counts (a TLS
 * one whose handshake just finished). */
void weft__conn_announce(weft_conn *c);
/* Tells the backend what c wants now (read, write), from its flags and queued output. */
void weft__conn_update_interest(weft_conn *c);
/* The read timeout counts only while c reads (conn.c says how): after a change to
 * CONN_READING or CONN_PAUSED, with whether it counted before; and at a new wait. */
void weft__conn_read_clock(weft_conn *c, bool counted_before);
void weft__conn_read_clock_start(weft_conn *c);
/* Sets TCP_NODELAY and keepalive as configured (on a listener, so accepted sockets inherit
 * them, or on a dialled or enrolled socket). */
int weft__socket_tune(const weft_config *cfg, weft__sock fd, int family);

/* ---- conn_write.c: output queue, corking, backpressure ---- */
/* Tries to send what is queued; updates interest, backpressure and closing. */
void weft__conn_flush(weft_conn *c);
/* Sends what corked entry i (taken off the list) held (weft__loop_before_sleep). */
void weft__conn_flush_corked(weft__loop *loop, uint32_t i);
/* The iteration's corked writes are all out: the staging area empties, and a burst's
 * corked list goes back to the system. */
void weft__loop_stage_reset(weft__loop *loop);
void weft__loop_stage_free(weft__loop *loop);
/* Frames data through the engine's codec: head, data, tail in iov (enc holds the head and
 * may hold the tail). 0, WEFT_ENOCODEC or the encoder's error. Any thread (the codec is
 * read-only). */
int weft__frame_iov(weft_engine *e, const void *data, size_t len, weft_encoding *enc,
                    struct iovec iov[3]);
/* Bytes waiting to go out: queued, and staged in this iteration. */
size_t weft__conn_pending(const weft_conn *c);
/* What the output limits (write_high_water, write_hard_cap) count: the pending bytes, and
 * those a completion backend still holds after their send (backend.h, conn_held). */
size_t weft__conn_backlog(const weft_conn *c);
/* As weft__conn_send for one buffer that is not ours: sent or queued without a copy where
 * it must wait; free_cb(data, free_ctx) (NULL: free(data)) runs once weft is done with it,
 * whatever this returns. */
int weft__conn_send_ref(weft_conn *c, void *data, size_t len, weft_free_cb free_cb, void *free_ctx);
/* Queues bytes (copied) behind what waits, or sends them at once (a TLS connection's
 * encrypted first). */
int weft__conn_send(weft_conn *c, const struct iovec *iov, int iovcnt);
/* As weft__conn_send, for bytes as they go on the wire (TLS records), also while closing. */
int weft__conn_send_raw(weft_conn *c, const struct iovec *iov, int iovcnt);

/* ---- conn_close.c: closing now, gracefully, lingering ---- */
/* Closes now (or at the end of the running dispatch). */
void weft__conn_close_now(weft_conn *c, int err);
/* Graceful close: stop reading, flush, then close with err. */
void weft__conn_close_graceful(weft_conn *c, int err);
/* The output of a closing connection is all with the kernel: close, or linger. */
void weft__conn_closing_drained(weft_conn *c);
/* A lingering close (CONN_LINGER): closes c if the peer took every byte; otherwise, past
 * since_ms + stop_timeout_ms, closes it with WEFT_ETIMEDOUT. Returns true if it closed. */
bool weft__conn_linger_check(weft_conn *c, bool timed_out);
/* Lingering: input is read and dropped (n: what the backend delivered). */
void weft__conn_linger_input(weft_conn *c, ssize_t n);
/* The real close, at a safe point (weft__loop_before_sleep). */
void weft__conn_finish(weft_conn *c);

/* ---- conn_read.c: inbound bytes, on_traffic and the read API ---- */
/* Runs on_traffic over what conn has buffered (and the bytes just read, if any). */
void weft__conn_dispatch(weft_conn *c, const uint8_t *fresh, size_t fresh_len);
/* n > 0 bytes of input for c (plaintext, for TLS) at data: behind a partial frame, or to
 * on_traffic straight from data. */
void weft__conn_deliver(weft_conn *c, const uint8_t *data, size_t n);
/* The peer ended its side (a FIN, or TLS's close_notify): what it sent before is answered,
 * then c closes. */
void weft__conn_peer_ended(weft_conn *c);

/* ---- wheel.c: idle, read, close and connect timeouts ---- */
int weft__wheel_init(weft__loop *loop);
/* (Re)files c by its current deadline; a connection without one leaves the wheel. */
void weft__wheel_schedule(weft_conn *c);
void weft__wheel_remove(weft_conn *c);

/* ---- conn_timer.c: user timers (weft_conn_after) ---- */
/* Cancels c's user timers (their callbacks never run). */
void weft__conn_cancel_timers(weft_conn *c);
/* Frees every user timer of the loop (at loop teardown). */
void weft__loop_free_timers(weft__loop *loop);

/* ---- accept.c: accepting on a loop ---- */
/* Starts accepting (or receiving) on the listeners a loop owns; stops them all. */
int weft__listeners_start(weft__loop *loop);
void weft__listeners_stop(weft__loop *loop);

/* ---- dgram.c: udp:// and unixgram:// sockets ---- */
/* The receive and reply batch (dgram.c's own). */
typedef struct weft__dgram_batch weft__dgram_batch;
void weft__dgram_batch_free(weft__loop *loop);
weft_conn *weft__dgram_new(weft__loop *loop, weft__listener *l);
int weft__dgram_send(weft_conn *c, const struct iovec *iov, int iovcnt, const struct sockaddr *to,
                     socklen_t tolen);

/* ==== control side ==== */

/* ---- engine.c ---- */
/* Waits at the start gate; true to run, false to exit at once. */
bool weft__wait_gate(weft_engine *e);

/* ---- listen.c: URL parsing and listening sockets ---- */
/* Turns a tcp://, udp://, unix:// or unixgram:// URL into an address (tcp/udp host names
 * are resolved, blocking). Returns 0 or WEFT_EBADADDR. */
int weft__resolve(const char *url, struct sockaddr_storage *ss, socklen_t *len, int *type);
int weft__listener_open(weft_engine *e, const char *url, weft__listener *l, bool reuse_port,
                        int bind_port);
void weft__listener_close(weft__listener *l);
int weft__listener_format(const weft__listener *l, char *buf, size_t len);

/* ---- dial.c: outbound connections ---- */
/* The dialled socket became writable: the connect finished, one way or the other (the
 * engine's connect_done). */
void weft__dial_finish(weft_conn *c);

/* ---- group.c: connection groups ---- */
/* Frees loop's group table, if it has one (engine teardown: the groups are freed and every
 * connection has finished). */
void weft__group_slots_free(weft__loop *loop);

/* ---- acceptor.c ---- */
int weft__acceptor_setup(weft_engine *e);
void weft__acceptor_teardown(weft_engine *e);

#endif /* WEFT_INTERNAL_H */
