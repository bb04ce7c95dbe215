/* weft — datagram sockets: udp:// and unixgram:// listeners.
 *
 * Each loop that owns a datagram socket wraps it in a connection object of its own (not in
 * the slot table: no ref, no on_open or on_close). Every datagram is one on_traffic call on
 * that object, read straight into the loop's read buffer; the sender's address is
 * weft_conn_peer_addr, and weft_conn_write answers it with one datagram. Datagrams are
 * never merged or split: bytes on_traffic leaves unread are dropped with the datagram.
 * A datagram larger than the read buffer arrives truncated from the kernel and is dropped
 * (counted in datagrams_dropped).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "internal.h"

#define DGRAM_BATCH 64

weft_conn *weft__dgram_new(weft__loop *loop, weft__listener *l)
{
    weft_conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->loop = loop;
    c->fd = l->fd;
    c->slot = WEFT__NO_SLOT;
    c->tw_prev = c->tw_next = WEFT__NO_SLOT;
    c->flags = CONN_LIVE | CONN_DGRAM | CONN_READING;
    return c;
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
    struct msghdr mh;
    memset(&mh, 0, sizeof(mh));
    mh.msg_name = (void *)to;
    mh.msg_namelen = tolen;
    mh.msg_iov = (struct iovec *)iov;
    mh.msg_iovlen = (size_t)iovcnt;
    ssize_t n;
    do {
        n = sendmsg(c->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        /* EAGAIN: the socket buffer is full and the datagram is dropped; the caller
         * learns it, nothing is queued. */
        WEFT__STAT_ADD(loop->stats.dgrams_dropped, 1);
        return -errno;
    }
    WEFT__STAT_ADD(loop->stats.bytes_out, n);
    WEFT__STAT_ADD(loop->stats.dgrams_out, 1);
    return 0;
}

void weft__dgram_event_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    weft__listener *l = arg;
    weft_conn *c = l->dgram;
    weft__loop *loop = c->loop;
    weft_engine *e = loop->engine;
    weft__loop_enter(loop);
    for (int i = 0; i < DGRAM_BATCH && !loop->stopping; i++) {
        socklen_t sl = sizeof(loop->dgram_peer);
        ssize_t n = recvfrom(fd, loop->rbuf, loop->rbuf_size, MSG_TRUNC,
                             (struct sockaddr *)&loop->dgram_peer, &sl);
        if (n < 0) {
            int err = errno;
            if (err == EINTR)
                continue;
            if (err != EAGAIN && err != EWOULDBLOCK)
                weft__log(e, WEFT_LOG_WARN, "recvfrom on %s: %s", l->url, weft_strerror(-err));
            break;
        }
        if ((size_t)n > loop->rbuf_size) {
            WEFT__STAT_ADD(loop->stats.dgrams_dropped, 1);
            weft__log(e, WEFT_LOG_INFO, "%s: dropped a %zd-byte datagram (read buffer %zu)", l->url,
                      n, loop->rbuf_size);
            continue;
        }
        loop->dgram_peer_len = sl;
        WEFT__STAT_ADD(loop->stats.bytes_in, n);
        WEFT__STAT_ADD(loop->stats.dgrams_in, 1);
        loop->cur = c;
        loop->view = loop->rbuf;
        loop->view_len = (size_t)n;
        loop->view_used = 0;
        loop->view_need = 0;
        weft_action a = e->cfg.handler.on_traffic(c);
        c->flags &= (uint16_t)~CONN_DECODE_FAILED;
        loop->cur = NULL;
        loop->view = NULL;
        loop->view_len = loop->view_used = 0;
        loop->dgram_peer_len = 0;
        if (a == WEFT_ACTION_SHUTDOWN)
            weft_engine_stop(e);
    }
    weft__loop_leave(loop);
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
