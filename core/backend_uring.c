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
 * recvmsg from a buffer ring of its loop's own (see "datagrams" below). The loop's wakeup is
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
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

/* Newer than Debian 12's liburing (2.3): raw values, used only where the probe found them. */
#ifndef IOU_PBUF_RING_INC
#define IOU_PBUF_RING_INC 2
#endif
#ifndef IORING_CQE_F_BUF_MORE
#define IORING_CQE_F_BUF_MORE (1U << 4)
#endif
#ifndef IORING_SEND_ZC_REPORT_USAGE
#define IORING_SEND_ZC_REPORT_USAGE (1U << 3)
#endif
#ifndef IORING_NOTIF_USAGE_ZC_COPIED
#define IORING_NOTIF_USAGE_ZC_COPIED (1U << 31)
#endif

#define SQ_ENTRIES      1024u
#define CQ_ENTRIES      8192u
#define CQE_BATCH       256u
#define BUF_GROUP       0
#define BUF_GROUP_DGRAM 1
#define SEND_IOV        64
#define SEND_DESC_KEEP  64u
#define DRAIN_WAIT_MS   1000
#define DRAIN_MAX_WAITS 10

/* What an operation is, in the low bits of its user_data (owners are 8-byte aligned). */
enum {
    OP_NONE = 0, /* a cancel: its completion, if any, is ignored */
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

/* A listener's. */
enum {
    L_ARMED = 1u << 0,
    L_CANCEL = 1u << 1,
    L_WANT = 1u << 2,
    L_MSG = 1u << 3,   /* a datagram socket armed with a multishot recvmsg (else a poll) */
    L_NOBUFS = 1u << 4 /* ... which ended for want of buffers: re-armed by the next poll */
};

/* At most this many zero-copy sends of a connection wait for their notification; past it a
 * send copies (the held chunks are bounded by what the socket's send buffer can hold). */
#define ZC_HELD_MAX 8u

/* A sendmsg's header and vector, kept until it completes; a zero-copy send's, until its
 * notification, with what it holds of the output queue. */
typedef struct ur_send {
    struct msghdr mh;
    struct iovec iov[SEND_IOV];
    struct ur_send *next; /* the free list, or the connection's zero-copy sends, oldest first */
    weft_conn *c;         /* a zero-copy send's connection */
    weft__outq held;      /* ... the chunks it (or a later send) emptied, kept until let go */
    bool let_go;          /* ... its notification came (or none will) */
} ur_send;

typedef struct ur_conn {
    ur_send *send;         /* the sendmsg in flight, if it needed one */
    ur_send *zc_head;      /* zero-copy sends not yet let go, oldest first */
    ur_send *zc_tail;      /* ... the newest, which holds what later sends empty */
    weft_conn *rearm_next; /* ON_REARM: the next connection waiting for buffers */
    uint16_t inflight;     /* operations whose last completion is still to come */
    uint16_t bits;
    uint8_t small_run; /* receives under a quarter buffer in a row */
    uint8_t zc_held;   /* entries from zc_head */
} ur_conn;

typedef struct ur_listener {
    uint8_t bits;
    /* L_MSG: the recvmsg's header, which tells the kernel the room for the sender's
     * address; the kernel reads it as the receive starts. */
    struct msghdr mh;
} ur_listener;

typedef struct ur_state {
    struct io_uring ring;
    bool ring_ok;
    bool draining;
    bool wake_armed;
    /* The provided-buffer ring: nbufs buffers of bufsz bytes; with incremental consumption
     * a buffer's next bytes land at off[bid]. */
    struct io_uring_buf_ring *br;
    size_t br_bytes;
    uint8_t *bufs;
    size_t bufs_bytes;
    uint32_t nbufs, bufsz;
    uint32_t *off;
    bool br_registered;
    /* The datagram sockets' buffer ring (made when the loop's first one is armed): dnbufs
     * buffers, each room for a recvmsg header, an address and read_buffer_size bytes. */
    struct io_uring_buf_ring *dbr;
    size_t dbr_bytes;
    uint8_t *dbufs;
    size_t dbufs_bytes;
    uint32_t dnbufs, dbufsz, dstride;
    bool dgram_failed;                  /* no ring could be made: the sockets are polled instead */
    bool dgram_rearm;                   /* a datagram socket waits for buffers (L_NOBUFS) */
    bool dgram_seen;                    /* datagrams were handed over in this reap */
    weft_conn *rearm_head, *rearm_tail; /* receives stopped for want of buffers, oldest first */
    uint32_t returned;                  /* buffers given back since the last re-arm pass */
    ur_send *free_sends;
    unsigned nfree_sends;
    uint64_t inflight; /* the loop's operations still to complete (drained on quit) */
    size_t zc_min;     /* uring_zc_min, or 0 where the kernel has no zero-copy send */
    int delivered;
} ur_state;

_Static_assert(sizeof(ur_conn) <= WEFT__BE_CONN_BYTES, "WEFT__BE_CONN_BYTES is too small");
_Static_assert(sizeof(ur_listener) <= WEFT__BE_LISTENER_BYTES,
               "WEFT__BE_LISTENER_BYTES is too small");

/* ---- the probe: once per process ---- */

static pthread_once_t probe_once = PTHREAD_ONCE_INIT;
static const char *probe_why; /* NULL: supported */
static unsigned probe_setup;  /* SINGLE_ISSUER | DEFER_TASKRUN, where the kernel has them */
static bool probe_inc;        /* incremental buffer consumption */
static bool probe_skip_cqe;   /* IOSQE_CQE_SKIP_SUCCESS */
static bool probe_zc;         /* IORING_OP_SEND_ZC and SENDMSG_ZC (Linux 6.0, 6.1) */
static bool probe_zc_usage;   /* IORING_SEND_ZC_REPORT_USAGE (Linux 6.2) */

static const char *probe_dgram_why; /* NULL: datagrams have a multishot recvmsg */
static bool dgram_multishot;        /* ... and WEFT_URING_DGRAM=multishot asks for it */

static int register_group(struct io_uring *ring, void *mem, unsigned entries, unsigned short bgid,
                          bool inc)
{
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof(reg));
    reg.ring_addr = (uint64_t)(uintptr_t)mem;
    reg.ring_entries = entries;
    reg.bgid = bgid;
    reg.pad = inc ? IOU_PBUF_RING_INC : 0; /* "flags" in newer headers */
    return io_uring_register_buf_ring(ring, &reg, 0);
}

