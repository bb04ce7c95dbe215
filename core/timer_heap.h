/* weft — a loop's timers: a binary min-heap of deadlines, intrusive in what it times.
 *
 * Each loop keeps one; the timer wheel's tick, on_tick, the stop deadline, a paused
 * listener's retry and every weft_conn_after timer are nodes in it. The loop asks it for
 * the earliest deadline (how long the backend may wait) and pops what is due. No backend
 * times anything itself, so every I/O model gets the same timers. Deadlines are
 * milliseconds on the caller's clock (the loop's monotonic millisecond count). Not
 * thread-safe: the owning thread only.
 */
#ifndef WEFT_TIMER_HEAP_H
#define WEFT_TIMER_HEAP_H

#include <stdbool.h>
#include <stdint.h>

typedef struct weft__timer_node weft__timer_node;
typedef void (*weft__timer_fn)(weft__timer_node *node);

struct weft__timer_node {
    uint64_t due_ms;
    uint64_t seq;   /* order of arming: equal deadlines run first-armed first */
    uint32_t index; /* place in the heap; UINT32_MAX while not armed */
    weft__timer_fn fn;
};

typedef struct weft__timer_heap {
    weft__timer_node **nodes;
    uint32_t len, cap;
    uint64_t seq;
} weft__timer_heap;

#define WEFT__TIMER_IDLE UINT32_MAX

static inline void weft__timer_node_init(weft__timer_node *n, weft__timer_fn fn)
{
    n->due_ms = 0;
    n->seq = 0;
    n->index = WEFT__TIMER_IDLE;
    n->fn = fn;
}

static inline bool weft__timer_armed(const weft__timer_node *n)
{
    return n->index != WEFT__TIMER_IDLE;
}

void weft__timer_heap_destroy(weft__timer_heap *h);

/* Arms n for due_ms (re-arms it if armed). Returns 0 or WEFT_ENOMEM (n stays as it was). */
int weft__timer_heap_arm(weft__timer_heap *h, weft__timer_node *n, uint64_t due_ms);

/* Disarms n; nothing happens if it is not armed. */
void weft__timer_heap_cancel(weft__timer_heap *h, weft__timer_node *n);

/* The earliest deadline, or UINT64_MAX when nothing is armed. */
uint64_t weft__timer_heap_next(const weft__timer_heap *h);

/* Disarms and returns the earliest node if it is due at now_ms, else NULL. */
weft__timer_node *weft__timer_heap_pop_due(weft__timer_heap *h, uint64_t now_ms);

#endif /* WEFT_TIMER_HEAP_H */
