/* weft — datagram sockets where this build has none (Windows: its IOCP backend has no
 * overlapped WSARecvFrom yet). A udp:// or unixgram:// listener fails at start with a clear
 * error (the backend's listener_start), so no connection is ever a datagram one and the
 * loop side below is never reached. */
#include "internal.h"

weft_conn *weft__dgram_new(weft__loop *loop, weft__listener *l)
{
    (void)loop;
    (void)l;
    return NULL;
}

void weft__dgram_batch_free(weft__loop *loop)
{
    (void)loop;
}

void weft__dgram_ready(weft__listener *l)
{
    (void)l;
}

int weft__dgram_send(weft_conn *c, const struct iovec *iov, int iovcnt, const struct sockaddr *to,
                     socklen_t tolen)
{
    (void)c;
    (void)iov;
    (void)iovcnt;
    (void)to;
    (void)tolen;
    return WEFT_ENOSYS;
}

int weft_conn_sendto(weft_conn *c, const struct sockaddr *to, socklen_t tolen, const void *data,
                     size_t len)
{
    (void)c;
    (void)to;
    (void)tolen;
    (void)data;
    (void)len;
    return WEFT_EINVAL; /* no connection is a datagram one here */
}

bool weft_conn_is_datagram(const weft_conn *c)
{
    (void)c;
    return false;
}
