/* weft — the acceptor: the thread that accepts for the hand-off mode, and the stop signal.
 *
 * The acceptor thread runs a loop of its own kind: it owns the listeners of the hand-off
 * mode and the engine's stop signal, and no connections. Its backend accepts (accept.c
 * says what an accept comes to); each connection goes to the loop the balancer picks.
 */
#include <string.h>
#include <unistd.h> /* usleep */

#include "internal.h"

/* Hands fd to a loop chosen by the balancer; closes it on failure. */
static void hand_off(weft_engine *e, weft__listener *l, weft__sock fd, const struct sockaddr *peer,
                     socklen_t plen)
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
    t.data = l->tls; /* the loop never reads the listener, which this thread closes */
    if (weft__queue_push(&loop->queue, &t) != 0) {
        weft__log(e, WEFT_LOG_ERROR, "no memory to hand a connection to loop %zu; closing it", k);
        atomic_fetch_sub_explicit(&loop->stats.live, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&e->rejected, 1, memory_order_relaxed);
        weft__sock_close(fd);
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
    e->hand_off = hand_off;
    return weft__listeners_start(acc);
}

void weft__acceptor_teardown(weft_engine *e)
{
    weft__loop_destroy(&e->acceptor);
}
