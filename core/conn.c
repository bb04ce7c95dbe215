/* weft — a connection's life and output: queued writes, backpressure, closing at safe points. */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "internal.h"

/* Inside a dispatch, writes smaller than this go to the queue and leave in one syscall when
 * the dispatch ends; larger ones go straight out when nothing waits. */
#define DIRECT_WRITE_MIN (16u * 1024u)

weft_conn *weft__slot_get(weft__loop *loop, uint32_t slot)
{
    uint32_t chunk = slot >> WEFT__CHUNK_SHIFT;
    if (chunk >= WEFT__CHUNK_MAX)
        return NULL;
    weft_conn *base = atomic_load_explicit(&loop->chunks[chunk], memory_order_acquire);
    if (base == NULL)
        return NULL;
    return &base[slot & (WEFT__CHUNK_SIZE - 1u)];
}

static void mirror_out(weft_conn *c)
{
    atomic_store_explicit(&c->out_len, c->out.len, memory_order_relaxed);
}

void weft__conn_update_events(weft_conn *c)
{
    short want = 0;
    if (c->flags & CONN_CONNECTING)
        want = EV_WRITE; /* writable = connect() finished, one way or the other */
    else if ((c->flags & (CONN_READING | CONN_PAUSED | CONN_CLOSING)) == CONN_READING ||
             (c->flags & CONN_LINGER))
        want |= EV_READ;
    if (c->out.len > 0)
        want |= EV_WRITE;
    short have = (short)(((c->flags & CONN_EV_READ) ? EV_READ : 0) |
                         ((c->flags & CONN_EV_WRITE) ? EV_WRITE : 0));
    if (want == have)
        return;
    if (have != 0)
        event_del(&c->ev);
    c->flags &= (uint16_t) ~(CONN_EV_READ | CONN_EV_WRITE);
    if (want != 0) {
        event_assign(&c->ev, c->loop->base, c->fd, (short)(want | EV_PERSIST), weft__conn_event_cb,
                     c);
        if (event_add(&c->ev, NULL) == 0)
            c->flags |= (uint16_t)(((want & EV_READ) ? CONN_EV_READ : 0) |
                                   ((want & EV_WRITE) ? CONN_EV_WRITE : 0));
    }
}

static void push_pending(weft__loop *loop, weft_conn *c)
{
    weft__wheel_remove(c); /* tw_next now chains the pending list */
    c->tw_next = loop->pending_head;
    loop->pending_head = c->slot;
}

/* Returns false when there is no memory to remember c: the caller then flushes at once. */
static bool push_corked(weft__loop *loop, weft_conn *c)
{
    if (loop->ncorked == loop->corked_cap) {
        uint32_t ncap = loop->corked_cap ? loop->corked_cap * 2u : 64u;
        weft_conn **n = realloc(loop->corked, ncap * sizeof(*n));
        if (n == NULL)
            return false;
        loop->corked = n;
        loop->corked_cap = ncap;
    }
    c->flags |= CONN_CORKED;
    loop->corked[loop->ncorked++] = c;
    return true;
}

void weft__conn_close_now(weft_conn *c, int err)
{
    if (c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING))
        return;
    weft__loop *loop = c->loop;
    c->flags |= CONN_CLOSE_PENDING;
    c->close_err = err;
    if (loop->depth == 0) {
        weft__loop_enter(loop);
        push_pending(loop, c);
        weft__loop_leave(loop);
    } else {
        push_pending(loop, c);
    }
}

static void publish_buffer_stats(weft__loop *loop)
{
    weft__bufpool_stats bs;
    weft__bufpool_get_stats(loop->bufpool, &bs);
    atomic_store_explicit(&loop->stats.buffers_out, bs.outstanding, memory_order_relaxed);
    atomic_store_explicit(&loop->stats.buffer_bytes, bs.out_bytes, memory_order_relaxed);
    atomic_store_explicit(&loop->stats.cached_bytes, bs.cached_bytes, memory_order_relaxed);
}

