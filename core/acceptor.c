/* weft — accepting connections and handing them to loops.
 *
 * The acceptor thread owns the listeners of the hand-off mode and the engine's stop
 * signal. In reuse_port mode each loop accepts on its own listener with the same code. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

#define ACCEPT_BATCH   64
#define BACKOFF_MIN_MS 10u
#define BACKOFF_MAX_MS 1000u

struct event_base *weft__new_base(void);

/* Past max_connections a new connection is closed at once, before any loop sees it: the
 * peer gets a clean close and the connections already open are not disturbed. */
static bool over_limit(weft_engine *e, int fd)
{
    unsigned max = e->cfg.max_connections;
    if (max == 0)
        return false;
    uint64_t live = 0;
    for (unsigned i = 0; i < e->nloops; i++)
        live += atomic_load_explicit(&e->loops[i].stats.live, memory_order_relaxed);
    if (live < max)
        return false;
    /* Counted before the close: whoever sees the peer closed must see it counted. */
    uint64_t n = atomic_fetch_add_explicit(&e->rejected, 1, memory_order_relaxed);
    close(fd);
    if ((n & (n + 1)) == 0) /* 1st, 2nd, 4th, 8th, ...: loud enough, never a flood */
        weft__log(e, WEFT_LOG_WARN, "max_connections (%u) reached: refused %llu connections", max,
                  (unsigned long long)n + 1);
    return true;
}

void weft__dispatch_fd(weft_engine *e, int fd, const struct sockaddr *peer, socklen_t plen)
{
    if (over_limit(e, fd))
        return;
    size_t k = 0;
    if (e->nloops > 1 && e->balancer != NULL) {
        weft_lb_view view = {e->nloops, NULL};
        if (weft_balancer_needs_live(e->balancer)) {
            for (unsigned i = 0; i < e->nloops; i++)
                e->live_snapshot[i] =
                    atomic_load_explicit(&e->loops[i].stats.live, memory_order_relaxed);
            view.live = e->live_snapshot;
        }
        k = weft_balancer_pick(e->balancer, peer, plen, &view);
        if (k >= e->nloops)
            k %= e->nloops;
    }
    weft__loop *loop = &e->loops[k];
    /* Counted at hand-off, not at open, so a burst of accepts sees its own choices. */
    atomic_fetch_add_explicit(&loop->stats.live, 1, memory_order_relaxed);
    weft__task t;
    memset(&t, 0, sizeof(t));
    t.kind = WEFT__TASK_NEW_CONN;
    t.fd = fd;
    t.family = peer != NULL ? peer->sa_family : AF_UNIX;
    if (weft__queue_push(&loop->queue, &t) != 0) {
        weft__log(e, WEFT_LOG_ERROR, "no memory to hand a connection to loop %zu; closing it", k);
        atomic_fetch_sub_explicit(&loop->stats.live, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&e->rejected, 1, memory_order_relaxed);
        close(fd);
    }
}

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    weft__listener *l = arg;
    if (l->fd >= 0 && !l->ev_added && event_add(&l->ev, NULL) == 0)
        l->ev_added = true;
}

/* Out of descriptors (or kernel memory): stop watching this listener for a while instead
 * of spinning on a ready socket we cannot accept from. Pending peers wait in the backlog
 * and are served once descriptors free up. */
static void pause_listener(weft__listener *l, int err)
{
    weft_engine *e = l->engine;
    atomic_fetch_add_explicit(&e->accept_errors, 1, memory_order_relaxed);
    if (l->backoff_ms == 0)
        weft__log(e, WEFT_LOG_WARN, "accept on %s: %s; pausing accepts", l->url,
                  weft_strerror(err));
    l->backoff_ms = l->backoff_ms == 0 ? BACKOFF_MIN_MS : l->backoff_ms * 2;
    if (l->backoff_ms > BACKOFF_MAX_MS)
        l->backoff_ms = BACKOFF_MAX_MS;
    if (l->ev_added)
        event_del(&l->ev);
    l->ev_added = false;
    struct timeval tv = {(time_t)(l->backoff_ms / 1000),
                         (suseconds_t)((l->backoff_ms % 1000) * 1000)};
    evtimer_add(&l->resume_ev, &tv);
}