static int register_bufs(struct io_uring *ring, void *mem, unsigned entries, bool inc)
{
    return register_group(ring, mem, entries, BUF_GROUP, inc);
}

/* Waits for the completion of the probe's operation 1, then cancels it and collects what
 * is left (the cancel's answer and the operation's last): nothing may stay in flight, or
 * the kernel would finish it later with task work on this thread. Returns whether the
 * operation answered with res >= min_res and more to come. */
static bool probe_multishot(struct io_uring *ring, int min_res)
{
    struct __kernel_timespec ts = {1, 0};
    struct io_uring_cqe *cqe = NULL;
    int rc = io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, NULL);
    bool ok = rc >= 0 && cqe != NULL && cqe->res >= min_res && (cqe->flags & IORING_CQE_F_MORE);
    if (cqe != NULL)
        io_uring_cqe_seen(ring, cqe);
    if (ok) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
        io_uring_prep_cancel64(sqe, 1, 0);
        sqe->user_data = 2;
        for (int left = 2; left > 0;) {
            cqe = NULL;
            if (io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, NULL) < 0 || cqe == NULL)
                break;
            io_uring_cqe_seen(ring, cqe);
            left--;
        }
    }
    return ok;
}

/* A multishot recvmsg on a datagram socket pair, from a buffer group of its own (Linux 6.0,
 * as the multishot receive; a filter may still refuse the one and not the other). */
