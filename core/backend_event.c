/* weft — the readiness backend: epoll (or whatever libevent picks) through libevent.
 *
 * libevent is only the poller here: one event_base per loop thread, plain events on
 * non-blocking sockets, no bufferevents (weft owns its buffers) and no locks (each base
 * has one thread; other threads reach a loop through its queue). A connection has one
 * event for both directions; interest changes only on a short write, so re-registering
 * is rare. Reads land where the connection layer says (weft__conn_recv_buf), sends go
 * out with send()/sendmsg() at once.
 */
#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "internal.h"

#define ACCEPT_BATCH 64

typedef struct ev_state {
    struct event_base *base;
    struct event wake_ev;
    struct event timeout_ev;
    bool wake_added;
    bool timeout_armed;
    uint64_t timeout_due_ms; /* when the armed timeout fires (CLOCK_MONOTONIC, ms) */
    int delivered;           /* events delivered in the running poll */
} ev_state;

typedef struct ev_conn {
    struct event ev;
} ev_conn;

typedef struct ev_listener {
    struct event ev;
    bool added;
} ev_listener;

_Static_assert(sizeof(ev_conn) <= WEFT__BE_CONN_BYTES, "WEFT__BE_CONN_BYTES is too small");
_Static_assert(sizeof(ev_listener) <= WEFT__BE_LISTENER_BYTES,
               "WEFT__BE_LISTENER_BYTES is too small");

static ev_conn *conn_state(weft_conn *c)
{
    return (ev_conn *)(void *)c->be;
}

static ev_listener *listener_state(weft__listener *l)
{
    return (ev_listener *)(void *)l->be;
}

/* EV_READ | EV_WRITE as registered now. Read from the event itself (a zeroed or deleted
 * event is not inserted), so a connection carries no byte more than libevent's event. */
static short registered(const ev_conn *s)
{
    if (!(s->ev.ev_evcallback.evcb_flags & EVLIST_INSERTED))
        return 0;
    return (short)(s->ev.ev_events & (EV_READ | EV_WRITE));
}

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    weft__loop *loop = arg;
    ((ev_state *)loop->be_state)->delivered++;
    weft__loop_woken(loop);
}

static void timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ((ev_state *)arg)->timeout_armed = false; /* only ends the wait: the loop runs its timers */
}

static int ev_loop_init(weft__loop *loop)
{
    ev_state *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return WEFT_ENOMEM;
    loop->be_state = s;
    /* One thread per base and cross-thread work through our own queue: libevent's locks
     * would only cost time. */
    struct event_config *ec = event_config_new();
    if (ec == NULL)
        return WEFT_ENOMEM;
    event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
    event_config_set_flag(ec, EVENT_BASE_FLAG_IGNORE_ENV);
    s->base = event_base_new_with_config(ec);
    event_config_free(ec);
    if (s->base == NULL)
        return WEFT_ENOMEM;
    evtimer_assign(&s->timeout_ev, s->base, timeout_cb, s);
    event_assign(&s->wake_ev, s->base, loop->queue.waker.fd, EV_READ | EV_PERSIST, wake_cb, loop);
    if (event_add(&s->wake_ev, NULL) != 0)
        return WEFT_ENOMEM;
    s->wake_added = true;
    return 0;
}

static void ev_loop_destroy(weft__loop *loop)
{
    ev_state *s = loop->be_state;
    if (s == NULL)
        return;
    if (s->base != NULL) {
        if (s->wake_added)
            event_del(&s->wake_ev);
        event_del(&s->timeout_ev);
        event_base_free(s->base);
    }
    free(s);
    loop->be_state = NULL;
}

static int ev_poll(weft__loop *loop, int timeout_ms)
{
    ev_state *s = loop->be_state;
    int flags = EVLOOP_ONCE;
    s->delivered = 0;
    if (timeout_ms == 0) {
        flags |= EVLOOP_NONBLOCK;
    } else {
        /* The wait ends by the loop's next timer, mostly the same one iteration after
         * iteration (the wheel's tick): re-armed only when that deadline moves, so an
         * iteration costs no timer insert and delete of libevent's. A deadline armed a
         * little early only makes one wait end early, which the loop handles anyway. */
        uint64_t now = weft__mono_ns() / 1000000u;
        uint64_t due = timeout_ms < 0 ? UINT64_MAX : now + (uint64_t)timeout_ms;
        bool keep = s->timeout_armed && s->timeout_due_ms <= due && s->timeout_due_ms + 2 >= due;
        if (!keep && s->timeout_armed) {
            evtimer_del(&s->timeout_ev);
            s->timeout_armed = false;
        }
        if (!keep && timeout_ms > 0) {
            struct timeval tv = {(time_t)(timeout_ms / 1000),
                                 (suseconds_t)(timeout_ms % 1000) * 1000};
            if (evtimer_add(&s->timeout_ev, &tv) == 0) {
                s->timeout_armed = true;
                s->timeout_due_ms = due;
            }
        }
    }
    int rc = event_base_loop(s->base, flags);
    return rc < 0 ? WEFT_ENOMEM : s->delivered;
}

