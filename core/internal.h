/* weft — what the core's files share: the engine, its loops and their connections.
 *
 * Ownership: a loop thread owns its event_base, its read buffer, its buffer pool and every
 * connection in its slot table. Other threads touch a loop only through its queue, its
 * statistics (atomics) and a slot's generation (atomic), which is how a weft_conn_ref is
 * checked without a lock.
 */
#ifndef WEFT_INTERNAL_H
#define WEFT_INTERNAL_H

#include <event2/event.h>
#include <event2/event_struct.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "weft/balancer.h"
#include "bufpool.h"
#include "weft/codec.h"
#include "weft/engine.h"
#include "weft/pool.h"
#include "queue.h"
#include "ring.h"

/* Connection flags (loop thread only). */
enum {
    CONN_READING = 1u << 0,       /* EV_READ is wanted */
    CONN_EV_READ = 1u << 1,       /* EV_READ is registered */
    CONN_EV_WRITE = 1u << 2,      /* EV_WRITE is registered */
    CONN_PAUSED = 1u << 3,        /* reading paused by the high-water mark */
    CONN_CLOSING = 1u << 4,       /* graceful close: flush, then close */
    CONN_CLOSE_PENDING = 1u << 5, /* close requested inside a callback */
    CONN_CLOSED = 1u << 6,
    CONN_CORKED = 1u << 7, /* on the loop's corked list: flush at end of dispatch */
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

struct weft_conn {
    struct event ev; /* one event for both directions; interest changes only on a short
                        write, so toggling it is rare */
    weft__loop *loop;
    void *ctx;
    weft__ring in;
    weft__ring out;
    weft_codec_state cstate;
    int fd;
    _Atomic uint32_t gen;           /* odd while open, even while the slot is free */
    _Atomic uint32_t out_len;       /* out.len, mirrored for other threads */
    _Atomic uint32_t async_pending; /* bytes in async writes queued for this connection */
    uint32_t slot;
    /* Links by slot number. tw_next/tw_prev chain the timer wheel (timer.c; a bucket's
     * first entry has WEFT__TW_HEAD | bucket as its prev). A connection leaves the wheel
     * when its close is requested, so tw_next then chains the pending-close list, and
     * later the free list. Activity only stamps active_ms; the wheel finds the real
     * deadline when it visits the bucket. */
    uint32_t tw_prev;
    uint32_t tw_next;
    uint32_t active_ms; /* last read or write progress (loop clock) */
    uint32_t since_ms;  /* CONN_PARTIAL: unread bytes wait since; CONN_CLOSING: closing since */
    uint16_t flags;
    int16_t close_err; /* reason for a pending close (every WEFT_E* code fits) */
};

#define WEFT__CHUNK_SHIFT 10
#define WEFT__CHUNK_SIZE  (1u << WEFT__CHUNK_SHIFT)
#define WEFT__CHUNK_MAX   4096u /* 4 Mi connections per loop */
#define WEFT__NO_SLOT     UINT32_MAX
#define WEFT__TW_SLOTS    512u
#define WEFT__TW_TICK_MS  100u
#define WEFT__TW_HEAD     0x80000000u

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
    _Atomic uint64_t dgrams_in;
    _Atomic uint64_t dgrams_out;
    _Atomic uint64_t dgrams_dropped;
    _Atomic uint64_t wakeups;
    _Atomic uint64_t tasks;
    _Atomic uint64_t sleeps;
} weft__loop_stats;

/* Single-writer counters: a relaxed load and store, no locked instruction. */
#define WEFT__STAT_ADD(field, n)                                                                \
    atomic_store_explicit(&(field),                                                             \
                          atomic_load_explicit(&(field), memory_order_relaxed) + (uint64_t)(n), \
                          memory_order_relaxed)

typedef struct weft__listener {
    int fd;
    int family;       /* AF_INET, AF_INET6, AF_UNIX */
    int type;         /* SOCK_STREAM (accepting) or SOCK_DGRAM (datagrams, through dgram) */
    weft_conn *dgram; /* SOCK_DGRAM: the socket as a connection of its owner loop */
    char url[160];
    char unix_path[108];
    struct event ev;
    struct event resume_ev; /* re-arms accepting after EMFILE and friends */
    bool ev_added;
    bool resume_assigned;
    unsigned backoff_ms;
    weft__loop *owner; /* reuse_port: the loop that accepts on it; NULL: the acceptor */
    struct weft_engine *engine;
} weft__listener;

