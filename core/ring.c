/* weft — a connection's inbound buffer; see ring.h. */
#include "ring.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "weft/error.h"

#define RING_MIN_CAP     4096u
#define RING_SHRINK_FROM (64u * 1024u)
/* Up to here a growth doubles (the pool's sizes are powers of two, then whole 2 MiB huge
 * pages, so a power of two is what fits them); above, it takes half again, so a frame of
 * unknown size wastes at most a third of its buffer. */
#define RING_DOUBLE_UP_TO ((size_t)16 << 20)

static uint8_t *buf_get(weft__bufpool *pool, size_t size, size_t *cap)
{
    if (pool != NULL)
        return weft__bufpool_get(pool, size, cap);
    *cap = size > RING_MIN_CAP ? size : RING_MIN_CAP;
    return malloc(*cap);
}

static void buf_put(weft__bufpool *pool, uint8_t *buf, size_t cap)
{
    if (pool != NULL)
        weft__bufpool_put(pool, buf, cap);
    else
        free(buf);
}

/* Moves the held bytes into a buffer of at least size bytes (>= len), starting at offset 0.
 * Bytes already at the front stay where they are and the buffer is resized around them
 * (a big one then grows in place); otherwise they are copied to a new buffer. */
static int move_to(weft__ring *r, weft__bufpool *pool, size_t size)
{
    assert(size >= r->len);
    size_t cap;
    uint8_t *nb;
    if (r->buf != NULL && r->head == 0) {
        if (pool != NULL) {
            nb = weft__bufpool_resize(pool, r->buf, r->cap, r->len, size, &cap);
        } else {
            cap = size > RING_MIN_CAP ? size : RING_MIN_CAP;
            nb = realloc(r->buf, cap);
        }
        if (nb == NULL)
            return WEFT_ENOMEM;
    } else {
        nb = buf_get(pool, size, &cap);
        if (nb == NULL)
            return WEFT_ENOMEM;
        if (r->len > 0) {
            memcpy(nb, r->buf + r->head, r->len);
            if (pool != NULL)
                weft__bufpool_count_copy(pool, r->len);
        }
        if (r->buf != NULL)
            buf_put(pool, r->buf, r->cap);
    }
    assert(cap >= r->len && cap <= WEFT__RING_MAX);
    r->buf = nb;
    r->cap = (uint32_t)cap;
    r->head = 0;
    return 0;
}

/* The size to grow to when need bytes (held + wanted) do not fit. Geometric, so the bytes
 * copied over all the growths of one frame add up to O(its size). With a goal (the frame's
 * declared size) at least 1.25x away, the step is the goal halved as often as it can be
 * while staying 1.25x the buffer and at least need: between 1.25x and 2.5x the buffer, and
 * once the buffer is on that ladder each step doubles and the last lands on the goal. A
 * goal that is only a lower bound (a codec that knows where the next part ends, not the
 * whole) moves between growths, but each growth is still at least 1.25x. Up to
 * RING_DOUBLE_UP_TO the pool rounds a rung (just above a power of two, for a frame of a
 * power of two and its header) up to a power of two or a whole huge page, nearly doubling
 * it: there only the goal itself is taken, when it is one step away. */
static size_t grow_size(const weft__ring *r, size_t need, size_t limit)
{
    size_t cap = r->cap;
    size_t step = cap <= RING_DOUBLE_UP_TO ? cap * 2u : cap + cap / 2u;
    size_t size = step > need ? step : need;
    size_t least = cap + cap / 4u;
    if (least < need)
        least = need;
    if (r->goal >= least) {
        size_t rung = r->goal;
        while (rung / 2u >= least)
            rung -= rung / 2u; /* ceil(rung / 2) */
        if (rung == r->goal || rung > RING_DOUBLE_UP_TO)
            size = rung;
    }
    return size < limit ? size : limit;
}

