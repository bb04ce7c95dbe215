/* weft — the io_uring backend's datagram sockets read by a multishot recvmsg
 * (WEFT_URING_DGRAM=multishot), and by a one-shot poll and recvmmsg otherwise.
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
 * that only the pages datagrams touch become resident.
 */
#include <errno.h>
#include <liburing.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backend_uring.h"

void weft__uring_dgram_free(ur_state *s)
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
bool weft__uring_dgram_bufs_ready(weft__loop *loop)
{
    ur_state *s = loop->be_state;
    if (s->dbr != NULL)
        return true;
    if (!s->caps.dgram_multishot || s->dgram_failed || !s->ring_ok || loop->rbuf_size == 0)
        return false;
    if (s->caps.dgram_why != NULL) {
        weft__log(loop->engine, WEFT_LOG_WARN,
                  "loop %u: WEFT_URING_DGRAM=multishot, but %s; datagrams are read on readiness",
                  loop->index, s->caps.dgram_why);
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
        rc = weft__uring_register_group(&s->ring, s->dbr, s->dnbufs, BUF_GROUP_DGRAM, false);
        if (rc == 0)
            return true;
    }
    weft__log(loop->engine, WEFT_LOG_WARN,
              "loop %u: no buffer ring for datagrams (%s); they are read on readiness", loop->index,
              weft_strerror(rc));
    weft__uring_dgram_free(s);
    s->dgram_failed = true;
    return false;
}

static void on_dgram_msg(weft__loop *loop, weft__listener *l, const struct io_uring_cqe *cqe)
{
    ur_state *s = loop->be_state;
    ur_listener *u = weft__uring_listener(l);
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
        weft__uring_arm_listener(loop, l);
}

/* Datagram sockets that ran out of buffers are armed again: every buffer this reap saw is
 * back, and the datagrams wait in their sockets. */
void weft__uring_dgram_rearm(weft__loop *loop)
{
    ur_state *s = loop->be_state;
    s->dgram_rearm = false;
    for (size_t i = 0; i < loop->nlisteners; i++) {
        weft__listener *l = loop->listeners[i];
        ur_listener *u = weft__uring_listener(l);
        if (!(u->bits & L_NOBUFS))
            continue;
        u->bits &= (uint8_t)~L_NOBUFS;
        if ((u->bits & (L_WANT | L_ARMED)) == L_WANT && !s->draining)
            weft__uring_arm_listener(loop, l);
    }
}

static void on_dgram_poll(weft__loop *loop, weft__listener *l, int res)
{
    ur_state *s = loop->be_state;
    ur_listener *u = weft__uring_listener(l);
    u->bits &= (uint8_t) ~(L_ARMED | L_CANCEL);
    s->inflight--;
    if (res >= 0 && (u->bits & L_WANT) && !s->draining) {
        weft__dgram_ready(l);
        /* One-shot: level-triggered, as recvmmsg leaves the rest. */
        if ((u->bits & L_WANT) && !(u->bits & L_ARMED))
            weft__uring_arm_listener(loop, l);
    }
}

void weft__uring_on_dgram(weft__loop *loop, weft__listener *l, const struct io_uring_cqe *cqe)
{
    if (weft__uring_listener(l)->bits & L_MSG)
        on_dgram_msg(loop, l, cqe);
    else
        on_dgram_poll(loop, l, cqe->res);
}