/* Reads once into where the connection layer says; EAGAIN is no event at all. */
static void conn_read(weft_conn *c)
{
    size_t room;
    uint8_t *p = weft__conn_recv_buf(c, &room);
    if (p == NULL)
        return;
    ssize_t n;
    do {
        n = recv(c->fd, p, room, 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        int err = errno;
        if (err == EAGAIN || err == EWOULDBLOCK)
            return;
        n = -err;
    }
    weft__conn_recv_done(c, p, n);
}

static void conn_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    weft_conn *c = arg;
    ((ev_state *)c->loop->be_state)->delivered++;
    /* One dispatch for both directions: what the write side queued leaves with the read
     * side's answers. */
    weft__loop_enter(c->loop);
    if (what & EV_WRITE)
        weft__conn_writable(c);
    /* The write side may have closed it, or changed what it wants. */
    if ((what & EV_READ) && (registered(conn_state(c)) & EV_READ))
        conn_read(c);
    weft__loop_leave(c->loop);
}

static int ev_conn_open(weft_conn *c)
{
    memset(conn_state(c), 0, sizeof(ev_conn));
    return 0;
}

static void ev_conn_want(weft_conn *c, bool read, bool write)
{
    ev_conn *s = conn_state(c);
    short want = (short)((read ? EV_READ : 0) | (write ? EV_WRITE : 0));
    short have = registered(s);
    if (want == have)
        return;
    if (have != 0)
        event_del(&s->ev);
    if (want == 0)
        return;
    event_assign(&s->ev, ((ev_state *)c->loop->be_state)->base, c->fd, (short)(want | EV_PERSIST),
                 conn_cb, c);
    (void)event_add(&s->ev, NULL); /* on failure nothing is registered, and we know it */
}

static ssize_t ev_conn_send(weft_conn *c, const struct iovec *iov, int iovcnt)
{
    ssize_t n;
    if (iovcnt == 1) { /* the common case: send() skips the kernel's message-header work */
        do {
            n = send(c->fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL | MSG_DONTWAIT);
        } while (n < 0 && errno == EINTR);
    } else {
        struct msghdr mh;
        memset(&mh, 0, sizeof(mh));
        mh.msg_iov = (struct iovec *)iov;
        mh.msg_iovlen = (size_t)iovcnt;
        do {
            n = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        } while (n < 0 && errno == EINTR);
    }
    if (n >= 0)
        return n;
    int err = errno;
    return err == EAGAIN || err == EWOULDBLOCK ? 0 : -err;
}

static bool ev_conn_close(weft_conn *c)
{
    ev_conn_want(c, false, false);
    return false;
}

static void listener_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    weft__listener *l = arg;
    weft__loop *loop = l->owner != NULL ? l->owner : &l->engine->acceptor;
    ((ev_state *)loop->be_state)->delivered++;
    if (l->type == SOCK_DGRAM) {
        weft__dgram_ready(l);
        return;
    }
    for (int i = 0; i < ACCEPT_BATCH && l->active; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int cfd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        int err = 0;
        if (cfd < 0) {
            err = errno;
            if (err == EAGAIN || err == EWOULDBLOCK)
                return;
        }
        if (!weft__listener_accepted(l, cfd, -err, (const struct sockaddr *)&ss, sl))
            return;
    }
}

static int ev_listener_start(weft__loop *loop, weft__listener *l)
{
    ev_listener *s = listener_state(l);
    if (s->added)
        return 0;
    event_assign(&s->ev, ((ev_state *)loop->be_state)->base, l->fd, EV_READ | EV_PERSIST,
                 listener_cb, l);
    if (event_add(&s->ev, NULL) != 0)
        return WEFT_ENOMEM;
    s->added = true;
    return 0;
}

static void ev_listener_stop(weft__loop *loop, weft__listener *l)
{
    (void)loop;
    ev_listener *s = listener_state(l);
    if (s->added)
        event_del(&s->ev);
    s->added = false;
}

const weft__backend weft__backend_event = {
    .name = "epoll",
    .conn_bytes = sizeof(ev_conn),
    .completion = false,
    .loop_init = ev_loop_init,
    .loop_destroy = ev_loop_destroy,
    .poll = ev_poll,
    .conn_open = ev_conn_open,
    .conn_want = ev_conn_want,
    .conn_send = ev_conn_send,
    .conn_close = ev_conn_close,
    .listener_start = ev_listener_start,
    .listener_stop = ev_listener_stop,
};
