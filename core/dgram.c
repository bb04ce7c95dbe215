/* weft — datagram sockets: udp:// and unixgram:// listeners.
 *
 * Each loop that owns a datagram socket wraps it in a connection object of its own (not in
 * the slot table: no ref, no on_open or on_close). Every datagram is one on_traffic call on
 * that object; the sender's address is weft_conn_get_peer_addr, and weft_conn_write answers
 * it with one datagram. Datagrams are never merged or split: bytes on_traffic leaves unread
 * are dropped with the datagram. A datagram larger than the read buffer arrives truncated
 * from the kernel and is dropped (counted in datagrams_dropped).
 *
 * Two ways in, one per backend model: on readiness (weft__dgram_ready) the datagrams are
 * read here in batches (recvmmsg) into buffers as large as the read buffer; a completion
 * backend may receive them itself and hand each over with its sender (weft__dgram_recv),
 * then end the batch (weft__dgram_recv_end). Either way the replies of a batch are gathered and
 * leave together (sendmmsg). The system calls are platform.h's (weft__sock_recvmsgs,
 * weft__sock_sendmsgs, weft__sock_sendto), so this file is the same on Windows, where the
 * IOCP backend receives with overlapped WSARecvFrom (dgram_iocp.c) and replies leave with
 * non-blocking WSASendTo.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define WEFT__DGRAM_VEC 16
struct weft__dgram_batch {
    weft__dgram_msg msgs[WEFT__DGRAM_VEC];
    struct sockaddr_storage peers[WEFT__DGRAM_VEC];
    uint8_t *data; /* WEFT__DGRAM_VEC slots of read_buffer_size bytes */
    /* Replies written while a batch is handled leave together (sendmmsg). */
    weft__dgram_msg out_msgs[WEFT__DGRAM_VEC];
    struct sockaddr_storage out_peers[WEFT__DGRAM_VEC];
    uint8_t *out_data; /* WEFT__DGRAM_VEC slots of read_buffer_size bytes */
    unsigned nout;
    weft__sock out_fd;
    bool active; /* inside weft__dgram_ready: replies are gathered */
};

#define DGRAM_BATCH 64
#define DGRAM_VEC   WEFT__DGRAM_VEC

weft_conn *weft__dgram_new(weft__loop *loop, weft__listener *l)
{
    if (loop->dgram_batch == NULL) {
        weft__dgram_batch *b = calloc(1, sizeof(*b));
        if (b == NULL)
            return NULL;
        b->data = malloc((size_t)DGRAM_VEC * loop->rbuf_size);
        b->out_data = malloc((size_t)DGRAM_VEC * loop->rbuf_size);
        if (b->data == NULL || b->out_data == NULL) {
            free(b->data);
            free(b->out_data);
            free(b);
            return NULL;
        }
        loop->dgram_batch = b;
    }
    weft_conn *c = calloc(1, loop->slot_size);
    if (c == NULL)
        return NULL;
    c->loop = loop;
    c->fd = l->fd;
    c->slot = WEFT__NO_SLOT;
    c->tw_prev = c->tw_next = WEFT__NO_SLOT;
    c->flags = CONN_LIVE | CONN_DGRAM | CONN_READING;
    return c;
}

/* Sends the gathered replies, in one call when the kernel takes them all. A reply the
 * kernel refuses (a full socket buffer) is dropped and counted. */
static void flush_replies(weft__loop *loop)
{
    weft__dgram_batch *b = loop->dgram_batch;
    unsigned done = 0;
    while (done < b->nout) {
        int n = weft__sock_sendmsgs(b->out_fd, b->out_msgs + done, b->nout - done);
        if (n <= 0) {
            /* The first one failed: drop it and try the rest. */
            WEFT__STAT_ADD(loop->stats.dgrams_dropped, 1);
            done++;
            continue;
        }
        for (int k = 0; k < n; k++)
            WEFT__STAT_ADD(loop->stats.bytes_out, b->out_msgs[done + (unsigned)k].len);
        WEFT__STAT_ADD(loop->stats.dgrams_out, n);
        done += (unsigned)n;
    }
    b->nout = 0;
}

