/* weft — user timers on a connection (weft_conn_after).
 *
 * A timer is a libevent timer of its own, allocated only when a user asks for one, so a
 * connection that never uses timers pays nothing. Timers name their connection by slot and
 * generation: when the connection closes they are cancelled and their callbacks never run.
 */
#include <stdlib.h>

#include "internal.h"

typedef struct weft__timer {
    struct event ev;
    weft__loop *loop;
    struct weft__timer *prev, *next;
    uint64_t id;
    uint32_t slot;
    uint32_t gen;
    weft_timer_cb cb;
    void *arg;
} weft__timer;

static void unlink_timer(weft__timer *t)
{
    if (t->prev != NULL)
        t->prev->next = t->next;
    else
        t->loop->timers = t->next;
    if (t->next != NULL)
        t->next->prev = t->prev;
    t->prev = t->next = NULL;
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    weft__timer *t = arg;
    weft__loop *loop = t->loop;
    unlink_timer(t);
    weft_conn *c = weft__slot_get(loop, t->slot);
    if (c != NULL && atomic_load_explicit(&c->gen, memory_order_relaxed) == t->gen &&
        (c->flags & CONN_LIVE) && !(c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING))) {
        weft__loop_enter(loop);
        t->cb(c, t->arg);
        weft__loop_leave(loop);
    }
    free(t);
}

int weft_conn_after(weft_conn *c, unsigned ms, weft_timer_cb cb, void *arg, uint64_t *id)
{
    if (cb == NULL || (c->flags & CONN_DGRAM)) /* a datagram socket has no slot to name */
        return WEFT_EINVAL;
    if (c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING))
        return WEFT_ECLOSED;
    weft__loop *loop = c->loop;
    weft__timer *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return WEFT_ENOMEM;
    t->loop = loop;
    t->id = ++loop->next_timer_id;
    t->slot = c->slot;
    t->gen = atomic_load_explicit(&c->gen, memory_order_relaxed);
    t->cb = cb;
    t->arg = arg;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_assign(&t->ev, loop->base, timer_cb, t);
    if (evtimer_add(&t->ev, &tv) != 0) {
        free(t);
        return WEFT_ENOMEM;
    }
    t->next = loop->timers;
    if (t->next != NULL)
        t->next->prev = t;
    loop->timers = t;
    c->flags |= CONN_HAS_TIMERS;
    if (id != NULL)
        *id = t->id;
    return 0;
}

int weft_conn_cancel_timer(weft_conn *c, uint64_t id)
{
    for (weft__timer *t = c->loop->timers; t != NULL; t = t->next) {
        if (t->id == id && t->slot == c->slot) {
            event_del(&t->ev);
            unlink_timer(t);
            free(t);
            return 0;
        }
    }
    return WEFT_ENOENT;
}

void weft__conn_cancel_timers(weft_conn *c)
{
    weft__loop *loop = c->loop;
    weft__timer *t = loop->timers;
    while (t != NULL) {
        weft__timer *next = t->next;
        if (t->slot == c->slot) {
            event_del(&t->ev);
            unlink_timer(t);
            free(t);
        }
        t = next;
    }
    c->flags &= (uint16_t)~CONN_HAS_TIMERS;
}

void weft__loop_free_timers(weft__loop *loop)
{
    while (loop->timers != NULL) {
        weft__timer *t = loop->timers;
        event_del(&t->ev);
        unlink_timer(t);
        free(t);
    }
}