/* Makes room for want more bytes behind the held ones; len + want <= limit. */
static int make_room(weft__ring *r, weft__bufpool *pool, size_t want, size_t limit)
{
    if (r->len == 0)
        r->head = 0;
    size_t end = (size_t)r->head + r->len;
    if (r->cap - end >= want)
        return 0;
    if (r->head >= r->len && r->cap - r->len >= want) {
        /* Moving the held bytes to the front copies no more than the consumed bytes it
         * reclaims, so over time it costs at most one copy per byte that arrived. */
        memmove(r->buf, r->buf + r->head, r->len);
        if (pool != NULL)
            weft__bufpool_count_copy(pool, r->len);
        r->head = 0;
        return 0;
    }
    return move_to(r, pool, grow_size(r, (size_t)r->len + want, limit));
}

int weft__ring_append(weft__ring *r, weft__bufpool *pool, const void *data, size_t n, size_t limit)
{
    if (n == 0)
        return 0;
    if (limit > WEFT__RING_MAX)
        limit = WEFT__RING_MAX;
    if (n > limit || r->len > limit - n)
        return WEFT_EOUTCAP;
    int rc = make_room(r, pool, n, limit);
    if (rc != 0)
        return rc;
    memcpy(r->buf + r->head + r->len, data, n);
    r->len += (uint32_t)n;
    return 0;
}

void weft__ring_release(weft__ring *r, weft__bufpool *pool)
{
    if (r->buf != NULL)
        buf_put(pool, r->buf, r->cap);
    r->buf = NULL;
    r->cap = 0;
    r->head = 0;
    r->len = 0;
    r->goal = 0;
}

void weft__ring_consume(weft__ring *r, weft__bufpool *pool, size_t n, int keep)
{
    assert(n <= r->len);
    r->len -= (uint32_t)n;
    r->head += (uint32_t)n;
    r->goal = r->goal > n ? r->goal - (uint32_t)n : 0;
    if (r->len == 0) {
        r->head = 0;
        r->goal = 0;
        if (!keep)
            weft__ring_release(r, pool);
    }
}

uint8_t *weft__ring_linearize(weft__ring *r)
{
    return r->len > 0 ? r->buf + r->head : NULL;
}

uint8_t *weft__ring_reserve(weft__ring *r, weft__bufpool *pool, size_t want, size_t limit,
                            size_t *room)
{
    *room = 0;
    if (limit > WEFT__RING_MAX)
        limit = WEFT__RING_MAX;
    if (r->len >= limit)
        return NULL;
    if (want == 0)
        want = 1;
    if (want > limit - r->len)
        want = limit - r->len;
    if (make_room(r, pool, want, limit) != 0)
        return NULL;
    size_t end = (size_t)r->head + r->len;
    size_t avail = r->cap - end;
    if (avail > limit - r->len)
        avail = limit - r->len;
    *room = avail;
    return r->buf + end;
}

void weft__ring_commit(weft__ring *r, size_t n)
{
    assert((size_t)r->head + r->len + n <= r->cap);
    r->len += (uint32_t)n;
}

void weft__ring_set_goal(weft__ring *r, size_t total)
{
    r->goal = total < WEFT__RING_MAX ? (uint32_t)total : (uint32_t)WEFT__RING_MAX;
}

void weft__ring_shrink(weft__ring *r, weft__bufpool *pool)
{
    if (r->cap < RING_SHRINK_FROM || r->len > r->cap / 8u || r->goal > r->cap / 8u)
        return;
    if (r->len == 0) {
        weft__ring_release(r, pool);
        return;
    }
    /* Room to double what is left, or for the frame it starts if that is known: the next
     * frame starts small again, and if it is big its growth is paid by its own bytes. */
    size_t size = (size_t)r->len * 2u;
    if (size < r->goal)
        size = r->goal;
    (void)move_to(r, pool, size > RING_MIN_CAP ? size : RING_MIN_CAP);
}
