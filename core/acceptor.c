/* weft — accepting connections and handing them to loops.
 *
 * The acceptor thread runs a loop of its own kind: it owns the listeners of the hand-off
 * mode and the engine's stop signal, and no connections. In reuse_port mode (and with a
 * single loop) each loop accepts on its own listener through the same code. Either way the
 * backend accepts, and tells weft__listener_accepted what came of it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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

/* Hands fd to a loop chosen by the balancer; closes it on failure. */
static void hand_off(weft_engine *e, int fd, const struct sockaddr *peer, socklen_t plen)
{
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

static void resume_fire(weft__timer_node *n)
{
    weft__listener *l = WEFT__CONTAINER_OF(n, weft__listener, resume);
    weft__loop *loop = listener_loop(l);
    if (l->fd >= 0 && !loop->stopping && !l->active && loop->be->listener_start(loop, l) == 0)
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

bool weft__listener_accepted(weft__listener *l, int fd, const struct sockaddr *peer, socklen_t plen)
{
    weft_engine *e = l->engine;
    if (fd < 0) {
        switch (-fd) {
        case EINTR:
        case ECONNABORTED:
        case EPROTO:
        case EPERM:
            return true; /* that peer is gone or refused; the next one may be fine */
        case EMFILE:
        case ENFILE:
        case ENOBUFS:
        case ENOMEM:
            pause_listener(l, fd);
            return false;
        default:
            atomic_fetch_add_explicit(&e->accept_errors, 1, memory_order_relaxed);
            weft__log(e, WEFT_LOG_ERROR, "accept on %s: %s", l->url, weft_strerror(fd));
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
        hand_off(e, fd, named ? peer : NULL, named ? plen : 0);
        return true;
    }
    weft__loop *loop = l->owner;
    loop->nio++;
    atomic_fetch_add_explicit(&loop->stats.live, 1, memory_order_relaxed);
    weft__loop_enter(loop);
    weft__loop_adopt(loop, fd, l->family, NULL, false);
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

/* The acceptor's wake-up: weft_engine_stop kicked it. */
static void acceptor_woken(weft__loop *acc)
{
    weft_engine *e = acc->engine;
    weft__task *tasks;
    size_t n;
    weft__queue_drain(&acc->queue, &tasks, &n); /* nothing is queued here; clears the wakeup */
    if (!atomic_load(&e->stop_requested) || acc->stopping)
        return;
    acc->stopping = true;
    /* Stop accepting first, so no hand-off can follow the loops' STOP. */
    weft__listeners_stop(acc);
    for (size_t i = 0; i < acc->nlisteners; i++)
        weft__listener_close(acc->listeners[i]);
    weft__task t;
    memset(&t, 0, sizeof(t));
    t.kind = WEFT__TASK_STOP;
    for (unsigned i = 0; i < e->nloops; i++) {
        while (weft__queue_push(&e->loops[i].queue, &t) != 0)
            usleep(1000); /* out of memory: the STOP must get through */
    }
    acc->quit = true;
}

int weft__acceptor_setup(weft_engine *e)
{
    weft__loop *acc = &e->acceptor;
    int rc = weft__loop_init_acceptor(e, acc);
    if (rc != 0)
        return rc;
    acc->woken = acceptor_woken;
    return weft__listeners_start(acc);
}

void weft__acceptor_teardown(weft_engine *e)
{
    weft__loop_destroy(&e->acceptor);
}

void *weft__acceptor_main(void *arg)
{
    weft_engine *e = arg;
    pthread_setname_np(pthread_self(), "weft-accept");
    if (weft__wait_gate(e))
        weft__loop_run(&e->acceptor);
    return NULL;
}