/* The real close, at a safe point (the end of the outermost dispatch). */
static void conn_finish(weft_conn *c)
{
    weft__loop *loop = c->loop;
    weft_engine *e = loop->engine;
    int err = c->close_err;
    c->flags |= CONN_CLOSED;
    c->flags &= (uint16_t)~CONN_CLOSE_PENDING;
    if (c->flags & (CONN_EV_READ | CONN_EV_WRITE))
        event_del(&c->ev);
    c->flags &= (uint16_t) ~(CONN_EV_READ | CONN_EV_WRITE);
    if (c->flags & CONN_HAS_TIMERS)
        weft__conn_cancel_timers(c);
    /* Refs die before anyone can see the connection closing. */
    atomic_store_explicit(&c->gen, atomic_load_explicit(&c->gen, memory_order_relaxed) + 1u,
                          memory_order_release);
    if (err < 0 && (err == WEFT_ECANCELED || err == WEFT_EOUTCAP)) {
        /* Dropping queued bytes: reset rather than let the peer think all arrived. */
        struct linger lg = {1, 0};
        (void)setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    weft__ring_release(&c->in, loop->bufpool);
    weft__ring_release(&c->out, loop->bufpool);
    mirror_out(c);
    /* Published before on_close, so whoever learns of the close sees the buffers back. */
    publish_buffer_stats(loop);
    if (e->cfg.handler.on_close != NULL)
        e->cfg.handler.on_close(c, err);
    /* Closed only now, so on_close still sees this connection's own addresses, and not a
     * socket another thread just got the same number for. */
    close(c->fd);
    if (e->has_codec)
        weft_codec_state_destroy(&e->codec, &c->cstate);
    /* A dial that never connected was never opened in the balancer's books either. */
    if (e->balancer != NULL && !(c->flags & CONN_CONNECTING))
        weft_balancer_on_close(e->balancer, loop->index);
    WEFT__STAT_ADD(loop->stats.closed, 1);
    atomic_fetch_sub_explicit(&loop->stats.live, 1, memory_order_relaxed);
    loop->nconns--;
    /* Back on the free list; the next owner of the slot gets the next (odd) generation. */
    c->fd = -1;
    c->flags = 0;
    c->ctx = NULL;
    c->tw_next = loop->free_head;
    loop->free_head = c->slot;
    if (loop->stopping && loop->nconns == 0)
        event_base_loopbreak(loop->base);
}

void weft__loop_enter(weft__loop *loop)
{
    loop->nruns++;
    /* Each callback the iteration runs reads the (coarse, cheap) clock, so a long batch
     * does not date what follows it. */
    if (loop->depth++ <= 1) {
        weft__clock_update(loop);
        if (loop->poll_ns != 0 && loop->woke_ns == 0) /* the first callback after a sleep */
            loop->woke_ns = weft__mono_ns();
    }
}

void weft__loop_leave(weft__loop *loop)
{
    assert(loop->depth > 0);
    if (loop->depth > 1) {
        loop->depth--;
        return;
    }
    /* Outermost: flush what the dispatch corked, then run the closes it asked for. Both
     * may add to either list (on_close may write to other connections), so go on until
     * both are empty. */
    for (;;) {
        if (loop->ncorked > 0) {
            weft_conn *c = loop->corked[--loop->ncorked];
            c->flags &= (uint16_t)~CONN_CORKED;
            if (!(c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING)))
                weft__conn_flush(c);
            continue;
        }
        if (loop->pending_head != WEFT__NO_SLOT) {
            weft_conn *c = weft__slot_get(loop, loop->pending_head);
            loop->pending_head = c->tw_next;
            if (c->flags & CONN_CLOSE_PENDING)
                conn_finish(c);
            continue;
        }
        break;
    }
    publish_buffer_stats(loop);
    loop->depth = 0;
}

