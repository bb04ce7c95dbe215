/* weft — the completion backend: io_uring, one ring per loop thread.
 *
 * The loop hands the kernel whole operations and collects their results in batches: every
 * connection has one multishot receive armed, which takes a buffer from the loop's
 * provided-buffer ring only when bytes arrive (an idle connection holds none); listeners
 * have one multishot accept; the sends an iteration makes are queued as submissions and go
 * to the kernel together with the next wait, in one system call. Where the kernel fills a
 * buffer a piece at a time (IOU_PBUF_RING_INC, Linux 6.12), small messages of many
 * connections share one buffer. A datagram socket is watched with one-shot polls and read on
 * readiness (recvmmsg, as on epoll), or, with WEFT_URING_DGRAM=multishot, has one multishot
 * recvmsg from a buffer ring of its loop's own (backend_uring_dgram.c). The loop's wakeup is
 * a one-shot poll, re-armed after each; a dial's connect completes through a poll for
 * POLLOUT.
 *
 * Every operation is tagged with its owner (a connection, a listener, the loop) and kind in
 * the low bits of its user_data, and counted until its last completion arrives. A closed
 * connection whose operations are still in flight is cancelled and keeps its slot until the
 * count is zero (weft__conn_released), so a late completion never reaches a new owner of
 * the slot, and the kernel never reads a send's memory after it was reused. When the loop
 * thread quits, it waits for every count to reach zero.
 *
 * A send of at least uring_zc_min bytes goes out with IORING_OP_SEND_ZC: the kernel reads
 * the output queue in place, finishes the send (a first completion, flagged MORE) and says
 * later, in a notification, that it let go of the memory: on TCP once the peer acknowledged
 * the bytes (on loopback too: a receiver that does not read holds them), or the socket went. So the chunks a
 * zero-copy send emptied are held, with the send's descriptor, until its notification,
 * while the next send goes out at once; descriptors are let go in the order they were
 * sent, and what a later send empties meanwhile is held with the newest, since an earlier
 * zero-copy send may have read part of it. A connection's slot stays taken until its last
 * notification, as for any operation in flight. (With DEFER_TASKRUN the notification is
 * posted only while the loop waits with IORING_ENTER_GETEVENTS, which every wait here does.)
 *
 * The ring is made, used and taken down by the loop's thread only (its first poll makes it,
 * its quit takes it down): that thread is its single issuer (IORING_SETUP_SINGLE_ISSUER,
 * DEFER_TASKRUN where the kernel has them), and no other thread of the program is one of
 * the ring's users, which the kernel would interrupt when the ring goes.
 */
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backend_uring.h"

#define SQ_ENTRIES      1024u
#define CQ_ENTRIES      8192u
#define CQE_BATCH       256u
#define SEND_DESC_KEEP  64u
#define DRAIN_WAIT_MS   1000
#define DRAIN_MAX_WAITS 10

/* What an operation is, in the low bits of its user_data (owners are 8-byte aligned). */
enum {
    OP_NONE = 0, /* a cancel (no owner): its completion, if any, is ignored; or, owned by the
                    loop's state, a connection's close, counted as the loop's */
    OP_RECV,
    OP_SEND,
    OP_POLLOUT,
    OP_ACCEPT,
    OP_DGRAM, /* a datagram socket's receive: a poll, or (L_MSG) a multishot recvmsg */
    OP_WAKE,
    OP_SEND_ZC /* owned by its ur_send: both of its completions carry the same tag */
};
#define OP_MASK 7u

/* A connection's state bits. */
enum {
    RECV_ARMED = 1u << 0,  /* a multishot receive is in flight */
    RECV_CANCEL = 1u << 1, /* ... and its cancel was submitted */
    WANT_READ = 1u << 2,
    POLLOUT_ARMED = 1u << 3,
    SEND_BUSY = 1u << 4,
    CLOSED = 1u << 5, /* conn_close ran: completions only count down */
    ON_REARM = 1u << 6,
    ONE_SHOT = 1u << 7,    /* one receive at a time (see the receive mode below) */
    PAUSED_ONCE = 1u << 8, /* stays ONE_SHOT */
    SEND_ZC = 1u << 9,     /* the send in flight is the zero-copy one u->send describes */
    ZC_COPIED = 1u << 10   /* copy from now on: the kernel copied a zero-copy send anyway, or
                              the socket has none (not TCP) */
};

/* The receive mode. A multishot receive costs nothing per message once armed, but the
 * kernel may complete many receives for a connection before the loop sees the first: bytes
 * a connection that pauses then has to hold, where a readiness backend would have left them
 * in the socket. So a connection starts with one receive at a time (as many bytes as one
 * buffer, like one read), goes multishot once it has shown small messages (SMALL_RUN
 * receives under a quarter buffer in a row: request and answer traffic), and goes back to
 * one at a time on a large receive (a bulk sender) or for good once it paused. */
#define SMALL_RUN 4u

/* ---- submissions ---- */

static uint64_t tag(const void *owner, unsigned op)
{
    return (uint64_t)(uintptr_t)owner | op;
}

