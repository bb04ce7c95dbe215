/* weft — a connection: what it asks of the backend, its opening, and its accessors. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void weft__conn_update_interest(weft_conn *c)
{
    bool read = false, write = false;
    if (c->flags & CONN_CONNECTING)
        write = true; /* writable = connect() finished, one way or the other */
    else if ((c->flags & (CONN_READING | CONN_PAUSED | CONN_CLOSING | CONN_PEER_EOF)) ==
                 CONN_READING ||
             (c->flags & CONN_LINGER))
        read = true;
    if (c->out.len > 0)
        write = true;
    c->loop->be->conn_want(c, read, write);
}

int weft__socket_tune(const weft_config *cfg, weft__sock fd, int family)
{
    if (family != AF_INET && family != AF_INET6)
        return 0;
    int on = 1;
    if (cfg->tcp_nodelay)
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, (const void *)&on, sizeof(on));
    if (cfg->tcp_keepalive_s > 0)
        (void)weft__sock_keepalive(fd, cfg->tcp_keepalive_s);
    return 0;
}

void weft__conn_opened(weft_conn *c)
{
    weft_engine *e = c->loop->engine;
    if (e->balancer != NULL)
        weft_balancer_on_open(e->balancer, c->loop->index);
    weft__conn_announce(c);
}

void weft__conn_announce(weft_conn *c)
{
    weft__loop *loop = c->loop;
    weft_engine *e = loop->engine;
    weft__conn_update_interest(c);
    weft__wheel_schedule(c);
    if (e->cfg.handler.on_open != NULL) {
        weft__loop_enter(loop);
        weft_action a = e->cfg.handler.on_open(c);
        if (a == WEFT_ACTION_CLOSE)
            weft__conn_close_graceful(c, 0);
        else if (a == WEFT_ACTION_SHUTDOWN)
            weft__loop_request_stop(e);
        weft__loop_leave(loop);
    }
}

/* ---- the read timeout's clock ---- */

static bool reading_counts(const weft_conn *c)
{
    return (c->flags & (CONN_READING | CONN_PAUSED)) == CONN_READING;
}

/* The read timeout counts only the time a partial frame waits while we read: since_ms is
 * when that wait began while reading, and how long it had lasted while not. So a pause
 * (weft_conn_pause_read, or the high-water mark) holds the clock and a resume goes on from
 * where it stopped, instead of starting it again: a peer that trickles a frame through a
 * server that keeps pausing still runs out of time. Call with the flags as they were
 * before a change, and the change applied in between. */
void weft__conn_read_clock(weft_conn *c, bool counted_before)
{
    bool counts = reading_counts(c);
    if (counts == counted_before || !(c->flags & CONN_PARTIAL))
        return;
    c->since_ms = c->loop->now_ms - c->since_ms; /* a start time <-> a duration */
    if (counts) /* filed by its idle deadline while paused: by the read one again */
        weft__wheel_schedule(c);
}

void weft__conn_read_clock_start(weft_conn *c)
{
    c->since_ms = reading_counts(c) ? c->loop->now_ms : 0;
}

/* ---- public connection API (owning loop's thread) ---- */

/* Milliseconds to wheel ticks, rounded up (a timeout never fires early), at most
 * WEFT_TIMEOUT_MAX_MS. */
static uint16_t timeout_ticks(unsigned ms)
{
    if (ms == WEFT_TIMEOUT_DEFAULT)
        return WEFT__TIMEOUT_DEFAULT;
    unsigned t = (ms + WEFT__TW_TICK_MS - 1u) / WEFT__TW_TICK_MS;
    return (uint16_t)(t > WEFT__TIMEOUT_MAX_TICKS ? WEFT__TIMEOUT_MAX_TICKS : t);
}

int weft_conn_set_timeouts(weft_conn *c, unsigned idle_ms, unsigned read_ms)
{
    if (c->flags & CONN_DGRAM)
        return WEFT_EINVAL;
    if (c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING | CONN_CLOSING))
        return WEFT_ECLOSED;
    uint32_t own = (uint32_t)timeout_ticks(idle_ms) << 16 | timeout_ticks(read_ms);
    uint32_t **t = &c->loop->timeouts[c->slot >> WEFT__CHUNK_SHIFT];
    if (*t == NULL && own != WEFT__TIMEOUTS_DEFAULT) {
        *t = malloc(WEFT__CHUNK_SIZE * sizeof(**t));
        if (*t == NULL)
            return WEFT_ENOMEM;
        memset(*t, 0xff, WEFT__CHUNK_SIZE * sizeof(**t)); /* WEFT__TIMEOUTS_DEFAULT */
    }
    if (*t != NULL)
        (*t)[c->slot & (WEFT__CHUNK_SIZE - 1u)] = own;
    weft__wheel_schedule(c); /* by the new deadlines */
    return 0;
}

int weft_conn_pause_read(weft_conn *c)
{
    if (c->flags & CONN_DGRAM)
        return WEFT_EINVAL;
    if (c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING | CONN_CLOSING))
        return WEFT_ECLOSED;
    bool counted = reading_counts(c);
    c->flags &= (uint16_t)~CONN_READING;
    weft__conn_read_clock(c, counted);
    weft__conn_update_interest(c);
    return 0;
}

int weft_conn_resume_read(weft_conn *c)
{
    if (c->flags & CONN_DGRAM)
        return WEFT_EINVAL;
    /* Reading that stopped for a close or a decode error never comes back. After the peer's
     * end c is closing unless input waits: resuming offers that, and c closes then. */
    if (c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING | CONN_CLOSING | CONN_DECODE_FAILED))
        return WEFT_ECLOSED;
    if (c->flags & CONN_READING)
        return 0;
    bool counted = reading_counts(c);
    c->flags |= CONN_READING;
    weft__conn_read_clock(c, counted);
    weft__conn_update_interest(c);
    /* Bytes buffered while paused may be all the peer sends for now: offer them without
     * waiting for more. Through the queue, since the caller may be inside another
     * connection's on_traffic, whose view a nested dispatch would overwrite. Inside conn's
     * own on_traffic the caller is looking at those bytes already. */
    if (c->in.len > 0 && c->loop->cur != c)
        (void)weft__loop_post_wake(c->loop, weft_conn_get_ref(c));
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
    /* A Windows SOCKET is a handle whose value fits in 32 bits (64-bit Windows keeps handles
     * so, for 32-bit processes), so it survives the int of the public API. */
    return (int)c->fd;
}

size_t weft_conn_get_pending_out(const weft_conn *c)
{
    return weft__conn_backlog(c);
}

int weft_conn_get_local_addr(const weft_conn *c, struct sockaddr_storage *addr, socklen_t *len)
{
    *len = sizeof(*addr);
    return getsockname(c->fd, (struct sockaddr *)addr, len) == 0 ? 0 : weft__sock_err();
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
    return getpeername(c->fd, (struct sockaddr *)addr, len) == 0 ? 0 : weft__sock_err();
}