static const char *probe_dgram(struct io_uring *ring)
{
    long page = sysconf(_SC_PAGESIZE);
    void *mem =
        mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return "no memory for the probe";
    const char *why = NULL;
    int sv[2] = {-1, -1};
    uint8_t buf[256];
    if (register_group(ring, mem, 8, BUF_GROUP_DGRAM, false) != 0) {
        why = "no buffer group for datagrams";
        goto out;
    }
    struct io_uring_buf_ring *br = mem;
    io_uring_buf_ring_init(br);
    io_uring_buf_ring_add(br, buf, sizeof(buf), 0, io_uring_buf_ring_mask(8), 0);
    io_uring_buf_ring_advance(br, 1);
    if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
        why = "no socket pair for the probe";
        goto unregister;
    }
    struct msghdr mh;
    memset(&mh, 0, sizeof(mh));
    mh.msg_namelen = sizeof(struct sockaddr_storage);
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    io_uring_prep_recvmsg_multishot(sqe, sv[0], &mh, MSG_TRUNC);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BUF_GROUP_DGRAM;
    sqe->user_data = 1;
    if (write(sv[1], "x", 1) != 1) {
        why = "the probe's socket pair failed";
        goto unregister;
    }
    if (!probe_multishot(ring, (int)(sizeof(struct io_uring_recvmsg_out) + mh.msg_namelen + 1)))
        why = "the kernel has no multishot recvmsg";
unregister:
    if (sv[0] >= 0) {
        close(sv[0]);
        close(sv[1]);
    }
    (void)io_uring_unregister_buf_ring(ring, BUF_GROUP_DGRAM);
out:
    munmap(mem, (size_t)page);
    return why;
}

/* A multishot receive on a socket pair, from a provided buffer: the one thing a kernel
 * before 6.0, or a filter in a container, is most likely to refuse. */
static const char *probe_recv(struct io_uring *ring)
{
    long page = sysconf(_SC_PAGESIZE);
    void *mem =
        mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return "no memory for the probe";
    const char *why = NULL;
    int sv[2] = {-1, -1};
    uint8_t buf[64];
    probe_inc = register_bufs(ring, mem, 8, true) == 0;
    if (!probe_inc && register_bufs(ring, mem, 8, false) != 0) {
        why = "the kernel has no provided-buffer rings (Linux 5.19)";
        goto out;
    }
    struct io_uring_buf_ring *br = mem;
    io_uring_buf_ring_init(br);
    io_uring_buf_ring_add(br, buf, sizeof(buf), 0, io_uring_buf_ring_mask(8), 0);
    io_uring_buf_ring_advance(br, 1);
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
        why = "no socket pair for the probe";
        goto unregister;
    }
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    io_uring_prep_recv_multishot(sqe, sv[0], NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BUF_GROUP;
    sqe->user_data = 1;
    if (write(sv[1], "x", 1) != 1) {
        why = "the probe's socket pair failed";
        goto unregister;
    }
    struct __kernel_timespec ts = {1, 0};
    struct io_uring_cqe *cqe = NULL;
    int rc = io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, NULL);
    if (rc < 0 || cqe == NULL || cqe->res != 1 || !(cqe->flags & IORING_CQE_F_MORE))
        why = "the kernel has no multishot receive (Linux 6.0)";
    if (cqe != NULL)
        io_uring_cqe_seen(ring, cqe);
    /* Nothing may stay in flight: the kernel would finish it later with task work on this
     * thread, which can interrupt the caller's next blocking call with EINTR. */
    if (why == NULL) {
        sqe = io_uring_get_sqe(ring);
        io_uring_prep_cancel64(sqe, 1, 0);
        sqe->user_data = 2;
        for (int left = 2; left > 0;) { /* the cancel's answer and the receive's last */
            cqe = NULL;
            if (io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, NULL) < 0 || cqe == NULL)
                break;
            io_uring_cqe_seen(ring, cqe);
            left--;
        }
    }
unregister:
    if (sv[0] >= 0) {
        close(sv[0]);
        close(sv[1]);
    }
    (void)io_uring_unregister_buf_ring(ring, BUF_GROUP);
out:
    munmap(mem, (size_t)page);
    return why;
}

/* Whether a zero-copy send takes IORING_SEND_ZC_REPORT_USAGE: a kernel that does not know
 * the flag refuses the request (EINVAL) before it looks at the socket, one that does fails
 * it for the bad descriptor. */
