/* The raw io_uring echo server: the machine's limit for a completion server, next to
 * ref_epoll_echo's limit for a readiness one.
 *
 * One thread, one ring (SINGLE_ISSUER + DEFER_TASKRUN where the kernel has them), one
 * multishot accept, and one multishot recv per connection that takes its buffers from a
 * shared provided-buffer ring: a connection owns no buffer while it is idle. Received bytes
 * are sent back from the very buffer the kernel filled, so an echo is never copied; the
 * buffer goes back to the ring when its last byte is sent. A connection has at most one send
 * in flight (two sends on one socket may complete out of order); what arrives meanwhile
 * queues behind it, and each loop iteration sends every connection's queue as one send or
 * sendmsg, all submitted together with the next wait. A short send is resubmitted from where
 * it stopped. When the buffer ring runs dry (ENOBUFS ends a multishot recv) the connection
 * waits on a list and its recv is armed again once buffers have come back, never in a busy
 * loop.
 *
 *   ref_uring_echo --port PORT [--host ADDR] | --unix PATH
 *
 * Prints nothing per connection; SIGINT or SIGTERM stops it.
 */
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "bench_util.h"

#define BUF_SIZE (16u * 1024u) /* one 16 KiB message fits one buffer */
#ifndef BUF_COUNT
/* A power of two. The kernel takes buffers from the ring's head and we give them back at its
 * tail, so every buffer in the ring is reused in turn: the ring's size is the working set
 * recv copies into. 256 x 16 KiB costs fewer cache misses than 1,024 and is still far more
 * than the cases need in flight; running dry is handled (ENOBUFS), not fatal. */
#define BUF_COUNT 256u
#endif
#define BGID     0
#define SQ_DEPTH 2048u
#define CQ_DEPTH 8192u
#define MAX_IOV  16 /* buffers gathered into one sendmsg */
#define NO_BUF   0xffffu

/* What a completion is for: the kind in the top byte of user_data, the fd below it. */
enum op { OP_ACCEPT = 1, OP_RECV, OP_SEND, OP_CANCEL, OP_CLOSE };

static uint64_t tag(enum op op, int fd)
{
    return (uint64_t)op << 56 | (uint32_t)fd;
}

/* A received buffer waiting to go back out: bytes [off, len) are unsent. */
struct buf {
    uint32_t off;
    uint32_t len;
    uint16_t next; /* the next buffer in its connection's queue */
};

/* One per fd. A connection is closed only when no operation on it is in flight, so a
 * completion never finds its fd reused by a newer connection. */
struct conn {
    uint16_t head, tail; /* queue of received buffers, oldest first; NO_BUF when empty */
    uint32_t inflight;   /* bytes of the send in flight; 0: none */
    bool recv_armed;     /* a multishot recv is in flight */
    bool dead;           /* the peer closed or an error came: close once idle */
    bool dirty;          /* on the send list for this iteration */
    bool starved;        /* on the starved list: recv ended with ENOBUFS */
    bool cancelling;     /* a cancel of the recv is in flight */
};

static volatile sig_atomic_t stopping;
static struct io_uring ring;
static struct io_uring_buf_ring *br;
static char *bufmem;
static struct buf bufs[BUF_COUNT];
static unsigned bufs_free;  /* buffers the kernel may pick from, counting those not yet advanced */
static unsigned bufs_added; /* buffers given back this iteration, not yet made visible */
static struct conn *conns;  /* indexed by fd */
static size_t nconns;
static int *dirty, *starved; /* fd lists, each fd at most once in each */
static size_t ndirty, nstarved;
static int lfd;
static bool accept_armed;

/* What the sendmsg calls of one submission point at. The ring was set up with
 * IORING_FEAT_SUBMIT_STABLE, so they are free again once io_uring_submit has returned. */
static struct msghdr msgs[SQ_DEPTH];
static struct iovec iovs[SQ_DEPTH][MAX_IOV];
static unsigned nmsgs;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

