/* weft — user timers on a connection (weft_conn_after).
 *
 * A timer is a node in the loop's timer heap, allocated only when a user asks for one, so
 * a connection that never uses timers pays nothing. Timers name their connection by slot
 * and generation: when the connection closes they are cancelled and their callbacks never
 * run.
 */
#include <stdlib.h>

#include "internal.h"

typedef struct weft__timer {
    weft__timer_node node;
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
        t->loop->timers_user = t->next;
    if (t->next != NULL)
        t->next->prev = t->prev;
    t->prev = t->next = NULL;
}

static void drop_timer(weft__timer *t)
{
    weft__timer_heap_cancel(&t->loop->timers, &t->node);
    unlink_timer(t);
    free(t);
}

static void timer_fire(weft__timer_node *n)
{
    weft__timer *t = WEFT__CONTAINER_OF(n, weft__timer, node);
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
    weft__timer_node_init(&t->node, timer_fire);
    if (weft__loop_timer_arm(loop, &t->node, ms) != 0) {
        free(t);
        return WEFT_ENOMEM;
    }
    t->next = loop->timers_user;
    if (t->next != NULL)
        t->next->prev = t;
    loop->timers_user = t;
    c->flags |= CONN_HAS_TIMERS;
    if (id != NULL)
        *id = t->id;
    return 0;
}

int weft_conn_cancel_timer(weft_conn *c, uint64_t id)
{
    for (weft__timer *t = c->loop->timers_user; t != NULL; t = t->next) {
        if (t->id == id && t->slot == c->slot) {
            drop_timer(t);
            return 0;
        }
    }
    return WEFT_ENOENT;
}

void weft__conn_cancel_timers(weft_conn *c)
{
    weft__timer *t = c->loop->timers_user;
    while (t != NULL) {
        weft__timer *next = t->next;
        if (t->slot == c->slot)
            drop_timer(t);
        t = next;
    }
    c->flags &= (uint16_t)~CONN_HAS_TIMERS;
}

void weft__loop_free_timers(weft__loop *loop)
{
    while (loop->timers_user != NULL)
        drop_timer(loop->timers_user);
}