static bool probe_usage(struct io_uring *ring)
{
    static char byte;
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    if (sqe == NULL)
        return false;
    io_uring_prep_send_zc(sqe, -1, &byte, 1, 0, IORING_SEND_ZC_REPORT_USAGE);
    sqe->user_data = 3; /* the receive probe's were 1 and 2 */
    bool known = false, first = true, more = true;
    for (int i = 0; i < 4 && more; i++) { /* the result, then the notification if MORE */
        struct __kernel_timespec ts = {1, 0};
        struct io_uring_cqe *cqe = NULL;
        if (io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, NULL) < 0 || cqe == NULL)
            break;
        if (cqe->user_data == 3) {
            if (first)
                known = cqe->res != -EINVAL;
            more = first && (cqe->flags & IORING_CQE_F_MORE) != 0;
            first = false;
        }
        io_uring_cqe_seen(ring, cqe);
    }
    return known;
}

static void probe(void)
{
    struct io_uring ring;
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    int rc = io_uring_queue_init_params(8, &ring, &p);
    if (rc == -EINVAL) { /* before Linux 6.1 */
        memset(&p, 0, sizeof(p));
        rc = io_uring_queue_init_params(8, &ring, &p);
    }
    if (rc < 0) {
        probe_why = rc == -ENOSYS  ? "the kernel has no io_uring, or a seccomp filter blocks it"
                    : rc == -EPERM ? "io_uring is not permitted (kernel.io_uring_disabled, or a "
                                     "seccomp filter)"
                                   : "io_uring_setup failed";
        return;
    }
    probe_setup = p.flags & (IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN);
    probe_skip_cqe = (p.features & IORING_FEAT_CQE_SKIP) != 0;
    if (!(p.features & IORING_FEAT_EXT_ARG) || !(p.features & IORING_FEAT_NODROP) ||
        !(p.features & IORING_FEAT_FAST_POLL)) {
        probe_why = "the kernel's io_uring is too old (Linux 6.0 is needed)";
        goto out;
    }
    struct io_uring_probe *pr = io_uring_get_probe_ring(&ring);
    static const int ops[] = {IORING_OP_RECV,   IORING_OP_SEND,     IORING_OP_SENDMSG,
                              IORING_OP_ACCEPT, IORING_OP_POLL_ADD, IORING_OP_ASYNC_CANCEL};
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]) && probe_why == NULL; i++) {
        if (pr == NULL || !io_uring_opcode_supported(pr, ops[i]))
            probe_why = "the kernel's io_uring lacks an operation weft uses (Linux 6.0 is needed)";
    }
    probe_zc = pr != NULL && io_uring_opcode_supported(pr, IORING_OP_SEND_ZC) &&
               io_uring_opcode_supported(pr, IORING_OP_SENDMSG_ZC);
    if (pr != NULL)
        io_uring_free_probe(pr);
    if (probe_why == NULL)
        probe_why = probe_recv(&ring);
    if (probe_why == NULL && probe_zc)
        probe_zc_usage = probe_usage(&ring);
    if (probe_why == NULL)
        probe_dgram_why = probe_dgram(&ring);
    const char *env = getenv("WEFT_URING_DGRAM");
    dgram_multishot = env != NULL && strcmp(env, "multishot") == 0;
out:
    io_uring_queue_exit(&ring);
}

static void *probe_thread(void *arg)
{
    (void)arg;
    probe();
    return NULL;
}

/* The probe runs on a thread of its own: a ring's teardown can leave task work for the
 * thread that ran it (with DEFER_TASKRUN, moved over as the ring exits), and that interrupts
 * the thread's next blocking call with EINTR. Here that thread is gone by then. */
static void probe_once_fn(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, probe_thread, NULL) != 0) {
        probe_why = "no thread for the io_uring probe";
        return;
    }
    pthread_join(t, NULL);
}

bool weft__uring_supported(const char **why)
{
    pthread_once(&probe_once, probe_once_fn);
    if (why != NULL)
        *why = probe_why;
    return probe_why == NULL;
}

/* ---- submissions ---- */

static ur_conn *conn_state(weft_conn *c)
{
    return (ur_conn *)(void *)c->be;
}

static ur_listener *listener_state(weft__listener *l)
{
    return (ur_listener *)(void *)l->be;
}

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
    struct io_uring_sqe *sqe = get_sqe(loop);
    if (sqe == NULL)
        return;
    io_uring_prep_cancel64(sqe, tag(owner, op), 0);
    sqe->user_data = tag(NULL, OP_NONE);
    if (probe_skip_cqe)
        sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
}