/* The next free SQE; submits what is queued first when the SQ is full. */
static struct io_uring_sqe *get_sqe(void)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    while (sqe == NULL) {
        io_uring_submit(&ring);
        nmsgs = 0;
        sqe = io_uring_get_sqe(&ring);
    }
    return sqe;
}

static int conn_reserve(int fd)
{
    if ((size_t)fd < nconns)
        return 0;
    size_t n = nconns ? nconns : 1024;
    while (n <= (size_t)fd)
        n *= 2;
    struct conn *c = realloc(conns, n * sizeof(*c));
    int *d = realloc(dirty, n * sizeof(*d));
    if (d)
        dirty = d;
    int *s = realloc(starved, n * sizeof(*s));
    if (s)
        starved = s;
    if (c)
        conns = c;
    if (!c || !d || !s)
        return -1;
    memset(conns + nconns, 0, (n - nconns) * sizeof(*conns));
    nconns = n;
    return 0;
}

static void buf_release(uint16_t bid)
{
    io_uring_buf_ring_add(br, bufmem + (size_t)bid * BUF_SIZE, BUF_SIZE, bid,
                          io_uring_buf_ring_mask(BUF_COUNT), (int)bufs_added);
    bufs_added++;
    bufs_free++;
}

static void arm_accept(void)
{
    struct io_uring_sqe *sqe = get_sqe();
    io_uring_prep_multishot_accept(sqe, lfd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, tag(OP_ACCEPT, lfd));
    accept_armed = true;
}

static void arm_recv(int fd)
{
    struct io_uring_sqe *sqe = get_sqe();
    io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BGID;
    io_uring_sqe_set_data64(sqe, tag(OP_RECV, fd));
    conns[fd].recv_armed = true;
}

static void mark_dirty(int fd)
{
    if (!conns[fd].dirty) {
        conns[fd].dirty = true;
        dirty[ndirty++] = fd;
    }
}

/* Closes the connection once nothing is in flight on it; cancels its recv if need be. */
static void conn_settle(int fd)
{
    struct conn *c = &conns[fd];
    if (!c->dead || c->inflight)
        return;
    if (c->recv_armed) {
        if (!c->cancelling) {
            struct io_uring_sqe *sqe = get_sqe();
            io_uring_prep_cancel64(sqe, tag(OP_RECV, fd), 0);
            io_uring_sqe_set_data64(sqe, tag(OP_CANCEL, fd));
            c->cancelling = true;
        }
        return;
    }
    if (c->dirty || c->starved)
        return; /* still on a list: settled again when the list is walked */
    for (uint16_t b = c->head; b != NO_BUF; b = bufs[b].next)
        buf_release(b);
    memset(c, 0, sizeof(*c));
    struct io_uring_sqe *sqe = get_sqe();
    io_uring_prep_close(sqe, fd);
    io_uring_sqe_set_data64(sqe, tag(OP_CLOSE, fd));
}

static void on_accept(struct io_uring_cqe *cqe)
{
    if (!(cqe->flags & IORING_CQE_F_MORE))
        accept_armed = false; /* armed again at the end of this iteration */
    int fd = cqe->res;
    if (fd < 0) {
        static bool told;
        if (fd != -ECONNABORTED && fd != -EINTR && !told) {
            fprintf(stderr, "ref_uring_echo: accept: %s\n", strerror(-fd));
            told = true;
        }
        return;
    }
    if (conn_reserve(fd) < 0) {
        close(fd);
        return;
    }
    conns[fd] = (struct conn){.head = NO_BUF, .tail = NO_BUF};
    arm_recv(fd);
}

