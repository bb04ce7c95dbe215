/* weft — accepting on a loop: what the backend's accepts come to, and pausing a listener
 * when the process is out of descriptors.
 *
 * Runs on the thread of the loop that owns the listener: a worker loop in reuse_port mode
 * (or with a single loop), where the connection is adopted right here, or the acceptor's
 * loop, which hands each connection to a worker loop through the engine's hand_off (set by
 * acceptor.c, the control side that owns the balancer).
 */
#include <errno.h>

#include "internal.h"

#define BACKOFF_MIN_MS 10u
#define BACKOFF_MAX_MS 1000u

/* The loop whose backend accepts on l. */
static weft__loop *listener_loop(weft__listener *l)
{
    return l->owner != NULL ? l->owner : &l->engine->acceptor;
}

/* Past max_connections a new connection is closed at once, before any loop sees it: the
 * peer gets a clean close and the connections already open are not disturbed. */
static bool over_limit(weft_engine *e, weft__sock fd)
{
    unsigned max = e->cfg.max_connections;
    if (!weft__engine_at_max_conns(e))
        return false;
    /* Counted before the close: whoever sees the peer closed must see it counted. */
    uint64_t n = atomic_fetch_add_explicit(&e->rejected, 1, memory_order_relaxed);
    weft__sock_close(fd);
    if ((n & (n + 1)) == 0) /* 1st, 2nd, 4th, 8th, ...: loud enough, never a flood */
        weft__log(e, WEFT_LOG_WARN, "max_connections (%u) reached: refused %llu connections", max,
                  (unsigned long long)n + 1);
    return true;
}

static void resume_fire(weft__timer_node *n)
{
    weft__listener *l = WEFT__CONTAINER_OF(n, weft__listener, resume);
    weft__loop *loop = listener_loop(l);
    if (l->fd != WEFT__SOCK_NONE && !loop->stopping && !l->active &&
        loop->be->listener_start(loop, l) == 0)
        l->active = true;
}

/* Out of descriptors (or kernel memory): stop watching this listener for a while instead
 * of spinning on a ready socket we cannot accept from. Pending peers wait in the backlog
 * and are served once descriptors free up. */
static void pause_listener(weft__listener *l, int err)
{
    weft_engine *e = l->engine;
    weft__loop *loop = listener_loop(l);
    atomic_fetch_add_explicit(&e->accept_errors, 1, memory_order_relaxed);
    if (l->backoff_ms == 0)
        weft__log(e, WEFT_LOG_WARN, "accept on %s: %s; pausing accepts", l->url,
                  weft_strerror(err));
    l->backoff_ms = l->backoff_ms == 0 ? BACKOFF_MIN_MS : l->backoff_ms * 2;
    if (l->backoff_ms > BACKOFF_MAX_MS)
        l->backoff_ms = BACKOFF_MAX_MS;
    if (l->active)
        loop->be->listener_stop(loop, l);
    l->active = false;
    if (weft__loop_timer_arm(loop, &l->resume, l->backoff_ms) != 0)
        resume_fire(&l->resume); /* no memory to wait: try again at once */
}

bool weft__listener_accepted(weft__listener *l, weft__sock fd, int err, const struct sockaddr *peer,
                             socklen_t plen)
{
    weft_engine *e = l->engine;
    if (err < 0) {
        switch (-err) {
        case ECONNABORTED:
        case ECONNRESET:
            /* That peer left before it was accepted (Windows' AcceptEx says so with a
             * reset): counted, since no on_open or on_close will ever tell of it. */
            atomic_fetch_add_explicit(&e->accept_errors, 1, memory_order_relaxed);
            return true;
        case EINTR:
        case EPROTO:
        case EPERM:
            return true; /* that peer is refused; the next one may be fine */
        case EMFILE:
        case ENFILE:
        case ENOBUFS:
        case ENOMEM:
            pause_listener(l, err);
            return false;
        default:
            atomic_fetch_add_explicit(&e->accept_errors, 1, memory_order_relaxed);
            weft__log(e, WEFT_LOG_ERROR, "accept on %s: %s", l->url, weft_strerror(err));
            return false;
        }
    }
    if (l->backoff_ms != 0) {
        weft__log(e, WEFT_LOG_INFO, "accept on %s: resumed", l->url);
        l->backoff_ms = 0;
    }
    if (over_limit(e, fd))
        return true;
    if (l->owner == NULL) {
        /* A Unix peer is unnamed: no address to balance on. */
        bool named = l->family != AF_UNIX;
        e->hand_off(e, l, fd, named ? peer : NULL, named ? plen : 0);
        return true;
    }
    weft__loop *loop = l->owner;
    loop->nio++;
    atomic_fetch_add_explicit(&loop->stats.live, 1, memory_order_relaxed);
    weft__loop_enter(loop);
    weft__loop_adopt(loop, fd, l->family, NULL, false, l->tls);
    weft__loop_leave(loop);
    return true;
}

int weft__listeners_start(weft__loop *loop)
{
    for (size_t i = 0; i < loop->nlisteners; i++) {
        weft__listener *l = loop->listeners[i];
        weft__timer_node_init(&l->resume, resume_fire);
        int rc = loop->be->listener_start(loop, l);
        if (rc != 0)
            return rc;
        l->active = true;
    }
    return 0;
}

void weft__listeners_stop(weft__loop *loop)
{
    for (size_t i = 0; i < loop->nlisteners; i++) {
        weft__listener *l = loop->listeners[i];
        if (l->active)
            loop->be->listener_stop(loop, l);
        l->active = false;
        weft__timer_heap_cancel(&loop->timers, &l->resume);
    }
}
