/* weft — udp:// on the IOCP backend: overlapped WSARecvFrom into the loop's buffers.
 *
 * Every datagram socket of a loop keeps RECVS receives outstanding, each into a buffer of its
 * own as large as the loop's read buffer (so a datagram the read buffer could hold arrives
 * whole, as into recvmmsg's slots on Linux), with the sender's address beside it. When one
 * completes, its datagram goes to dgram.c (weft__dgram_recv) straight from that buffer, and
 * the receive is posted again into it once that returned: the kernel never writes a buffer
 * a handler is reading. The backend ends the batch after each wait (weft__dgram_recv_end):
 * the replies the handlers gathered leave then, through dgram.c and platform.h's
 * non-blocking WSASendTo. Several receives, not one re-posted per completion: while the
 * loop runs handlers the kernel fills the others, and one wait hands over several
 * datagrams, whose replies then leave together (README, "Building for Windows", has the
 * numbers).
 *
 * A datagram larger than the buffer ends its receive with WSAEMSGSIZE, its first bytes in
 * the buffer: it is dropped and counted, as a truncated one is on Linux. An ICMP "port
 * unreachable" for an earlier reply would end a receive with WSAECONNRESET: SIO_UDP_CONNRESET
 * turns that off, and a receive that still ends so is posted again.
 *
 * Stopping the socket cancels what is outstanding (CancelIoEx); its buffers stay until every
 * receive came back, and are freed with the loop only then, as a listener's accepts are.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "dgram_iocp.h"

#include <mstcpip.h>

#ifndef SIO_UDP_CONNRESET
#define SIO_UDP_CONNRESET _WSAIOW(IOC_VENDOR, 12)
#endif

#define RECVS      4 /* receives outstanding per datagram socket */
#define POST_TRIES 8 /* WSAECONNRESETs passed over while posting one receive */

typedef struct id_recv {
    OVERLAPPED ov;
    weft__listener *l;
    uint8_t *buf; /* loop->rbuf_size bytes */
    struct sockaddr_storage from;
    INT fromlen;
    DWORD flags;
    bool busy; /* its completion has not arrived */
} id_recv;

typedef struct id_socket {
    id_recv r[RECVS];
    uint8_t *bufs;    /* the RECVS buffers, one allocation */
    unsigned pending; /* receives outstanding */
    bool want;
    bool warned; /* a failure was logged: the next ones are not, so none floods the log */
} id_socket;

_Static_assert(sizeof(id_socket *) <= WEFT__BE_LISTENER_BYTES, "a listener's be[] holds a pointer");

static id_socket **socket_slot(weft__listener *l)
{
    return (id_socket **)(void *)l->be;
}

static void warn(weft__loop *loop, id_socket *d, const weft__listener *l, const char *what, int err)
{
    if (d->warned)
        return;
    d->warned = true;
    weft__log(loop->engine, WEFT_LOG_WARN, "%s on %s: %s", what, l->url, weft_strerror(err));
}

/* Posts receive r: 0 when its completion will come through the port, or the negated errno
 * that refused it (no completion comes then). */
static int post_one(weft__loop *loop, weft__listener *l, id_recv *r)
{
    for (int tries = 0; tries < POST_TRIES; tries++) {
        memset(&r->ov, 0, sizeof(r->ov));
        r->fromlen = (INT)sizeof(r->from);
        r->flags = 0;
        size_t room = loop->rbuf_size > INT_MAX ? INT_MAX : loop->rbuf_size;
        WSABUF b = {(ULONG)room, (char *)r->buf};
        if (WSARecvFrom(l->fd, &b, 1, NULL, &r->flags, (struct sockaddr *)&r->from, &r->fromlen,
                        &r->ov, NULL) == 0)
            return 0; /* done at once: its completion is queued all the same */
        int wsa = WSAGetLastError();
        /* A datagram too big for the buffer ends the receive at once with a warning status,
         * not an error: its completion is queued too. */
        if (wsa == WSA_IO_PENDING || wsa == WSAEMSGSIZE)
            return 0;
        if (wsa != WSAECONNRESET && wsa != WSAENETRESET)
            return weft__sock_err_of((unsigned long)wsa);
        /* The report of an ICMP error for an earlier reply, not a datagram: again. */
    }
    return -ECONNRESET;
}

/* Posts every receive of l that is not outstanding; returns how many. *err (if not NULL)
 * gets the error of the last one refused. */