/* One more operation on c (or, for c NULL, on the loop) to wait for. */
static void count_op(ur_state *s, ur_conn *u)
{
    s->inflight++;
    if (u != NULL)
        u->inflight++;
}

static void arm_recv(weft_conn *c)
{
    weft__loop *loop = c->loop;
    ur_state *s = loop->be_state;
    ur_conn *u = conn_state(c);
    struct io_uring_sqe *sqe = get_sqe(loop);
    if (sqe == NULL)
        return; /* no room even after submitting: the ring failed, poll says so */
    if (u->bits & ONE_SHOT)
        io_uring_prep_recv(sqe, c->fd, NULL, 0, 0);
    else
        io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
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
    ur_conn *u = conn_state(c);
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

static bool dgram_bufs_ready(weft__loop *loop);

static void arm_listener(weft__loop *loop, weft__listener *l)
{
    ur_listener *u = listener_state(l);
    bool msg = l->type == SOCK_DGRAM && dgram_bufs_ready(loop);
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

/* ---- datagrams ----
 *
 * Read on readiness by default: on a loaded two-core machine (benchmarks/udp.sh, Linux
 * 6.18) the multishot recvmsg below took some 10% more server CPU per echoed datagram than
 * a poll and recvmmsg, at about the same datagrams/s, so it is there for kernels and loads
 * where it wins (WEFT_URING_DGRAM=multishot), not the default.
 *
 * A datagram socket's multishot recvmsg takes its buffers from a ring of its loop's own,
 * not from the stream receives': a buffer must hold the recvmsg header and the sender's
 * address before the datagram, so that a datagram as large as the read buffer still fits
 * (and one byte more is cut and dropped, as on epoll), and the kernel must never fill
 * one piece by piece (IOU_PBUF_RING_INC), since each datagram comes with a header of its
 * own. A buffer is handed to weft__dgram_recv and given back as soon as that returns, so
 * when all are out (ENOBUFS: the datagram stays in the socket) they are back by the next
 * poll, which arms the socket again. The ring has as many buffers as the stream one
 * (uring_buffers); it is made when the loop's first datagram socket is armed, mapped so
 * that only the pages datagrams touch become resident. */

static void free_dgram_bufs(ur_state *s)
{
    if (s->dbr != NULL)
        munmap(s->dbr, s->dbr_bytes);
    if (s->dbufs != NULL)
        munmap(s->dbufs, s->dbufs_bytes);
    s->dbr = NULL;
    s->dbufs = NULL;
}

static void dgram_give_back(ur_state *s, unsigned bid)
{
    io_uring_buf_ring_add(s->dbr, s->dbufs + (size_t)bid * s->dstride, s->dbufsz,
                          (unsigned short)bid, io_uring_buf_ring_mask(s->dnbufs), 0);
    io_uring_buf_ring_advance(s->dbr, 1);
}

/* Whether the loop's datagram sockets have a multishot recvmsg: it was asked for, the kernel
 * has it and the buffer ring is there (made now if not). */
static bool dgram_bufs_ready(weft__loop *loop)
{
    ur_state *s = loop->be_state;
    if (s->dbr != NULL)
        return true;
    if (!dgram_multishot || s->dgram_failed || !s->ring_ok || loop->rbuf_size == 0)
        return false;
    if (probe_dgram_why != NULL) {
        weft__log(loop->engine, WEFT_LOG_WARN,
                  "loop %u: WEFT_URING_DGRAM=multishot, but %s; datagrams are read on readiness",
                  loop->index, probe_dgram_why);
        s->dgram_failed = true;
        return false;
    }
    size_t room =
        sizeof(struct io_uring_recvmsg_out) + sizeof(struct sockaddr_storage) + loop->rbuf_size;
    long page = sysconf(_SC_PAGESIZE);
    s->dnbufs = loop->engine->cfg.uring_buffers != 0 ? loop->engine->cfg.uring_buffers : 64u;
    s->dbufsz = (uint32_t)room;
    s->dstride = (uint32_t)((room + 63u) & ~(size_t)63u);
    s->dbr_bytes =
        ((size_t)s->dnbufs * sizeof(struct io_uring_buf) + (size_t)page - 1) & ~((size_t)page - 1);
    s->dbufs_bytes = (size_t)s->dnbufs * s->dstride;
    s->dbr = mmap(NULL, s->dbr_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    s->dbufs = mmap(NULL, s->dbufs_bytes, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (s->dbr == MAP_FAILED)
        s->dbr = NULL;
    if (s->dbufs == MAP_FAILED)
        s->dbufs = NULL;
    int rc = WEFT_ENOMEM;
    if (s->dbr != NULL && s->dbufs != NULL) {
        io_uring_buf_ring_init(s->dbr);
        for (uint32_t i = 0; i < s->dnbufs; i++)
            io_uring_buf_ring_add(s->dbr, s->dbufs + (size_t)i * s->dstride, s->dbufsz,
                                  (unsigned short)i, io_uring_buf_ring_mask(s->dnbufs), (int)i);
        io_uring_buf_ring_advance(s->dbr, (int)s->dnbufs);
        rc = register_group(&s->ring, s->dbr, s->dnbufs, BUF_GROUP_DGRAM, false);
        if (rc == 0)
            return true;
    }
    weft__log(loop->engine, WEFT_LOG_WARN,
              "loop %u: no buffer ring for datagrams (%s); they are read on readiness", loop->index,
              weft_strerror(rc));
    free_dgram_bufs(s);
    s->dgram_failed = true;
    return false;
}

static void on_dgram_msg(weft__loop *loop, weft__listener *l, const struct io_uring_cqe *cqe)
{
    ur_state *s = loop->be_state;
    ur_listener *u = listener_state(l);
    bool more = (cqe->flags & IORING_CQE_F_MORE) != 0;
    int res = cqe->res;
    if (!more) {
        u->bits &= (uint8_t) ~(L_ARMED | L_CANCEL);
        s->inflight--;
    }
    if (cqe->flags & IORING_CQE_F_BUFFER) {
        unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
        uint8_t *buf = s->dbufs + (size_t)bid * s->dstride;
        struct io_uring_recvmsg_out *o = io_uring_recvmsg_validate(buf, res, &u->mh);
        if (o != NULL && (u->bits & L_WANT) && !s->draining) {
            socklen_t nl = o->namelen < u->mh.msg_namelen ? o->namelen : u->mh.msg_namelen;
            bool cut = (o->flags & MSG_TRUNC) != 0;
            size_t n = cut ? o->payloadlen : io_uring_recvmsg_payload_length(o, res, &u->mh);
            weft__dgram_recv(l, io_uring_recvmsg_payload(o, &u->mh), n, cut,
                             io_uring_recvmsg_name(o), nl);
            s->dgram_seen = true;
        }
        dgram_give_back(s, bid);
    }
    if (res == -ENOBUFS) {
        WEFT__STAT_ADD(loop->stats.exhaustions, 1);
        u->bits |= L_NOBUFS;
        s->dgram_rearm = true;
        return;
    }
    if (res < 0 && res != -ECANCELED && !s->draining)
        weft__log(loop->engine, WEFT_LOG_WARN, "recvmsg on %s: %s", l->url, weft_strerror(res));
    /* Ended by the kernel's choice or by an error (read once, as recvmmsg would): go on. */
    if (!more && (u->bits & L_WANT) && !(u->bits & L_ARMED) && !s->draining)
        arm_listener(loop, l);
}

/* Datagram sockets that ran out of buffers are armed again: every buffer this reap saw is
 * back, and the datagrams wait in their sockets. */
static void dgram_rearm(weft__loop *loop)
{
    ur_state *s = loop->be_state;
    s->dgram_rearm = false;
    for (size_t i = 0; i < loop->nlisteners; i++) {
        weft__listener *l = loop->listeners[i];
        ur_listener *u = listener_state(l);
        if (!(u->bits & L_NOBUFS))
            continue;
        u->bits &= (uint8_t)~L_NOBUFS;
        if ((u->bits & (L_WANT | L_ARMED)) == L_WANT && !s->draining)
            arm_listener(loop, l);
    }
}

static int ur_loop_init(weft__loop *loop)
{
    if (!weft__uring_supported(NULL))
        return WEFT_ENOBACKEND;
    ur_state *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return WEFT_ENOMEM;
    loop->be_state = s;
    s->zc_min = probe_zc ? loop->engine->cfg.uring_zc_min : 0;
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
    p.flags = IORING_SETUP_CQSIZE | probe_setup;
    p.cq_entries = CQ_ENTRIES;
    int rc = io_uring_queue_init_params(SQ_ENTRIES, &s->ring, &p);
    if (rc < 0)
        return rc == -ENOMEM ? WEFT_ENOMEM : rc;
    s->ring_ok = true;
    if (s->br != NULL) {
        rc = register_bufs(&s->ring, s->br, s->nbufs, probe_inc);
        if (rc != 0)
            return rc;
        s->br_registered = true;
    }
    arm_wake(loop);
    for (size_t i = 0; i < loop->nlisteners; i++) { /* started before the ring was there */
        weft__listener *l = loop->listeners[i];
        if ((listener_state(l)->bits & (L_WANT | L_ARMED)) == L_WANT)
            arm_listener(loop, l);
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
    free_dgram_bufs(s);
    while (s->free_sends != NULL) {
        ur_send *d = s->free_sends;
        s->free_sends = d->next;
        free(d);
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
    ur_conn *u = conn_state(c);
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
    ur_conn *u = conn_state(c);
    int res = cqe->res;
    const uint8_t *data = NULL;
    int bid = -1;
    if (cqe->flags & IORING_CQE_F_BUFFER) {
        bid = (int)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        data = s->bufs + (size_t)bid * s->bufsz + s->off[bid];
        if (probe_inc && (cqe->flags & IORING_CQE_F_BUF_MORE) && res > 0) {
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
                    conn_state(s->rearm_tail)->rearm_next = c;
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
            arm_recv(c);
    }
    if (bid >= 0)
        give_back(s, (unsigned)bid);
    if (!more)
        op_done(s, c);
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
    ur_conn *u = conn_state(c);
    u->bits &= (uint16_t)~SEND_BUSY;
    if (u->send != NULL) {
        put_send(s, u->send);
        u->send = NULL;
    }
    if (!(u->bits & CLOSED)) {
        ssize_t n = res == -EAGAIN || res == -EINTR ? 0 : res;
        if (u->zc_tail != NULL) /* an earlier zero-copy send may still read what this empties */
            weft__conn_sent_held(c, n, &u->zc_tail->held);
        else
            weft__conn_sent(c, n);
    }
    op_done(s, c);
}

/* Lets go of c's zero-copy sends from the oldest on, as far as their notifications came:
 * their held chunks go back, and each one's count. */
static void zc_let_go(ur_state *s, weft_conn *c)
{
    ur_conn *u = conn_state(c);
    unsigned done = 0;
    while (u->zc_head != NULL && u->zc_head->let_go) {
        ur_send *d = u->zc_head;
        u->zc_head = d->next;
        if (u->zc_head == NULL)
            u->zc_tail = NULL;
        u->zc_held--;
        weft__conn_held_release(c, &d->held);
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
    ur_conn *u = conn_state(c);
    if (cqe->flags & IORING_CQE_F_NOTIF) {
        /* Where the kernel had to copy (loopback, a device without scatter-gather), zero
         * copy only costs more: this connection copies from now on. */
        if (probe_zc_usage && ((uint32_t)cqe->res & IORING_NOTIF_USAGE_ZC_COPIED) &&
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
        weft__conn_sent_held(c, res == -EAGAIN || res == -EINTR ? 0 : res, &u->zc_tail->held);
    }
    if (d->let_go)
        zc_let_go(s, c);
}

static void on_pollout(weft__loop *loop, weft_conn *c)
{
    ur_conn *u = conn_state(c);
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
    ur_listener *u = listener_state(l);
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
        arm_listener(loop, l);
}

static void on_dgram(weft__loop *loop, weft__listener *l, int res)
{
    ur_state *s = loop->be_state;
    ur_listener *u = listener_state(l);
    u->bits &= (uint8_t) ~(L_ARMED | L_CANCEL);
    s->inflight--;
    if (res >= 0 && (u->bits & L_WANT) && !s->draining) {
        weft__dgram_ready(l);
        if ((u->bits & L_WANT) && !(u->bits & L_ARMED))
            arm_listener(loop, l); /* one-shot: level-triggered, as recvmmsg leaves the rest */
    }
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
        if (listener_state(owner)->bits & L_MSG)
            on_dgram_msg(loop, owner, cqe);
        else
            on_dgram(loop, owner, cqe->res);
        break;
    case OP_WAKE:
        on_wake(loop);
        break;
    case OP_SEND_ZC:
        on_send_zc(loop, owner, cqe);
        break;
    default: /* a cancel's own result */
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
    uint32_t budget = s->returned * (probe_inc ? 4u : 1u);
    if (budget < REARM_MIN)
        budget = REARM_MIN;
    s->returned = 0;
    while (s->rearm_head != NULL && (all || budget > 0)) {
        weft_conn *c = s->rearm_head;
        ur_conn *u = conn_state(c);
        s->rearm_head = u->rearm_next;
        if (s->rearm_head == NULL)
            s->rearm_tail = NULL;
        u->bits &= (uint16_t)~ON_REARM;
        u->rearm_next = NULL;
        if ((u->bits & (WANT_READ | CLOSED | RECV_ARMED)) == WANT_READ && !s->draining) {
            arm_recv(c);
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
        dgram_rearm(loop);
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
    ur_conn *u = conn_state(c);
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
    ur_conn *u = conn_state(c);
    if (c->flags & CONN_DGRAM)
        return; /* its listener's poll reads it */
    if (read)
        u->bits |= WANT_READ;
    else
        u->bits &= (uint16_t)~WANT_READ;
    if (read && !(u->bits & (RECV_ARMED | ON_REARM))) {
        arm_recv(c);
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
    ur_conn *u = conn_state(c);
    if (iovcnt > SEND_IOV)
        iovcnt = SEND_IOV; /* the rest goes once this completed */
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    bool zc =
        s->zc_min > 0 && total >= s->zc_min && u->zc_held < ZC_HELD_MAX && !(u->bits & ZC_COPIED);
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
        if (probe_zc_usage)
            sqe->ioprio |= IORING_SEND_ZC_REPORT_USAGE; /* the zero-copy flags' field */
        sqe->user_data = tag(d, OP_SEND_ZC);
        d->next = NULL;
        d->c = c;
        memset(&d->held, 0, sizeof(d->held));
        d->let_go = false;
        if (u->zc_tail != NULL)
            u->zc_tail->next = d;
        else
            u->zc_head = d;
        u->zc_tail = d;
        u->zc_held++;
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
    ur_conn *u = conn_state(c);
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
    if (u->zc_held > 0 && c->close_err < 0) {
        struct linger lg = {1, 0};
        (void)setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    if (u->bits & SEND_ZC) /* a notification follows even so: the slot waits for it */
        cancel(loop, u->send, OP_SEND_ZC);
    else if (u->bits & SEND_BUSY)
        cancel(loop, c, OP_SEND);
    /* The caller closes the fd next, and another thread may get its number at once: what
     * names it must reach the kernel first, or it would find the new socket. Nothing does
     * when no operation on it is queued or in flight (the peer's EOF ended the last
     * receive, as in a short request/answer connection): then the close costs no
     * submission of its own, and what is queued waits for the loop's one per iteration. */
    if (u->inflight == 0)
        return false;
    submit_now(loop);
    return true;
}

/* ---- listeners ---- */

static int ur_listener_start(weft__loop *loop, weft__listener *l)
{
    ur_state *s = loop->be_state;
    ur_listener *u = listener_state(l);
    if (s->draining)
        return WEFT_ESHUTDOWN;
    u->bits |= L_WANT;
    if (!(u->bits & L_ARMED))
        arm_listener(loop, l);
    /* Armed and being cancelled: its last completion arms it again (L_WANT). */
    return 0;
}

static void ur_listener_stop(weft__loop *loop, weft__listener *l)
{
    ur_listener *u = listener_state(l);
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
    .listener_start = ur_listener_start,
    .listener_stop = ur_listener_stop,
    .thread_init = ring_setup,
    .loop_quit = ur_loop_quit,
};