int weft__dgram_send(weft_conn *c, const struct iovec *iov, int iovcnt, const struct sockaddr *to,
                     socklen_t tolen)
{
    weft__loop *loop = c->loop;
    if (to == NULL) {
        /* A reply: to the sender of the datagram being handled. */
        if (loop->cur != c || loop->dgram_peer_len == 0)
            return -EDESTADDRREQ;
        to = (const struct sockaddr *)&loop->dgram_peer;
        tolen = loop->dgram_peer_len;
    }
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    weft__dgram_batch *b = loop->dgram_batch;
    if (b != NULL && b->active && total <= loop->rbuf_size &&
        (size_t)tolen <= sizeof(b->out_peers[0])) {
        /* Inside a receive batch: gather, so the replies leave in one syscall. */
        if (b->nout > 0 && b->out_fd != c->fd)
            flush_replies(loop);
        if (b->nout == DGRAM_VEC)
            flush_replies(loop);
        unsigned k = b->nout++;
        b->out_fd = c->fd;
        uint8_t *slot = b->out_data + (size_t)k * loop->rbuf_size;
        size_t off = 0;
        for (int i = 0; i < iovcnt; i++) {
            if (iov[i].iov_len > 0)
                memcpy(slot + off, iov[i].iov_base, iov[i].iov_len);
            off += iov[i].iov_len;
        }
        memcpy(&b->out_peers[k], to, tolen);
        b->out_msgs[k].data = slot;
        b->out_msgs[k].len = total;
        b->out_msgs[k].peer = &b->out_peers[k];
        b->out_msgs[k].peer_len = tolen;
        b->out_msgs[k].truncated = false;
        return 0;
    }
    ssize_t n = weft__sock_sendto(c->fd, iov, iovcnt, to, tolen);
    if (n < 0) {
        /* EAGAIN: the socket buffer is full and the datagram is dropped; the caller
         * learns it, nothing is queued. */
        WEFT__STAT_ADD(loop->stats.dgrams_dropped, 1);
        return (int)n;
    }
    WEFT__STAT_ADD(loop->stats.bytes_out, n);
    WEFT__STAT_ADD(loop->stats.dgrams_out, 1);
    return 0;
}

/* Runs on_traffic for one received datagram. */
static void dgram_dispatch(weft_conn *c, uint8_t *data, size_t n)
{
    weft__loop *loop = c->loop;
    weft_engine *e = loop->engine;
    WEFT__STAT_ADD(loop->stats.bytes_in, n);
    WEFT__STAT_ADD(loop->stats.dgrams_in, 1);
    loop->cur = c;
    loop->view = data;
    loop->view_len = n;
    loop->view_used = 0;
    loop->view_need = 0;
    weft_action a = e->cfg.handler.on_traffic(c);
    c->flags &= (uint16_t)~CONN_DECODE_FAILED;
    loop->cur = NULL;
    loop->view = NULL;
    loop->view_len = loop->view_used = 0;
    loop->dgram_peer_len = 0;
    if (a == WEFT_ACTION_SHUTDOWN)
        weft__loop_request_stop(e);
}

static void dropped_big(weft__loop *loop, const weft__listener *l, size_t n)
{
    WEFT__STAT_ADD(loop->stats.dgrams_dropped, 1);
    weft__log_peer(loop, WEFT_LOG_INFO, "%s: dropped a %zu-byte datagram (read buffer %zu)", l->url,
                   n, loop->rbuf_size);
}

/* Up to DGRAM_BATCH datagrams per readiness, DGRAM_VEC per recvmmsg call. Each slot of the
 * batch area is as large as the read buffer, so no datagram the read buffer could hold is
 * cut; the area is allocated once per loop that has a datagram socket, and only the pages
 * datagrams actually touch become resident. */