static ssize_t send_iov(int fd, const struct iovec *iov, int iovcnt)
{
    ssize_t n;
    if (iovcnt == 1) { /* the common case: send() skips the kernel's message-header work */
        do {
            n = send(fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL | MSG_DONTWAIT);
        } while (n < 0 && errno == EINTR);
        return n;
    }
    struct msghdr mh;
    memset(&mh, 0, sizeof(mh));
    mh.msg_iov = (struct iovec *)iov;
    mh.msg_iovlen = (size_t)iovcnt;
    do {
        n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    return n;
}

static void check_backpressure(weft_conn *c)
{
    const weft_config *cfg = &c->loop->engine->cfg;
    if (!(c->flags & CONN_PAUSED) && c->out.len >= cfg->write_high_water) {
        c->flags |= CONN_PAUSED;
        WEFT__STAT_ADD(c->loop->stats.pauses, 1);
        weft__conn_update_events(c);
    } else if ((c->flags & CONN_PAUSED) && c->out.len <= cfg->write_high_water / 2) {
        c->flags &= (uint16_t)~CONN_PAUSED;
        c->since_ms = c->loop->now_ms; /* the read timeout restarts with reading */
        weft__conn_update_events(c);
    }
}

/* Bytes the kernel still holds for the peer (not yet sent or not yet acknowledged), or
 * -1 if it cannot say. */
static int kernel_outq(int fd)
{
    int n;
    return ioctl(fd, SIOCOUTQ, &n) == 0 ? n : -1;
}

static int kernel_inq(int fd)
{
    int n;
    return ioctl(fd, SIOCINQ, &n) == 0 ? n : -1;
}

/* Everything queued is with the kernel. A close() now could still lose it: closing a
 * socket with unread input sends a reset, and the kernel drops the output it has not sent
 * yet (the peer gets a truncated answer and we would report a clean close). So unless the
 * peer already finished sending, or the kernel already delivered everything, send our FIN
 * with shutdown(), drop what the peer still sends, and close once the peer acknowledged
 * every byte, ended its side, or stop_timeout_ms passed (WEFT_ETIMEDOUT): a lingering
 * close, as nginx's lingering_close. */
static void closing_drained(weft_conn *c)
{
    if ((c->flags & CONN_PEER_EOF) || (kernel_inq(c->fd) == 0 && kernel_outq(c->fd) == 0) ||
        shutdown(c->fd, SHUT_WR) != 0) {
        weft__conn_close_now(c, c->close_err);
        return;
    }
    c->flags |= CONN_LINGER;
    weft__conn_update_events(c);
    weft__wheel_schedule(c);
}

bool weft__conn_linger_check(weft_conn *c, bool timed_out)
{
    if (kernel_outq(c->fd) == 0) {
        weft__conn_close_now(c, c->close_err);
        return true;
    }
    if (timed_out) {
        weft__conn_close_now(c, WEFT_ETIMEDOUT);
        return true;
    }
    return false;
}

/* Lingering: read and drop until the peer ends its side. */
static void linger_read(weft_conn *c)
{
    weft__loop *loop = c->loop;
    for (;;) {
        ssize_t n = recv(c->fd, loop->rbuf, loop->rbuf_size, 0);
        if (n > 0)
            continue;
        if (n == 0) {
            weft__conn_close_now(c, c->close_err);
            return;
        }
        int err = errno;
        if (err == EINTR)
            continue;
        if (err == EAGAIN || err == EWOULDBLOCK)
            break;
        /* A reset also drops whatever the peer had not acknowledged. */
        weft__conn_close_now(c, kernel_outq(c->fd) == 0 ? c->close_err : -err);
        return;
    }
    (void)weft__conn_linger_check(c, false);
}

void weft__conn_flush(weft_conn *c)
{
    if (c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING))
        return;
    weft__loop *loop = c->loop;
    bool had = c->out.len > 0;
    while (c->out.len > 0) {
        struct iovec iov[2];
        int cnt = weft__ring_iov(&c->out, iov);
        ssize_t n = send_iov(c->fd, iov, cnt);
        if (n < 0) {
            int err = errno;
            if (err == EAGAIN || err == EWOULDBLOCK)
                break;
            weft__conn_close_now(c, -err);
            return;
        }
        WEFT__STAT_ADD(loop->stats.bytes_out, n);
        c->active_ms = loop->now_ms;
        weft__ring_consume(&c->out, loop->bufpool, (size_t)n, 0);
    }
    mirror_out(c);
    if (c->out.len == 0 && (c->flags & CONN_CLOSING)) {
        if (!(c->flags & CONN_LINGER))
            closing_drained(c);
        return;
    }
    check_backpressure(c);
    weft__conn_update_events(c);
    weft_engine *e = loop->engine;
    if (had && c->out.len == 0 && e->cfg.handler.on_drain != NULL &&
        !(c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING | CONN_CLOSING)))
        e->cfg.handler.on_drain(c);
}