static void on_recv(int fd, struct io_uring_cqe *cqe)
{
    struct conn *c = &conns[fd];
    if (!(cqe->flags & IORING_CQE_F_MORE))
        c->recv_armed = false;
    if (cqe->res > 0) {
        uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        bufs_free--;
        if (c->dead) {
            buf_release(bid);
        } else {
            bufs[bid] = (struct buf){.off = 0, .len = (uint32_t)cqe->res, .next = NO_BUF};
            if (c->tail == NO_BUF)
                c->head = bid;
            else
                bufs[c->tail].next = bid;
            c->tail = bid;
            if (!c->inflight)
                mark_dirty(fd);
        }
        if (!c->recv_armed && !c->dead)
            arm_recv(fd); /* ended without an error, e.g. CQ overflow: go on */
    } else if (cqe->res == -ENOBUFS) {
        /* The buffer ring ran dry and ended the recv: wait for buffers to come back. */
        if (!c->recv_armed && !c->dead && !c->starved) {
            c->starved = true;
            starved[nstarved++] = fd;
        }
    } else {
        c->dead = true; /* 0: the peer closed; or an error, or our cancel */
    }
    conn_settle(fd);
}

static void on_send(int fd, struct io_uring_cqe *cqe)
{
    struct conn *c = &conns[fd];
    c->inflight = 0;
    if (cqe->res < 0) {
        c->dead = true;
        conn_settle(fd);
        return;
    }
    /* Drop what went out from the front of the queue; a short send leaves a tail. */
    uint32_t sent = (uint32_t)cqe->res;
    while (sent > 0 && c->head != NO_BUF) {
        struct buf *b = &bufs[c->head];
        uint32_t left = b->len - b->off;
        if (sent < left) {
            b->off += sent;
            break;
        }
        sent -= left;
        uint16_t bid = c->head;
        c->head = b->next;
        if (c->head == NO_BUF)
            c->tail = NO_BUF;
        buf_release(bid);
    }
    if (c->head != NO_BUF && !c->dead)
        mark_dirty(fd);
    conn_settle(fd);
}

/* One send or sendmsg for everything queued on fd. */
static void send_queue(int fd)
{
    struct conn *c = &conns[fd];
    struct io_uring_sqe *sqe = get_sqe();
    struct buf *b = &bufs[c->head];
    if (b->next == NO_BUF) {
        c->inflight = b->len - b->off;
        io_uring_prep_send(sqe, fd, bufmem + (size_t)c->head * BUF_SIZE + b->off, c->inflight,
                           MSG_NOSIGNAL);
    } else {
        struct msghdr *m = &msgs[nmsgs];
        struct iovec *iov = iovs[nmsgs++];
        int n = 0;
        c->inflight = 0;
        for (uint16_t bid = c->head; bid != NO_BUF && n < MAX_IOV; bid = bufs[bid].next, n++) {
            iov[n].iov_base = bufmem + (size_t)bid * BUF_SIZE + bufs[bid].off;
            iov[n].iov_len = bufs[bid].len - bufs[bid].off;
            c->inflight += (uint32_t)iov[n].iov_len;
        }
        *m = (struct msghdr){.msg_iov = iov, .msg_iovlen = (size_t)n};
        io_uring_prep_sendmsg(sqe, fd, m, MSG_NOSIGNAL);
    }
    io_uring_sqe_set_data64(sqe, tag(OP_SEND, fd));
}

/* The end of an iteration: give buffers back, send what came in, re-arm the starved. */
static void flush(void)
{
    if (bufs_added) {
        io_uring_buf_ring_advance(br, (int)bufs_added);
        bufs_added = 0;
    }
    for (size_t i = 0; i < ndirty; i++) {
        int fd = dirty[i];
        struct conn *c = &conns[fd];
        c->dirty = false;
        if (!c->dead && !c->inflight && c->head != NO_BUF)
            send_queue(fd);
        conn_settle(fd);
    }
    ndirty = 0;
    /* Re-armed only as many as there are buffers to be had, oldest first: a recv that
     * failed again at once would spin. Buffers come back as sends complete, so each pass
     * makes progress. A starved connection that died meanwhile just leaves the list. */
    size_t keep = 0, grant = bufs_free;
    for (size_t i = 0; i < nstarved; i++) {
        int fd = starved[i];
        struct conn *c = &conns[fd];
        if (!c->dead && grant == 0) {
            starved[keep++] = fd;
            continue;
        }
        c->starved = false;
        if (!c->dead) {
            arm_recv(fd);
            grant--;
        }
        conn_settle(fd);
    }
    nstarved = keep;
    if (bufs_added) { /* settled connections gave theirs back */
        io_uring_buf_ring_advance(br, (int)bufs_added);
        bufs_added = 0;
    }
    if (!accept_armed && !stopping)
        arm_accept();
}