static unsigned post_idle(weft__loop *loop, weft__listener *l, id_socket *d, int *err)
{
    unsigned posted = 0;
    for (unsigned i = 0; i < RECVS; i++) {
        id_recv *r = &d->r[i];
        if (r->busy)
            continue;
        int rc = post_one(loop, l, r);
        if (rc != 0) {
            if (err != NULL)
                *err = rc;
            warn(loop, d, l, "WSARecvFrom", rc);
            continue; /* it stays idle: the next completion posts it again */
        }
        r->busy = true;
        d->pending++;
        posted++;
    }
    if (d->pending == 0 && d->want)
        weft__log(loop->engine, WEFT_LOG_ERROR,
                  "%s: no receive could be posted; the socket "
                  "stopped receiving",
                  l->url);
    return posted;
}

static int setup(weft__loop *loop, weft__listener *l, HANDLE port)
{
    id_socket *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return WEFT_ENOMEM;
    d->bufs = malloc((size_t)RECVS * loop->rbuf_size);
    if (d->bufs == NULL) {
        free(d);
        return WEFT_ENOMEM;
    }
    for (unsigned i = 0; i < RECVS; i++) {
        d->r[i].l = l;
        d->r[i].buf = d->bufs + (size_t)i * loop->rbuf_size;
    }
    if (CreateIoCompletionPort((HANDLE)l->fd, port, WEFT__IOCP_KEY_DGRAM, 0) == NULL) {
        int rc = weft__sock_err_of(GetLastError());
        weft__log(loop->engine, WEFT_LOG_ERROR, "listen %s: cannot join the completion port: %s",
                  l->url, weft_strerror(rc));
        free(d->bufs);
        free(d);
        return rc;
    }
    /* No receive should end for an ICMP report about a reply (Windows' default for UDP). */
    BOOL off = FALSE;
    DWORD got = 0;
    (void)WSAIoctl(l->fd, SIO_UDP_CONNRESET, &off, sizeof(off), NULL, 0, &got, NULL, NULL);
    *socket_slot(l) = d;
    return 0;
}

int weft__iocp_dgram_start(weft__loop *loop, weft__listener *l, HANDLE port)
{
    if (*socket_slot(l) == NULL) {
        int rc = setup(loop, l, port);
        if (rc != 0)
            return rc;
    }
    id_socket *d = *socket_slot(l);
    d->want = true;
    int err = 0;
    unsigned posted = post_idle(loop, l, d, &err);
    if (d->pending == 0) { /* every receive was refused, and err says why */
        d->want = false;
        return err;
    }
    return (int)posted;
}

void weft__iocp_dgram_stop(weft__listener *l)
{
    id_socket *d = *socket_slot(l);
    if (d == NULL)
        return;
    d->want = false;
    if (d->pending > 0 && l->fd != WEFT__SOCK_NONE)
        (void)CancelIoEx((HANDLE)l->fd, NULL);
}

unsigned weft__iocp_dgram_done(weft__loop *loop, OVERLAPPED *ov, DWORD bytes)
{
    id_recv *r = WEFT__CONTAINER_OF(ov, id_recv, ov);
    weft__listener *l = r->l;
    id_socket *d = *socket_slot(l);
    r->busy = false;
    d->pending--;
    int err = 0;
    if (ov->Internal != 0) { /* an NTSTATUS: anything but success says what it was */
        DWORD got, flags;
        err = -ECANCELED; /* the socket closed under it, which cancels it too */
        if (l->fd != WEFT__SOCK_NONE)
            err = WSAGetOverlappedResult(l->fd, ov, &got, FALSE, &flags) ? 0 : weft__sock_err();
    }
    if (err == 0 || err == -EMSGSIZE) {
        /* A datagram (or the start of one too big); after a stop it is not served. */
        if (d->want)
            weft__dgram_recv(l, r->buf, bytes, err != 0, (const struct sockaddr *)&r->from,
                             r->fromlen > 0 ? (socklen_t)r->fromlen : 0);
    } else if (err != -ECANCELED && err != -ECONNRESET && err != -ENETRESET) {
        /* Posted again by the next completion, not at once, which would spin on an error
         * that stays; unless it was the last one outstanding. */
        warn(loop, d, l, "WSARecvFrom", err);
        if (d->pending > 0)
            return 0;
    }
    return d->want ? post_idle(loop, l, d, NULL) : 0;
}

void weft__iocp_dgram_free(weft__listener *l)
{
    id_socket *d = *socket_slot(l);
    if (d == NULL || d->pending > 0)
        return;
    free(d->bufs);
    free(d);
    *socket_slot(l) = NULL;
}