int weft__conn_send(weft_conn *c, const struct iovec *iov, int iovcnt)
{
    if (c->flags & CONN_DGRAM)
        return weft__dgram_send(c, iov, iovcnt, NULL, 0);
    if (c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING | CONN_CLOSING))
        return WEFT_ECLOSED;
    weft__loop *loop = c->loop;
    const weft_config *cfg = &loop->engine->cfg;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (total == 0)
        return 0;
    size_t sent = 0;
    if (c->out.len == 0 && (loop->depth == 0 || total >= DIRECT_WRITE_MIN)) {
        ssize_t n = send_iov(c->fd, iov, iovcnt);
        if (n < 0) {
            int err = errno;
            if (err != EAGAIN && err != EWOULDBLOCK) {
                weft__conn_close_now(c, -err);
                return -err;
            }
            n = 0;
        }
        WEFT__STAT_ADD(loop->stats.bytes_out, n);
        if (n > 0)
            c->active_ms = loop->now_ms;
        sent = (size_t)n;
        if (sent == total)
            return 0;
    }
    if (total - sent > cfg->write_hard_cap || c->out.len > cfg->write_hard_cap - (total - sent)) {
        weft__log(loop->engine, WEFT_LOG_WARN,
                  "conn %u/%u: %zu bytes queued for a peer that does not read: over the hard "
                  "cap of %zu, closing",
                  loop->index, c->slot, (size_t)c->out.len + (total - sent), cfg->write_hard_cap);
        weft__conn_close_now(c, WEFT_EOUTCAP);
        return WEFT_EOUTCAP;
    }
    size_t skip = sent;
    for (int i = 0; i < iovcnt; i++) {
        const uint8_t *p = iov[i].iov_base;
        size_t l = iov[i].iov_len;
        if (skip >= l) {
            skip -= l;
            continue;
        }
        int rc = weft__ring_append(&c->out, loop->bufpool, p + skip, l - skip, cfg->write_hard_cap);
        skip = 0;
        if (rc != 0) {
            weft__conn_close_now(c, rc);
            return rc;
        }
    }
    mirror_out(c);
    if (loop->depth > 0) {
        if (!(c->flags & CONN_CORKED))
            if (!push_corked(loop, c))
                weft__conn_update_events(c); /* EV_WRITE drains it instead */
    } else {
        weft__conn_update_events(c);
    }
    check_backpressure(c);
    return 0;
}

void weft__conn_close_graceful(weft_conn *c, int err)
{
    if (c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING | CONN_LINGER))
        return;
    if (!(c->flags & CONN_CLOSING)) {
        c->flags |= CONN_CLOSING;
        c->flags &= (uint16_t) ~(CONN_READING | CONN_PARTIAL);
        c->close_err = err;
        c->since_ms = c->loop->now_ms;
        if (c->out.len > 0) /* a peer that never takes the rest must not keep us */
            weft__wheel_schedule(c);
    }
    if (c->out.len == 0)
        closing_drained(c);
    else
        weft__conn_update_events(c);
}

void weft__conn_event_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    weft_conn *c = arg;
    weft__loop *loop = c->loop;
    loop->nio++;
    /* Closed earlier in this iteration (its event goes when the iteration ends): a dial
     * that completes now must not be opened. */
    if (c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING))
        return;
    weft__loop_enter(loop);
    if (c->flags & CONN_CONNECTING) {
        if (what & EV_WRITE)
            weft__conn_finish_connect(c);
        weft__loop_leave(loop);
        return;
    }
    if (what & EV_WRITE)
        weft__conn_flush(c);
    if ((what & EV_READ) && (c->flags & (CONN_READING | CONN_PAUSED | CONN_CLOSING | CONN_CLOSED |
                                         CONN_CLOSE_PENDING)) == CONN_READING)
        weft__conn_read(c);
    else if ((what & EV_READ) &&
             (c->flags & (CONN_LINGER | CONN_CLOSED | CONN_CLOSE_PENDING)) == CONN_LINGER)
        linger_read(c);
    weft__loop_leave(loop);
}

/* ---- public connection API (owning loop's thread) ---- */

int weft_conn_write(weft_conn *c, const void *data, size_t len)
{
    struct iovec iov = {(void *)data, len};
    return weft__conn_send(c, &iov, 1);
}

int weft_conn_writev(weft_conn *c, const struct iovec *iov, int iovcnt)
{
    if (iovcnt < 0 || (iovcnt > 0 && iov == NULL))
        return WEFT_EINVAL;
    return weft__conn_send(c, iov, iovcnt);
}