/* Accepts up to a batch; calls take(fd) for each. */
static void accept_batch(weft__listener *l,
                         void (*take)(weft__listener *, int, const struct sockaddr *, socklen_t))
{
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int err = errno;
            switch (err) {
            case EAGAIN:
#if EAGAIN != EWOULDBLOCK
            case EWOULDBLOCK:
#endif
                return;
            case EINTR:
            case ECONNABORTED:
            case EPROTO:
            case EPERM:
                continue;
            case EMFILE:
            case ENFILE:
            case ENOBUFS:
            case ENOMEM:
                pause_listener(l, -err);
                return;
            default:
                atomic_fetch_add_explicit(&l->engine->accept_errors, 1, memory_order_relaxed);
                weft__log(l->engine, WEFT_LOG_ERROR, "accept on %s: %s", l->url,
                          weft_strerror(-err));
                return;
            }
        }
        if (l->backoff_ms != 0) {
            weft__log(l->engine, WEFT_LOG_INFO, "accept on %s: resumed", l->url);
            l->backoff_ms = 0;
        }
        take(l, fd, (const struct sockaddr *)&ss, sl);
    }
}

static void take_handoff(weft__listener *l, int fd, const struct sockaddr *sa, socklen_t sl)
{
    /* A Unix peer is unnamed: no address to balance on. */
    weft__dispatch_fd(l->engine, fd, l->family != AF_UNIX ? sa : NULL,
                      l->family != AF_UNIX ? sl : 0);
}

static void take_local(weft__listener *l, int fd, const struct sockaddr *sa, socklen_t sl)
{
    (void)sa;
    (void)sl;
    weft__loop *loop = l->owner;
    if (over_limit(l->engine, fd))
        return;
    atomic_fetch_add_explicit(&loop->stats.live, 1, memory_order_relaxed);
    weft__loop_adopt(loop, fd, l->family, NULL, false);
}

static void acceptor_accept_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    accept_batch(arg, take_handoff);
}

void weft__loop_accept_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    weft__listener *l = arg;
    l->owner->nio++;
    weft__loop_enter(l->owner);
    accept_batch(l, take_local);
    weft__loop_leave(l->owner);
}

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    weft_engine *e = arg;
    uint64_t v;
    (void)!read(fd, &v, sizeof(v));
    /* Stop accepting first, so no hand-off can follow the loops' STOP. */
    for (size_t i = 0; i < e->nlisteners; i++) {
        weft__listener *l = &e->listeners[i];
        if (l->owner != NULL)
            continue;
        if (l->ev_added)
            event_del(&l->ev);
        l->ev_added = false;
        event_del(&l->resume_ev);
        weft__listener_close(l);
    }
    weft__task t;
    memset(&t, 0, sizeof(t));
    t.kind = WEFT__TASK_STOP;
    for (unsigned i = 0; i < e->nloops; i++) {
        while (weft__queue_push(&e->loops[i].queue, &t) != 0)
            usleep(1000); /* out of memory: the STOP must get through */
    }
    event_base_loopbreak(e->abase);
}

int weft__acceptor_setup(weft_engine *e)
{
    e->abase = weft__new_base();
    if (e->abase == NULL)
        return WEFT_ENOMEM;
    e->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (e->stop_fd < 0)
        return -errno;
    event_assign(&e->stop_ev, e->abase, e->stop_fd, EV_READ | EV_PERSIST, stop_cb, e);
    if (event_add(&e->stop_ev, NULL) != 0)
        return WEFT_ENOMEM;
    for (size_t i = 0; i < e->nlisteners; i++) {
        weft__listener *l = &e->listeners[i];
        struct event_base *b = l->owner != NULL ? l->owner->base : e->abase;
        evtimer_assign(&l->resume_ev, b, resume_cb, l);
        l->resume_assigned = true;
        if (l->owner != NULL)
            continue; /* the loop registered it */
        event_assign(&l->ev, e->abase, l->fd, EV_READ | EV_PERSIST, acceptor_accept_cb, l);
        if (event_add(&l->ev, NULL) != 0)
            return WEFT_ENOMEM;
        l->ev_added = true;
    }
    return 0;
}

void weft__acceptor_teardown(weft_engine *e)
{
    for (size_t i = 0; i < e->nlisteners; i++) {
        weft__listener *l = &e->listeners[i];
        if (l->owner == NULL && l->ev_added)
            event_del(&l->ev);
        if (l->resume_assigned && l->owner == NULL)
            event_del(&l->resume_ev);
        l->ev_added = false;
    }
    if (e->abase != NULL) {
        event_del(&e->stop_ev);
        event_base_free(e->abase);
        e->abase = NULL;
    }
    if (e->stop_fd >= 0)
        close(e->stop_fd);
    e->stop_fd = -1;
}

void *weft__acceptor_main(void *arg)
{
    weft_engine *e = arg;
    pthread_setname_np(pthread_self(), "weft-accept");
    if (weft__wait_gate(e))
        event_base_dispatch(e->abase);
    return NULL;
}