struct weft__loop {
    struct weft_engine *engine;
    unsigned index;
    pthread_t thread;
    bool thread_started;
    struct event_base *base;
    weft__queue queue;
    struct event wake_ev;
    struct event tick_ev;
    struct event stop_ev;
    bool tick_added, stop_added, wake_added;
    uint8_t *rbuf;
    size_t rbuf_size;
    weft__bufpool *bufpool;

    /* Slot table: chunks never move or shrink while the engine lives, so another thread
     * may read a slot's generation at any time. */
    _Atomic(weft_conn *) chunks[WEFT__CHUNK_MAX];
    uint32_t nchunks;
    uint32_t free_head;
    uint32_t high_slot; /* slots below this were handed out at least once */
    uint32_t nconns;    /* open connections (loop thread) */

    /* Timer wheel for idle, read and close timeouts: one visit per connection per timeout
     * period, not a scan of every connection per tick. */
    struct event wheel_ev;
    bool wheel_added;
    uint32_t now_ms;     /* loop clock, read as each callback starts (wraps: deltas only) */
    uint64_t now64_ms;   /* the same, not wrapping */
    uint64_t clock0_ns;  /* CLOCK_MONOTONIC at loop start */
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

    /* Intrusive stacks of slot numbers, so deferring never allocates: connections with
     * output to flush at the end of the dispatch, and connections to close then. */
    weft_conn **corked; /* connections with output to flush at the end of the dispatch */
    uint32_t ncorked, corked_cap;
    uint32_t pending_head;

    weft__listener **listeners; /* reuse_port listeners this loop accepts on */
    size_t nlisteners;

    bool stopping;
    weft__loop_stats stats;

    /* User timers (weft_conn_after) of this loop's connections. */
    struct weft__timer *timers;
    uint64_t next_timer_id;

    /* Receive batch for datagram sockets (dgram.c), allocated only if the loop has one. */
    struct weft__dgram_batch *dgram_batch;
    /* The sender of the datagram being dispatched (dgram.c). */
    struct sockaddr_storage dgram_peer;
    socklen_t dgram_peer_len;

    /* The last decode error on this loop, for weft_conn_get_decode_error. */
    const char *err_reason;
    uint32_t err_slot;
    uint32_t err_gen;
};

struct weft_engine {
    weft_config cfg;
    weft_codec codec;
    bool has_codec;
    unsigned nloops;
    weft__loop *loops;
    weft__listener *listeners;
    size_t nlisteners;
    weft_balancer *balancer;
    weft_pool *pool;

    /* The acceptor ("main") thread: non-reuse_port listeners and the stop signal. */
    pthread_t acceptor;
    bool acceptor_started;
    struct event_base *abase;
    int stop_fd;
    struct event stop_ev;
    _Atomic int stop_requested;
    _Atomic uint64_t rejected;
    _Atomic uint64_t accept_errors;
    _Atomic unsigned loops_running;
    _Atomic unsigned dial_next; /* round-robin for dial/enroll without a loop */
    pthread_mutex_t gate_mu;    /* the start gate (engine.c) */
    pthread_cond_t gate_cv;
    int gate;
    uint64_t *live_snapshot; /* acceptor scratch for balancers that want live counts */
};