/* The ring, with the cheapest completion mode the kernel takes, and the buffer ring. */
static int ring_setup(void)
{
    static const unsigned modes[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_COOP_TASKRUN,
        0,
    };
    int rc = -EINVAL;
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]) && rc == -EINVAL; i++) {
        struct io_uring_params p = {.flags =
                                        modes[i] | IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL,
                                    .cq_entries = CQ_DEPTH};
        rc = io_uring_queue_init_params(SQ_DEPTH, &ring, &p);
        if (rc == 0 && !(p.features & IORING_FEAT_SUBMIT_STABLE)) {
            fprintf(stderr, "ref_uring_echo: the kernel lacks IORING_FEAT_SUBMIT_STABLE\n");
            io_uring_queue_exit(&ring);
            return -1;
        }
    }
    if (rc < 0) {
        fprintf(stderr, "ref_uring_echo: io_uring_queue_init: %s\n", strerror(-rc));
        return -1;
    }
    io_uring_register_ring_fd(&ring); /* fewer fd lookups per enter; optional */

    size_t brsize = BUF_COUNT * sizeof(struct io_uring_buf);
    br = mmap(NULL, brsize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    bufmem = malloc((size_t)BUF_COUNT * BUF_SIZE);
    if (br == MAP_FAILED || bufmem == NULL) {
        fprintf(stderr, "ref_uring_echo: out of memory for the buffer ring\n");
        return -1;
    }
    io_uring_buf_ring_init(br);
    struct io_uring_buf_reg reg = {
        .ring_addr = (uint64_t)(uintptr_t)br, .ring_entries = BUF_COUNT, .bgid = BGID};
    rc = io_uring_register_buf_ring(&ring, &reg, 0);
    if (rc < 0) {
        fprintf(stderr, "ref_uring_echo: io_uring_register_buf_ring: %s\n", strerror(-rc));
        return -1;
    }
    for (unsigned i = 0; i < BUF_COUNT; i++)
        buf_release((uint16_t)i);
    io_uring_buf_ring_advance(br, (int)bufs_added);
    bufs_added = 0;
    return 0;
}

int main(int argc, char **argv)
{
    const char *host, *path;
    int port;
    if (bench_server_args(argc, argv, &host, &port, &path) != 0)
        goto usage;

    bench_stop_on_signals(on_signal); /* the wait sees EINTR */

    lfd = bench_listen("ref_uring_echo", host, port, path, SOCK_CLOEXEC, true);
    if (lfd < 0 || ring_setup() < 0 || conn_reserve(lfd) < 0)
        return 1;
    arm_accept();

    while (!stopping) {
        int rc = io_uring_submit_and_wait(&ring, 1);
        nmsgs = 0;
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
            fprintf(stderr, "ref_uring_echo: io_uring_submit_and_wait: %s\n", strerror(-rc));
            return 1;
        }
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&ring, head, cqe)
        {
            seen++;
            uint64_t ud = io_uring_cqe_get_data64(cqe);
            int fd = (int)(uint32_t)ud;
            switch ((enum op)(ud >> 56)) {
            case OP_ACCEPT:
                on_accept(cqe);
                break;
            case OP_RECV:
                on_recv(fd, cqe);
                break;
            case OP_SEND:
                on_send(fd, cqe);
                break;
            case OP_CANCEL:
            case OP_CLOSE:
                break;
            }
        }
        io_uring_cq_advance(&ring, seen);
        flush();
    }

    io_uring_queue_exit(&ring); /* cancels what is in flight; the fds close with us */
    free(conns);
    free(dirty);
    free(starved);
    free(bufmem);
    close(lfd);
    if (path)
        unlink(path);
    return 0;

usage:
    fprintf(stderr, "usage: ref_uring_echo --port PORT [--host ADDR] | --unix PATH\n");
    return 2;
}