/* A free submission entry: when the queue is full, what it holds goes to the kernel first
 * (only the loop thread gets here once the ring runs). */
static struct io_uring_sqe *get_sqe(weft__loop *loop)
{
    ur_state *s = loop->be_state;
    if (!s->ring_ok)
        return NULL; /* the loop thread quit and took the ring down */
    struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
    while (sqe == NULL) {
        unsigned n = io_uring_sq_ready(&s->ring);
        if (io_uring_submit(&s->ring) < 0)
            break;
        WEFT__STAT_ADD(loop->stats.submissions, n);
        sqe = io_uring_get_sqe(&s->ring);
    }
    return sqe;
}

/* Submits what waits at once, not with the next wait (loop thread, once the ring runs). */
static void submit_now(weft__loop *loop)
{
    ur_state *s = loop->be_state;
    if (!s->ring_ok)
        return;
    unsigned n = io_uring_sq_ready(&s->ring);
    if (n > 0 && io_uring_submit(&s->ring) >= 0)
        WEFT__STAT_ADD(loop->stats.submissions, n);
}

static void cancel(weft__loop *loop, const void *owner, unsigned op)
{
    ur_state *s = loop->be_state;
    struct io_uring_sqe *sqe = get_sqe(loop);
    if (sqe == NULL)
        return;
    io_uring_prep_cancel64(sqe, tag(owner, op), 0);
    sqe->user_data = tag(NULL, OP_NONE);
    if (s->caps.skip_cqe)
        sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
}

/* One more operation on c (or, for c NULL, on the loop) to wait for. */
static void count_op(ur_state *s, ur_conn *u)
{
    s->inflight++;
    if (u != NULL)
        u->inflight++;
}

/* poll_first: the socket was just read dry (a small receive), so the next bytes come later:
 * wait for them rather than try a receive that would find none. */
static void arm_recv(weft_conn *c, bool poll_first)
{
    weft__loop *loop = c->loop;
    ur_state *s = loop->be_state;
    ur_conn *u = weft__uring_conn(c);
    struct io_uring_sqe *sqe = get_sqe(loop);
    if (sqe == NULL)
        return; /* no room even after submitting: the ring failed, poll says so */
    if (u->bits & ONE_SHOT)
        io_uring_prep_recv(sqe, c->fd, NULL, 0, 0);
    else
        io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
    if (poll_first)
        sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BUF_GROUP;
    sqe->user_data = tag(c, OP_RECV);
    u->bits |= RECV_ARMED;
    u->bits &= (uint16_t)~RECV_CANCEL;
    count_op(s, u);
}

static void arm_pollout(weft_conn *c)
{
    weft__loop *loop = c->loop;
    ur_conn *u = weft__uring_conn(c);
    struct io_uring_sqe *sqe = get_sqe(loop);
    if (sqe == NULL)
        return;
    io_uring_prep_poll_add(sqe, c->fd, POLLOUT);
    sqe->user_data = tag(c, OP_POLLOUT);
    u->bits |= POLLOUT_ARMED;
    count_op(loop->be_state, u);
}

static void arm_wake(weft__loop *loop)
{
    ur_state *s = loop->be_state;
    struct io_uring_sqe *sqe = get_sqe(loop);
    if (sqe == NULL)
        return;
    io_uring_prep_poll_add(sqe, loop->queue.waker.fd, POLLIN);
    sqe->user_data = tag(loop, OP_WAKE);
    s->wake_armed = true;
    count_op(s, NULL);
}