/* ---- engine.c ---- */
void weft__log(weft_engine *e, weft_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

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
int weft__socket_tune(const weft_config *cfg, int fd, int family);

/* ---- loop.c ---- */
int weft__loop_init(weft_engine *e, weft__loop *loop, unsigned index);
void weft__loop_destroy(weft__loop *loop);
/* Runs what tasks are left once the loop has stopped: fds closed, buffers freed, a dial or
 * enroll's on_close delivered (on the calling thread). */
void weft__loop_drain_leftovers(weft__loop *loop);
void *weft__loop_main(void *arg);
/* Sets up an accepted fd as a connection on this loop (loop thread). */
/* tune: set the socket options (an accepted socket inherited them from its listener). */
void weft__loop_adopt(weft__loop *loop, int fd, int family, void *ctx, bool tune);
void weft__loop_accept_cb(evutil_socket_t fd, short what, void *arg);

/* ---- conn.c ---- */
weft_conn *weft__slot_get(weft__loop *loop, uint32_t slot);
/* Called when the socket is ready. */
void weft__conn_event_cb(evutil_socket_t fd, short what, void *arg);
/* Closes now (or at the end of the running dispatch). */
void weft__conn_close_now(weft_conn *c, int err);
/* Graceful close: stop reading, flush, then close with err. */
void weft__conn_close_graceful(weft_conn *c, int err);
/* A lingering close (CONN_LINGER): closes c if the peer took every byte; otherwise, past
 * since_ms + stop_timeout_ms, closes it with WEFT_ETIMEDOUT. Returns true if it closed. */
bool weft__conn_linger_check(weft_conn *c, bool timed_out);
/* Tries to send what is queued; updates interest, backpressure and closing. */
void weft__conn_flush(weft_conn *c);
/* Queues bytes (copied) behind what waits, or sends them at once. */
int weft__conn_send(weft_conn *c, const struct iovec *iov, int iovcnt);
/* Enter / leave a dispatch: at depth 0 corked output is flushed and pending closes run. */
void weft__loop_enter(weft__loop *loop);
void weft__loop_leave(weft__loop *loop);
void weft__conn_update_events(weft_conn *c);

/* ---- conn_read.c ---- */
/* Runs on_traffic over what conn has buffered (and the bytes just read, if any). */
void weft__conn_dispatch(weft_conn *c, const uint8_t *fresh, size_t fresh_len);
/* Reads what the socket holds and dispatches it; at end of input starts a graceful close. */
void weft__conn_read(weft_conn *c);

/* ---- timer.c ---- */
int weft__wheel_init(weft__loop *loop);
void weft__wheel_destroy(weft__loop *loop);
/* Refreshes loop->now_ms. */
void weft__clock_update(weft__loop *loop);
/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t weft__mono_ns(void);
/* (Re)files c by its current deadline; a connection without one leaves the wheel. */
void weft__wheel_schedule(weft_conn *c);
void weft__wheel_remove(weft_conn *c);

/* ---- user_timer.c ---- */
/* Cancels c's user timers (its callbacks never run). */
void weft__conn_cancel_timers(weft_conn *c);
/* Frees every user timer of the loop (at loop teardown). */
void weft__loop_free_timers(weft__loop *loop);

/* ---- dgram.c: udp:// and unixgram:// sockets ---- */
#define WEFT__DGRAM_VEC 16
typedef struct weft__dgram_batch {
    struct mmsghdr msgs[WEFT__DGRAM_VEC];
    struct iovec iov[WEFT__DGRAM_VEC];
    struct sockaddr_storage peers[WEFT__DGRAM_VEC];
    uint8_t *data; /* WEFT__DGRAM_VEC slots of read_buffer_size bytes */
    /* Replies written while a batch is handled leave together (sendmmsg). */
    struct mmsghdr out_msgs[WEFT__DGRAM_VEC];
    struct iovec out_iov[WEFT__DGRAM_VEC];
    struct sockaddr_storage out_peers[WEFT__DGRAM_VEC];
    uint8_t *out_data; /* WEFT__DGRAM_VEC slots of read_buffer_size bytes */
    unsigned nout;
    int out_fd;
    bool active; /* inside weft__dgram_event_cb: replies are gathered */
} weft__dgram_batch;
void weft__dgram_batch_free(weft__loop *loop);
weft_conn *weft__dgram_new(weft__loop *loop, weft__listener *l);
void weft__dgram_event_cb(evutil_socket_t fd, short what, void *arg);
int weft__dgram_send(weft_conn *c, const struct iovec *iov, int iovcnt, const struct sockaddr *to,
                     socklen_t tolen);

/* ---- dial.c: outbound connections ---- */
/* The loop side of a dial: fd is connecting (or connected); on_open once it is. */
void weft__loop_adopt_dialled(weft__loop *loop, int fd, int family, void *ctx, unsigned timeout_ms);
void weft__conn_finish_connect(weft_conn *c);

/* ---- acceptor.c ---- */
void *weft__acceptor_main(void *arg);
int weft__acceptor_setup(weft_engine *e);
void weft__acceptor_teardown(weft_engine *e);
/* Hands fd to a loop chosen by the balancer; closes it on failure. */
void weft__dispatch_fd(weft_engine *e, int fd, const struct sockaddr *peer, socklen_t plen);

#endif /* WEFT_INTERNAL_H */
