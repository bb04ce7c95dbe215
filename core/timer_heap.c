/* weft — a loop's timers; see timer_heap.h. */
#include "timer_heap.h"

#include <stdlib.h>

#include "weft/error.h"

static bool earlier(const weft__timer_node *a, const weft__timer_node *b)
{
    return a->due_ms != b->due_ms ? a->due_ms < b->due_ms : a->seq < b->seq;
}

static void place(weft__timer_heap *h, uint32_t i, weft__timer_node *n)
{
    h->nodes[i] = n;
    n->index = i;
}

static void sift_up(weft__timer_heap *h, uint32_t i)
{
    weft__timer_node *n = h->nodes[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (!earlier(n, h->nodes[parent]))
            break;
        place(h, i, h->nodes[parent]);
        i = parent;
    }
    place(h, i, n);
}

static void sift_down(weft__timer_heap *h, uint32_t i)
{
    weft__timer_node *n = h->nodes[i];
    for (;;) {
        uint32_t child = 2 * i + 1;
        if (child >= h->len)
            break;
        if (child + 1 < h->len && earlier(h->nodes[child + 1], h->nodes[child]))
            child++;
        if (!earlier(h->nodes[child], n))
            break;
        place(h, i, h->nodes[child]);
        i = child;
    }
    place(h, i, n);
}

static void remove_at(weft__timer_heap *h, uint32_t i)
{
    weft__timer_node *gone = h->nodes[i];
    gone->index = WEFT__TIMER_IDLE;
    h->len--;
    if (i == h->len)
        return;
    weft__timer_node *moved = h->nodes[h->len];
    place(h, i, moved);
    sift_down(h, i);
    sift_up(h, moved->index);
}

void weft__timer_heap_destroy(weft__timer_heap *h)
{
    for (uint32_t i = 0; i < h->len; i++)
        h->nodes[i]->index = WEFT__TIMER_IDLE;
    free(h->nodes);
    h->nodes = NULL;
    h->len = h->cap = 0;
}

int weft__timer_heap_arm(weft__timer_heap *h, weft__timer_node *n, uint64_t due_ms)
{
    if (weft__timer_armed(n)) {
        n->due_ms = due_ms;
        n->seq = ++h->seq;
        sift_down(h, n->index);
        sift_up(h, n->index);
        return 0;
    }
    if (h->len == h->cap) {
        uint32_t ncap = h->cap ? h->cap * 2 : 16;
        weft__timer_node **nn = realloc(h->nodes, ncap * sizeof(*nn));
        if (nn == NULL)
            return WEFT_ENOMEM;
        h->nodes = nn;
        h->cap = ncap;
    }
    n->due_ms = due_ms;
    n->seq = ++h->seq;
    place(h, h->len++, n);
    sift_up(h, n->index);
    return 0;
}

void weft__timer_heap_cancel(weft__timer_heap *h, weft__timer_node *n)
{
    if (weft__timer_armed(n))
        remove_at(h, n->index);
}

uint64_t weft__timer_heap_next(const weft__timer_heap *h)
{
    return h->len > 0 ? h->nodes[0]->due_ms : UINT64_MAX;
}

weft__timer_node *weft__timer_heap_pop_due(weft__timer_heap *h, uint64_t now_ms)
{
    if (h->len == 0 || h->nodes[0]->due_ms > now_ms)
        return NULL;
    weft__timer_node *n = h->nodes[0];
    remove_at(h, 0);
    return n;
}