int weft_conn_write_frame(weft_conn *c, const void *data, size_t len)
{
    weft_engine *e = c->loop->engine;
    if (!e->has_codec)
        return WEFT_ENOCODEC;
    weft_encoding enc;
    memset(&enc, 0, sizeof(enc));
    int rc = weft_codec_encode(&e->codec, data, len, &enc);
    if (rc != 0)
        return rc;
    struct iovec iov[3] = {
        {enc.head, enc.head_len}, {(void *)data, len}, {(void *)enc.tail, enc.tail_len}};
    return weft__conn_send(c, iov, 3);
}

int weft_conn_close(weft_conn *c)
{
    if (c->flags & CONN_DGRAM)
        return WEFT_EINVAL;
    if (c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING | CONN_CLOSING))
        return WEFT_ECLOSED;
    weft__conn_close_graceful(c, 0);
    return 0;
}

int weft_conn_abort(weft_conn *c)
{
    if (c->flags & CONN_DGRAM)
        return WEFT_EINVAL;
    if (c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING))
        return WEFT_ECLOSED;
    weft__conn_close_now(c, WEFT_ECANCELED);
    return 0;
}

int weft_conn_pause_read(weft_conn *c)
{
    if (c->flags & CONN_DGRAM)
        return WEFT_EINVAL;
    if (c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING | CONN_CLOSING))
        return WEFT_ECLOSED;
    c->flags &= (uint16_t)~CONN_READING;
    weft__conn_update_events(c);
    return 0;
}

int weft_conn_resume_read(weft_conn *c)
{
    if (c->flags & CONN_DGRAM)
        return WEFT_EINVAL;
    /* Reading that stopped for a close or a decode error never comes back. */
    if (c->flags &
        (CONN_CLOSED | CONN_CLOSE_PENDING | CONN_CLOSING | CONN_DECODE_FAILED | CONN_PEER_EOF))
        return WEFT_ECLOSED;
    if (c->flags & CONN_READING)
        return 0;
    c->flags |= CONN_READING;
    c->since_ms = c->loop->now_ms; /* the read timeout restarts with reading */
    weft__conn_update_events(c);
    /* Bytes buffered while paused may be all the peer sends for now: offer them without
     * waiting for more. Through the queue, since the caller may be inside another
     * connection's on_traffic, whose view a nested dispatch would overwrite. Inside conn's
     * own on_traffic the caller is looking at those bytes already. */
    if (c->in.len > 0 && c->loop->cur != c)
        (void)weft_async_wake(c->loop->engine, weft_conn_get_ref(c));
    return 0;
}

void *weft_conn_get_context(const weft_conn *c)
{
    return c->ctx;
}

void weft_conn_set_context(weft_conn *c, void *ctx)
{
    c->ctx = ctx;
}

weft_conn_ref weft_conn_get_ref(const weft_conn *c)
{
    weft_conn_ref r;
    r.loop = c->loop->index;
    r.slot = c->slot;
    r.gen = atomic_load_explicit(&c->gen, memory_order_relaxed);
    return r;
}

weft_engine *weft_conn_get_engine(const weft_conn *c)
{
    return c->loop->engine;
}

unsigned weft_conn_get_loop(const weft_conn *c)
{
    return c->loop->index;
}

int weft_conn_get_fd(const weft_conn *c)
{
    return c->fd;
}

size_t weft_conn_get_pending_out(const weft_conn *c)
{
    return c->out.len;
}

int weft_conn_get_local_addr(const weft_conn *c, struct sockaddr_storage *addr, socklen_t *len)
{
    *len = sizeof(*addr);
    return getsockname(c->fd, (struct sockaddr *)addr, len) == 0 ? 0 : -errno;
}

int weft_conn_get_peer_addr(const weft_conn *c, struct sockaddr_storage *addr, socklen_t *len)
{
    if (c->flags & CONN_DGRAM) {
        const weft__loop *loop = c->loop;
        if (loop->cur != c || loop->dgram_peer_len == 0)
            return -ENOTCONN;
        memcpy(addr, &loop->dgram_peer, loop->dgram_peer_len);
        *len = loop->dgram_peer_len;
        return 0;
    }
    *len = sizeof(*addr);
    return getpeername(c->fd, (struct sockaddr *)addr, len) == 0 ? 0 : -errno;
}