void weft__uring_arm_listener(weft__loop *loop, weft__listener *l)
{
    ur_listener *u = weft__uring_listener(l);
    bool msg = l->type == SOCK_DGRAM && weft__uring_dgram_bufs_ready(loop);
    struct io_uring_sqe *sqe = get_sqe(loop);
    if (sqe == NULL)
        return;
    u->bits &= (uint8_t) ~(L_MSG | L_NOBUFS);
    if (msg) {
        /* MSG_TRUNC: a datagram cut to the buffer reports its full length. */
        memset(&u->mh, 0, sizeof(u->mh));
        u->mh.msg_namelen = sizeof(struct sockaddr_storage);
        io_uring_prep_recvmsg_multishot(sqe, l->fd, &u->mh, MSG_TRUNC);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = BUF_GROUP_DGRAM;
        sqe->user_data = tag(l, OP_DGRAM);
        u->bits |= L_MSG;
    } else if (l->type == SOCK_DGRAM) {
        io_uring_prep_poll_add(sqe, l->fd, POLLIN);
        sqe->user_data = tag(l, OP_DGRAM);
    } else {
        io_uring_prep_multishot_accept(sqe, l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        sqe->user_data = tag(l, OP_ACCEPT);
    }
    u->bits |= L_ARMED;
    u->bits &= (uint8_t)~L_CANCEL;
    count_op(loop->be_state, NULL);
}

/* ---- the loop's instance ---- */

static void free_bufs(ur_state *s)
{
    if (s->br != NULL)
        munmap(s->br, s->br_bytes);
    if (s->bufs != NULL)
        munmap(s->bufs, s->bufs_bytes);
    free(s->off);
    s->br = NULL;
    s->bufs = NULL;
    s->off = NULL;
}

/* The receive buffers: mapped, so only the pages bytes landed in are resident. */
static int make_bufs(weft__loop *loop, ur_state *s)
{
    weft_engine *e = loop->engine;
    s->nbufs = e->cfg.uring_buffers != 0 ? e->cfg.uring_buffers : 64u;
    s->bufsz = loop->rbuf_size;
    long page = sysconf(_SC_PAGESIZE);
    s->br_bytes =
        ((size_t)s->nbufs * sizeof(struct io_uring_buf) + (size_t)page - 1) & ~((size_t)page - 1);
    s->bufs_bytes = (size_t)s->nbufs * s->bufsz;
    s->br = mmap(NULL, s->br_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    s->bufs = mmap(NULL, s->bufs_bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    s->off = calloc(s->nbufs, sizeof(*s->off));
    if (s->br == MAP_FAILED)
        s->br = NULL;
    if (s->bufs == MAP_FAILED)
        s->bufs = NULL;
    if (s->br == NULL || s->bufs == NULL || s->off == NULL) {
        free_bufs(s);
        return WEFT_ENOMEM;
    }
    io_uring_buf_ring_init(s->br);
    int mask = io_uring_buf_ring_mask(s->nbufs);
    for (uint32_t i = 0; i < s->nbufs; i++)
        io_uring_buf_ring_add(s->br, s->bufs + (size_t)i * s->bufsz, s->bufsz, (unsigned short)i,
                              mask, (int)i);
    io_uring_buf_ring_advance(s->br, (int)s->nbufs);
    return 0;
}

static int ur_loop_init(weft__loop *loop)
{
    if (!weft__uring_supported(NULL))
        return WEFT_ENOBACKEND;
    ur_state *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return WEFT_ENOMEM;
    loop->be_state = s;
    s->caps = *weft__uring_caps();
    s->zc_min = s->caps.zc ? loop->engine->cfg.uring_zc_min : 0;
    if (s->zc_min > 0 && loop->rbuf_size > 0) {
        s->zc = calloc(WEFT__CHUNK_MAX, sizeof(*s->zc));
        if (s->zc == NULL)
            return WEFT_ENOMEM;
    }
    if (loop->rbuf_size > 0) /* worker loops receive; the acceptor only accepts */
        return make_bufs(loop, s);
    return 0;
}

/* The ring is made by the loop's own thread, before it runs its loop. The kernel counts the
 * thread that makes a ring among the ring's users, and when the ring goes it sends every
 * user task work that interrupts its blocking call of the moment (EINTR): made by the
 * thread that starts the engine, every engine's stop would interrupt the program. */
static int ring_setup(weft__loop *loop)
{
    ur_state *s = loop->be_state;
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    p.flags = IORING_SETUP_CQSIZE | s->caps.setup;
    p.cq_entries = CQ_ENTRIES;
    int rc = io_uring_queue_init_params(SQ_ENTRIES, &s->ring, &p);
    if (rc < 0)
        return rc == -ENOMEM ? WEFT_ENOMEM : rc;
    s->ring_ok = true;
    if (s->br != NULL) {
        rc = weft__uring_register_group(&s->ring, s->br, s->nbufs, BUF_GROUP, s->caps.inc);
        if (rc != 0)
            return rc;
        s->br_registered = true;
    }
    arm_wake(loop);
    for (size_t i = 0; i < loop->nlisteners; i++) { /* started before the ring was there */
        weft__listener *l = loop->listeners[i];
        if ((weft__uring_listener(l)->bits & (L_WANT | L_ARMED)) == L_WANT)
            weft__uring_arm_listener(loop, l);
    }
    return 0;
}

static void ur_loop_destroy(weft__loop *loop)
{
    ur_state *s = loop->be_state;
    if (s == NULL)
        return;
    if (s->ring_ok)
        io_uring_queue_exit(&s->ring); /* unregisters the buffer rings */
    free_bufs(s);
    weft__uring_dgram_free(s);
    while (s->free_sends != NULL) {
        ur_send *d = s->free_sends;
        s->free_sends = d->next;
        free(d);
    }
    if (s->zc != NULL) {
        for (size_t i = 0; i < WEFT__CHUNK_MAX; i++)
            free(s->zc[i]);
        free(s->zc);
    }
    free(s);
    loop->be_state = NULL;
}

/* ---- completions ---- */

static void give_back(ur_state *s, unsigned bid)
{
    s->returned++;
    s->off[bid] = 0;
    io_uring_buf_ring_add(s->br, s->bufs + (size_t)bid * s->bufsz, s->bufsz, (unsigned short)bid,
                          io_uring_buf_ring_mask(s->nbufs), 0);
    io_uring_buf_ring_advance(s->br, 1);
}

/* One of c's operations finished for good. */
static void op_done(ur_state *s, weft_conn *c)
{
    ur_conn *u = weft__uring_conn(c);
    s->inflight--;
    u->inflight--;
    if (u->inflight == 0 && (u->bits & CLOSED))
        weft__conn_released(c);
}

/* Chooses how c's next receives are made, from what this one brought (res > 0). */
static void pick_mode(weft_conn *c, ur_conn *u, int res, bool more, uint32_t bufsz)
{
    if ((uint32_t)res >= bufsz / 4) {
        u->small_run = 0;
        if (!(u->bits & ONE_SHOT)) {
            u->bits |= ONE_SHOT;
            if (more && !(u->bits & RECV_CANCEL)) { /* ends the multishot; re-armed single */
                cancel(c->loop, c, OP_RECV);
                u->bits |= RECV_CANCEL;
            }
        }
    } else if (u->small_run < SMALL_RUN && ++u->small_run == SMALL_RUN &&
               !(u->bits & PAUSED_ONCE)) {
        u->bits &= (uint16_t)~ONE_SHOT; /* the next receive armed is multishot */
    }
}

static void on_recv(weft__loop *loop, weft_conn *c, const struct io_uring_cqe *cqe)
{
    ur_state *s = loop->be_state;
    ur_conn *u = weft__uring_conn(c);
    int res = cqe->res;
    const uint8_t *data = NULL;
    int bid = -1;
    if (cqe->flags & IORING_CQE_F_BUFFER) {
        bid = (int)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        data = s->bufs + (size_t)bid * s->bufsz + s->off[bid];
        if (s->caps.inc && (cqe->flags & IORING_CQE_F_BUF_MORE) && res > 0) {
            s->off[bid] += (uint32_t)res; /* the kernel goes on filling it */
            bid = -1;
        }
    }
    bool more = (cqe->flags & IORING_CQE_F_MORE) != 0;
    if (!more)
        u->bits &= (uint16_t) ~(RECV_ARMED | RECV_CANCEL);
    if (!(u->bits & CLOSED)) {
        if (res == -ENOBUFS) {
            /* Every buffer is out: read again once this batch gave them back. */
            WEFT__STAT_ADD(loop->stats.exhaustions, 1);
            if (!(u->bits & ON_REARM)) {
                u->bits |= ON_REARM;
                u->rearm_next = NULL;
                if (s->rearm_tail != NULL)
                    weft__uring_conn(s->rearm_tail)->rearm_next = c;
                else
                    s->rearm_head = c;
                s->rearm_tail = c;
                count_op(s, u); /* keeps the slot until the list lets go of it */
            }
        } else if (res != -ECANCELED) {
            if (res > 0)
                pick_mode(c, u, res, more, s->bufsz);
            weft__loop_enter(loop);
            weft__conn_recv_done(c, data, res);
            weft__loop_leave(loop);
        }
        /* A multishot receive can end with bytes (the kernel's choice) or by its cancel,
         * while reading is wanted again: arm a new one. An end of input or an error is
         * not re-armed: reading would only meet it again. */
        if (!more && (res > 0 || res == -ECANCELED) &&
            (u->bits & (WANT_READ | CLOSED)) == WANT_READ && !(u->bits & RECV_ARMED))
            arm_recv(c, res > 0 && (uint32_t)res < s->bufsz / 4);
    }
    if (bid >= 0)
        give_back(s, (unsigned)bid);
    if (!more)
        op_done(s, c);
}

/* c's zero-copy sends, or NULL where its block of the table was never needed. */
static ur_zc *zc_find(const ur_state *s, const weft_conn *c)
{
    uint32_t b = c->slot >> WEFT__CHUNK_SHIFT;
    if (s->zc == NULL || b >= WEFT__CHUNK_MAX || s->zc[b] == NULL)
        return NULL;
    return &s->zc[b][c->slot & (WEFT__CHUNK_SIZE - 1u)];
}

/* The same, making its block if need be; NULL without memory (the send then copies). */
static ur_zc *zc_get(ur_state *s, const weft_conn *c)
{
    uint32_t b = c->slot >> WEFT__CHUNK_SHIFT;
    if (s->zc == NULL || b >= WEFT__CHUNK_MAX)
        return NULL;
    if (s->zc[b] == NULL && (s->zc[b] = calloc(WEFT__CHUNK_SIZE, sizeof(ur_zc))) == NULL)
        return NULL;
    return &s->zc[b][c->slot & (WEFT__CHUNK_SIZE - 1u)];
}

/* A send of c's finished with n bytes while zero-copy sends are held: what it emptied is
 * held with the newest, whose count the core raises as it moves the bytes (before it looks
 * at the output limits, and before it submits the next send, which may be a newer one). */
static void zc_hold(weft_conn *c, ur_zc *z, ssize_t n)
{
    ur_send *t = z->tail;
    uint32_t before = z->bytes;
    weft__conn_sent_held(c, n, &t->held, &z->bytes);
    t->held_bytes += z->bytes - before;
}

static size_t ur_conn_held(const weft_conn *c)
{
    const ur_zc *z = zc_find(c->loop->be_state, c);
    return z != NULL ? z->bytes : 0;
}

static void put_send(ur_state *s, ur_send *d)
{
    if (s->nfree_sends < SEND_DESC_KEEP) {
        d->next = s->free_sends;
        s->free_sends = d;
        s->nfree_sends++;
    } else {
        free(d);
    }
}

static void on_send(weft__loop *loop, weft_conn *c, int res)
{
    ur_state *s = loop->be_state;
    ur_conn *u = weft__uring_conn(c);
    u->bits &= (uint16_t)~SEND_BUSY;
    if (u->send != NULL) {
        put_send(s, u->send);
        u->send = NULL;
    }
    if (!(u->bits & CLOSED)) {
        ssize_t n = res == -EAGAIN || res == -EINTR ? 0 : res;
        ur_zc *z = zc_find(s, c);
        if (z != NULL && z->tail != NULL) /* an earlier zero-copy send may still read it */
            zc_hold(c, z, n);
        else
            weft__conn_sent(c, n);
    }
    op_done(s, c);
}

/* Lets go of c's zero-copy sends from the oldest on, as far as their notifications came:
 * their held chunks go back, and each one's count. */
static void zc_let_go(ur_state *s, weft_conn *c)
{
    ur_zc *z = zc_find(s, c);
    unsigned done = 0;
    while (z->head != NULL && z->head->let_go) {
        ur_send *d = z->head;
        z->head = d->next;
        if (z->head == NULL)
            z->tail = NULL;
        z->n--;
        z->bytes -= d->held_bytes; /* first: the core looks at what is left */
        weft__conn_held_release(c, &d->held, d->held_bytes);
        put_send(s, d);
        done++;
    }
    while (done-- > 0)
        op_done(s, c); /* the last may hand the slot back: c is not touched after */
}

/* A zero-copy send's completion: first its result (MORE: a notification follows), then the
 * notification. A send that failed before it was issued has no notification. */
static void on_send_zc(weft__loop *loop, ur_send *d, const struct io_uring_cqe *cqe)
{
    ur_state *s = loop->be_state;
    weft_conn *c = d->c;
    ur_conn *u = weft__uring_conn(c);
    if (cqe->flags & IORING_CQE_F_NOTIF) {
        /* Where the kernel had to copy (loopback, a device without scatter-gather), zero
         * copy only costs more: this connection copies from now on. */
        if (s->caps.zc_usage && ((uint32_t)cqe->res & IORING_NOTIF_USAGE_ZC_COPIED) &&
            !(u->bits & ZC_COPIED)) {
            u->bits |= ZC_COPIED;
            WEFT__STAT_ADD(loop->stats.zc_copied, 1);
        }
        d->let_go = true;
        zc_let_go(s, c);
        return;
    }
    u->bits &= (uint16_t) ~(SEND_BUSY | SEND_ZC);
    u->send = NULL;
    if (!(cqe->flags & IORING_CQE_F_MORE))
        d->let_go = true;
    if (!(u->bits & CLOSED)) {
        int res = cqe->res;
        if (res == -EOPNOTSUPP) { /* no zero copy on this socket: the queue goes again, copied */
            u->bits |= ZC_COPIED;
            res = 0;
        }
        /* Into the newest descriptor's hold: this one, or one a send made meanwhile. */
        zc_hold(c, zc_find(s, c), res == -EAGAIN || res == -EINTR ? 0 : res);
    }
    if (d->let_go)
        zc_let_go(s, c);
}

static void on_pollout(weft__loop *loop, weft_conn *c)
{
    ur_conn *u = weft__uring_conn(c);
    u->bits &= (uint16_t)~POLLOUT_ARMED;
    if (!(u->bits & CLOSED)) {
        weft__loop_enter(loop);
        weft__conn_writable(c);
        weft__loop_leave(loop);
    }
    op_done(loop->be_state, c);
}

static void on_accept(weft__loop *loop, weft__listener *l, const struct io_uring_cqe *cqe)
{
    ur_state *s = loop->be_state;
    ur_listener *u = weft__uring_listener(l);
    bool more = (cqe->flags & IORING_CQE_F_MORE) != 0, go_on = true;
    int res = cqe->res;
    if (!more) {
        u->bits &= (uint8_t) ~(L_ARMED | L_CANCEL);
        s->inflight--;
    }
    if (res >= 0) {
        if (s->draining || loop->stopping || l->fd < 0) {
            close(res); /* accepted as the listener stopped: refused */
        } else {
            /* The hand-off balances on the peer's address; a loop of its own needs none. */
            struct sockaddr_storage ss;
            socklen_t sl = 0;
            if (l->owner == NULL && l->family != AF_UNIX) {
                sl = sizeof(ss);
                if (getpeername(res, (struct sockaddr *)&ss, &sl) != 0)
                    sl = 0;
            }
            go_on = weft__listener_accepted(l, res, 0, sl != 0 ? (struct sockaddr *)&ss : NULL, sl);
        }
    } else if (res != -ECANCELED && !s->draining) {
        go_on = weft__listener_accepted(l, -1, res, NULL, 0);
    }
    if (!more && go_on && (u->bits & L_WANT) && !(u->bits & L_ARMED) && !s->draining)
        weft__uring_arm_listener(loop, l);
}

static void on_wake(weft__loop *loop)
{
    ur_state *s = loop->be_state;
    s->wake_armed = false;
    s->inflight--;
    if (s->draining)
        return;
    weft__loop_woken(loop);
    if (!s->draining && !s->wake_armed)
        arm_wake(loop);
}

static void complete(weft__loop *loop, const struct io_uring_cqe *cqe)
{
    uint64_t ud = cqe->user_data;
    if (ud == LIBURING_UDATA_TIMEOUT)
        return;
    void *owner = (void *)(uintptr_t)(ud & ~(uint64_t)OP_MASK);
    switch ((unsigned)(ud & OP_MASK)) {
    case OP_RECV:
        on_recv(loop, owner, cqe);
        break;
    case OP_SEND:
        on_send(loop, owner, cqe->res);
        break;
    case OP_POLLOUT:
        on_pollout(loop, owner);
        break;
    case OP_ACCEPT:
        on_accept(loop, owner, cqe);
        break;
    case OP_DGRAM:
        weft__uring_on_dgram(loop, owner, cqe);
        break;
    case OP_WAKE:
        on_wake(loop);
        break;
    case OP_SEND_ZC:
        on_send_zc(loop, owner, cqe);
        break;
    default: /* a cancel's own result, or a close's */
        if (owner != NULL)
            ((ur_state *)owner)->inflight--;
        break;
    }
}

/* Receives that stopped for want of buffers read again, oldest first, as many as the
 * buffers given back since the last pass can serve (at least REARM_MIN): re-arming every
 * waiting connection when a few buffers came back would only have most of them stopped
 * again, at a cost that grows with the square of their number. all: every one (a quit). */
#define REARM_MIN 16u
static void rearm_waiting(weft__loop *loop, bool all)
{
    ur_state *s = loop->be_state;
    uint32_t budget = s->returned * (s->caps.inc ? 4u : 1u);
    if (budget < REARM_MIN)
        budget = REARM_MIN;
    s->returned = 0;
    while (s->rearm_head != NULL && (all || budget > 0)) {
        weft_conn *c = s->rearm_head;
        ur_conn *u = weft__uring_conn(c);
        s->rearm_head = u->rearm_next;
        if (s->rearm_head == NULL)
            s->rearm_tail = NULL;
        u->bits &= (uint16_t)~ON_REARM;
        u->rearm_next = NULL;
        if ((u->bits & (WANT_READ | CLOSED | RECV_ARMED)) == WANT_READ && !s->draining) {
            arm_recv(c, false);
            budget--;
        }
        op_done(s, c);
    }
}

/* Collects what completed, in batches; returns how many. */
static int reap(weft__loop *loop)
{
    ur_state *s = loop->be_state;
    int total = 0;
    for (;;) {
        struct io_uring_cqe *cqes[CQE_BATCH];
        unsigned n = io_uring_peek_batch_cqe(&s->ring, cqes, CQE_BATCH);
        if (n == 0)
            break;
        for (unsigned i = 0; i < n; i++)
            complete(loop, cqes[i]);
        io_uring_cq_advance(&s->ring, n);
        total += (int)n;
        if (n < CQE_BATCH)
            break;
    }
    if (s->dgram_seen) {
        s->dgram_seen = false;
        weft__dgram_recv_end(loop);
    }
    WEFT__STAT_ADD(loop->stats.completions, total);
    return total;
}

/* Submits what waits and waits at most timeout_ms (-1: for ever, 0: not at all) for a
 * completion. 0 or a negative WEFT_E* code. */
static int submit_wait(weft__loop *loop, int timeout_ms)
{
    ur_state *s = loop->be_state;
    unsigned n = io_uring_sq_ready(&s->ring);
    int rc;
    if (timeout_ms == 0 || io_uring_cq_ready(&s->ring) > 0) {
        rc = io_uring_submit_and_get_events(&s->ring);
    } else {
        struct __kernel_timespec ts = {timeout_ms / 1000, (long long)(timeout_ms % 1000) * 1000000};
        struct io_uring_cqe *cqe;
        rc = io_uring_submit_and_wait_timeout(&s->ring, &cqe, 1, timeout_ms > 0 ? &ts : NULL, NULL);
    }
    if (rc >= 0 || rc == -ETIME || rc == -EINTR || rc == -EBUSY || rc == -EAGAIN) {
        WEFT__STAT_ADD(loop->stats.submissions, n - io_uring_sq_ready(&s->ring));
        return 0;
    }
    return rc;
}

static int ur_poll(weft__loop *loop, int timeout_ms)
{
    ur_state *s = loop->be_state;
    if (!s->ring_ok)
        return WEFT_ENOBACKEND;
    if (s->dgram_rearm)
        weft__uring_dgram_rearm(loop);
    if (s->rearm_head != NULL) {
        rearm_waiting(loop, false);
        if (s->rearm_head != NULL && (timeout_ms < 0 || timeout_ms > 1))
            timeout_ms = 1; /* more wait their turn: do not sleep on them */
    }
    int rc = submit_wait(loop, timeout_ms);
    if (rc < 0)
        return rc;
    s->delivered = reap(loop);
    return s->delivered;
}

static void ur_listener_stop(weft__loop *loop, weft__listener *l);

static void ur_loop_quit(weft__loop *loop)
{
    ur_state *s = loop->be_state;
    if (s == NULL || !s->ring_ok)
        return;
    s->draining = true;
    if (s->wake_armed)
        cancel(loop, loop, OP_WAKE);
    for (size_t i = 0; i < loop->nlisteners; i++)
        ur_listener_stop(loop, loop->listeners[i]);
    if (s->rearm_head != NULL)
        rearm_waiting(loop, true);
    /* Every connection closed and cancelled what it had in flight: wait for the kernel to
     * say so. A kernel that never answers must not hang the engine's stop for ever. */
    int waits = 0;
    while (s->inflight > 0 && waits < DRAIN_MAX_WAITS) {
        uint64_t before = s->inflight;
        if (submit_wait(loop, DRAIN_WAIT_MS) < 0)
            break;
        (void)reap(loop);
        waits = s->inflight < before ? 0 : waits + 1;
    }
    if (s->inflight > 0)
        weft__log(loop->engine, WEFT_LOG_ERROR,
                  "loop %u: %llu io_uring operations still in flight at exit", loop->index,
                  (unsigned long long)s->inflight);
    /* The ring goes down on the thread that ran it: torn down from another thread, its last
     * task work could be queued to that thread and interrupt its next blocking call
     * (EINTR), which is the program's own. */
    if (s->inflight == 0) {
        io_uring_queue_exit(&s->ring);
        s->ring_ok = false;
    }
}

/* ---- connections ---- */

static int ur_conn_open(weft_conn *c)
{
    ur_state *s = c->loop->be_state;
    ur_conn *u = weft__uring_conn(c);
    memset(u, 0, sizeof(ur_conn));
    u->bits = ONE_SHOT;
    if (s->zc_min > 0) { /* only TCP sends zero-copy (a Unix socket refuses it) */
        int domain = 0;
        socklen_t len = sizeof(domain);
        if (getsockopt(c->fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0 ||
            (domain != AF_INET && domain != AF_INET6))
            u->bits |= ZC_COPIED;
    }
    return 0;
}

static void ur_conn_want(weft_conn *c, bool read, bool write)
{
    ur_conn *u = weft__uring_conn(c);
    if (c->flags & CONN_DGRAM)
        return; /* its listener's poll reads it */
    if (read)
        u->bits |= WANT_READ;
    else
        u->bits &= (uint16_t)~WANT_READ;
    if (read && !(u->bits & (RECV_ARMED | ON_REARM))) {
        arm_recv(c, false);
    } else if (!read && (u->bits & (RECV_ARMED | RECV_CANCEL)) == RECV_ARMED) {
        /* Now, not with the next wait: every receive until the cancel is seen brings bytes
         * c must then hold (a readiness backend would leave them in the socket). A
         * connection that pauses once may well pause again: from now on it has one receive
         * at a time, so a pause holds at most one buffer more, as a readiness backend's one
         * read. */
        cancel(c->loop, c, OP_RECV);
        u->bits |= RECV_CANCEL | ONE_SHOT | PAUSED_ONCE;
        submit_now(c->loop);
    }
    /* Output is the queue's business here; only a connect waits for POLLOUT. */
    if (write && (c->flags & CONN_CONNECTING) && !(u->bits & POLLOUT_ARMED))
        arm_pollout(c);
}

/* A descriptor from the loop's free list or a new one; NULL without memory. */
static ur_send *get_send(ur_state *s)
{
    ur_send *d = s->free_sends;
    if (d != NULL) {
        s->free_sends = d->next;
        s->nfree_sends--;
        return d;
    }
    return malloc(sizeof(*d));
}

static ssize_t ur_conn_send(weft_conn *c, const struct iovec *iov, int iovcnt)
{
    weft__loop *loop = c->loop;
    ur_state *s = loop->be_state;
    ur_conn *u = weft__uring_conn(c);
    if (iovcnt > SEND_IOV)
        iovcnt = SEND_IOV; /* the rest goes once this completed */
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    ur_zc *z = NULL;
    if (s->zc_min > 0 && total >= s->zc_min && !(u->bits & ZC_COPIED))
        z = zc_get(s, c);
    bool zc = z != NULL && z->n < ZC_HELD_MAX;
    ur_send *d = NULL;
    if (iovcnt > 1 || zc) {
        d = get_send(s);
        if (d == NULL) {
            iovcnt = 1; /* no memory for a vector: one buffer at a time, copied */
            zc = false;
        }
    }
    struct io_uring_sqe *sqe = get_sqe(loop);
    if (sqe == NULL) {
        free(d);
        return WEFT_ENOMEM;
    }
    if (d != NULL) {
        memcpy(d->iov, iov, (size_t)iovcnt * sizeof(*iov));
        memset(&d->mh, 0, sizeof(d->mh));
        d->mh.msg_iov = d->iov;
        d->mh.msg_iovlen = (size_t)iovcnt;
    }
    if (zc) {
        if (iovcnt > 1)
            io_uring_prep_sendmsg_zc(sqe, c->fd, &d->mh, MSG_NOSIGNAL);
        else
            io_uring_prep_send_zc(sqe, c->fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL, 0);
        if (s->caps.zc_usage)
            sqe->ioprio |= IORING_SEND_ZC_REPORT_USAGE; /* the zero-copy flags' field */
        sqe->user_data = tag(d, OP_SEND_ZC);
        d->next = NULL;
        d->c = c;
        memset(&d->held, 0, sizeof(d->held));
        d->held_bytes = 0;
        d->let_go = false;
        if (z->tail != NULL)
            z->tail->next = d;
        else
            z->head = d;
        z->tail = d;
        z->n++;
        u->bits |= SEND_ZC;
        WEFT__STAT_ADD(loop->stats.zc_sends, 1);
    } else if (d != NULL) {
        io_uring_prep_sendmsg(sqe, c->fd, &d->mh, MSG_NOSIGNAL);
        sqe->user_data = tag(c, OP_SEND);
    } else {
        io_uring_prep_send(sqe, c->fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL);
        sqe->user_data = tag(c, OP_SEND);
    }
    u->send = d;
    u->bits |= SEND_BUSY;
    count_op(s, u);
    return 0;
}

static bool ur_conn_close(weft_conn *c)
{
    weft__loop *loop = c->loop;
    ur_conn *u = weft__uring_conn(c);
    u->bits |= CLOSED;
    u->bits &= (uint16_t)~WANT_READ;
    if ((u->bits & (RECV_ARMED | RECV_CANCEL)) == RECV_ARMED)
        cancel(loop, c, OP_RECV);
    if (u->bits & POLLOUT_ARMED)
        cancel(loop, c, OP_POLLOUT);
    /* Zero-copy bytes the kernel still holds are the loop's memory, pinned until the peer
     * acknowledges them, which a peer that stopped reading never does (the closed socket
     * goes on trying in the background). A connection closed on an error loses what it had
     * queued anyway: reset it, so the kernel drops them and its notifications come now. A
     * clean close (everything acknowledged, or the peer ended its side and reads the rest)
     * is left alone. */
    ur_zc *z = zc_find(c->loop->be_state, c);
    if (z != NULL && z->n > 0 && c->close_err < 0) {
        struct linger lg = {1, 0};
        (void)setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    if (u->bits & SEND_ZC) /* a notification follows even so: the slot waits for it */
        cancel(loop, u->send, OP_SEND_ZC);
    else if (u->bits & SEND_BUSY)
        cancel(loop, c, OP_SEND);
    /* The fd is closed next, by ur_conn_close_fd behind what this queued, or by the caller
     * at once (then what names the fd must reach the kernel first, or it would find a new
     * socket another thread got the number for). */
    ur_state *s = loop->be_state;
    if (!(s->caps.close && s->ring_ok) && u->inflight > 0)
        submit_now(loop);
    return u->inflight > 0;
}

/* The close goes with the loop's next submission, as the raw server's: no system call of
 * its own, and the socket's last release (its FIN) runs with the iteration's other work. It
 * is one of the loop's operations until it completes, so a quit waits for it. */
static bool ur_conn_close_fd(weft_conn *c)
{
    ur_state *s = c->loop->be_state;
    struct io_uring_sqe *sqe = s->caps.close ? get_sqe(c->loop) : NULL;
    if (sqe == NULL) {
        submit_now(c->loop); /* the cancels first: the caller closes it now */
        return false;
    }
    io_uring_prep_close(sqe, c->fd);
    sqe->user_data = tag(s, OP_NONE);
    count_op(s, NULL);
    return true;
}

/* ---- listeners ---- */

static int ur_listener_start(weft__loop *loop, weft__listener *l)
{
    ur_state *s = loop->be_state;
    ur_listener *u = weft__uring_listener(l);
    if (s->draining)
        return WEFT_ESHUTDOWN;
    u->bits |= L_WANT;
    if (!(u->bits & L_ARMED))
        weft__uring_arm_listener(loop, l);
    /* Armed and being cancelled: its last completion arms it again (L_WANT). */
    return 0;
}

static void ur_listener_stop(weft__loop *loop, weft__listener *l)
{
    ur_listener *u = weft__uring_listener(l);
    u->bits &= (uint8_t)~L_WANT;
    if ((u->bits & (L_ARMED | L_CANCEL)) == L_ARMED) {
        cancel(loop, l, l->type == SOCK_DGRAM ? OP_DGRAM : OP_ACCEPT);
        u->bits |= L_CANCEL;
    }
}

const weft__backend weft__backend_uring = {
    .name = "io_uring",
    .conn_bytes = sizeof(ur_conn),
    .completion = true,
    .loop_init = ur_loop_init,
    .loop_destroy = ur_loop_destroy,
    .poll = ur_poll,
    .conn_open = ur_conn_open,
    .conn_want = ur_conn_want,
    .conn_send = ur_conn_send,
    .conn_close = ur_conn_close,
    .conn_held = ur_conn_held,
    .conn_close_fd = ur_conn_close_fd,
    .listener_start = ur_listener_start,
    .listener_stop = ur_listener_stop,
    .thread_init = ring_setup,
    .loop_quit = ur_loop_quit,
};