void weft__dgram_ready(weft__listener *l)
{
    weft__sock fd = l->fd;
    weft_conn *c = l->dgram;
    weft__loop *loop = c->loop;
    weft__dgram_batch *b = loop->dgram_batch;
    loop->nio++;
    weft__loop_enter(loop);
    b->active = true;
    for (int got = 0; got < DGRAM_BATCH && !loop->stopping;) {
        for (unsigned k = 0; k < DGRAM_VEC; k++) {
            b->msgs[k].data = b->data + (size_t)k * loop->rbuf_size;
            b->msgs[k].len = loop->rbuf_size;
            b->msgs[k].peer = &b->peers[k];
            b->msgs[k].peer_len = sizeof(b->peers[k]);
            b->msgs[k].truncated = false;
        }
        int n = weft__sock_recvmsgs(fd, b->msgs, DGRAM_VEC);
        if (n < 0) {
            if (!weft__sock_again(n))
                weft__log(loop->engine, WEFT_LOG_WARN, "recvmmsg on %s: %s", l->url,
                          weft_strerror(n));
            break;
        }
        for (int k = 0; k < n && !loop->stopping; k++) {
            weft__dgram_msg *m = &b->msgs[k];
            if (m->truncated) {
                dropped_big(loop, l, m->len);
                continue;
            }
            memcpy(&loop->dgram_peer, &b->peers[k], m->peer_len);
            loop->dgram_peer_len = m->peer_len;
            dgram_dispatch(c, m->data, m->len);
        }
        flush_replies(loop);
        got += n;
        if ((unsigned)n < DGRAM_VEC)
            break;
    }
    flush_replies(loop);
    b->active = false;
    weft__loop_leave(loop);
}

void weft__dgram_recv(weft__listener *l, const uint8_t *data, size_t n, bool truncated,
                      const struct sockaddr *from, socklen_t fromlen)
{
    weft_conn *c = l->dgram;
    weft__loop *loop = c->loop;
    if (loop->stopping)
        return; /* as on readiness: what comes after the stop is not served */
    loop->nio++;
    if (truncated) {
        dropped_big(loop, l, n);
        return;
    }
    /* One dispatch for the whole batch, as on readiness: what the handlers corked and the
     * closes they asked for are done once, when the batch ends. */
    weft__dgram_batch *b = loop->dgram_batch;
    if (!b->active) {
        weft__loop_enter(loop);
        b->active = true;
    }
    if ((size_t)fromlen > sizeof(loop->dgram_peer))
        fromlen = (socklen_t)sizeof(loop->dgram_peer);
    if (fromlen > 0)
        memcpy(&loop->dgram_peer, from, fromlen);
    loop->dgram_peer_len = fromlen;
    dgram_dispatch(c, (uint8_t *)data, n);
}

void weft__dgram_recv_end(weft__loop *loop)
{
    weft__dgram_batch *b = loop->dgram_batch;
    if (b == NULL || !b->active)
        return;
    flush_replies(loop);
    b->active = false;
    weft__loop_leave(loop);
}

void weft__dgram_batch_free(weft__loop *loop)
{
    if (loop->dgram_batch != NULL) {
        free(loop->dgram_batch->data);
        free(loop->dgram_batch->out_data);
    }
    free(loop->dgram_batch);
    loop->dgram_batch = NULL;
}

int weft_conn_sendto(weft_conn *c, const struct sockaddr *to, socklen_t tolen, const void *data,
                     size_t len)
{
    if (!(c->flags & CONN_DGRAM) || to == NULL)
        return WEFT_EINVAL;
    struct iovec iov = {(void *)data, len};
    return weft__dgram_send(c, &iov, 1, to, tolen);
}

bool weft_conn_is_datagram(const weft_conn *c)
{
    return (c->flags & CONN_DGRAM) != 0;
}
