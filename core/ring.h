/* weft — a connection's inbound buffer: where a partial frame waits for the rest.
 *
 * A connection holds a buffer only while bytes wait: it starts empty with no memory, takes
 * a buffer from the loop's weft__bufpool when bytes arrive, and gives it back when it
 * drains. The held bytes are always one span, buf[head .. head + len): the inbound side
 * reads them only that way (a frame is handed out as one span), so a buffer that wraps
 * would only buy a rotation later. New bytes go behind them; the consumed space in front
 * is taken back by moving the held bytes to the front only when that moves no more than
 * it reclaims. (The name is older than that.)
 *
 * Growth is geometric, so assembling a frame of n bytes copies O(n) bytes in all, however
 * it arrives: each growth doubles the buffer (1.5x above 16 MiB), and a buffer its frame
 * will fill is never shrunk (see weft__ring_shrink). When the codec has said how big the
 * frame is (weft__ring_set_goal), the steps are that size divided by powers of two, so the
 * last one lands on it: a 512 MiB frame takes 514 MiB (whole huge pages), not the 1 GiB the
 * next power of two would be. What is reserved follows what arrived, never what a length
 * field declares. Large buffers come from the pool as mappings that grow in place, so in a
 * loop only the first MiB of a frame is ever copied. Lengths are 32-bit: the engine caps
 * inbound well below 4 GiB.
 */
#ifndef WEFT_RING_H
#define WEFT_RING_H

#include <stddef.h>
#include <stdint.h>

#include "bufpool.h"

typedef struct weft__ring {
    uint8_t *buf;
    uint32_t cap;  /* 0 when buf is NULL */
    uint32_t head; /* offset of the first held byte */
    uint32_t len;  /* bytes held */
    uint32_t goal; /* what the held bytes will grow to (the frame being assembled), counted
                      from head, if the codec said; 0 = not known */
} weft__ring;

#define WEFT__RING_MAX ((size_t)1 << 31)

static inline size_t weft__ring_len(const weft__ring *r)
{
    return r->len;
}

/* Appends n bytes, growing so that the ring holds at most limit bytes. Returns 0,
 * WEFT_EOUTCAP when the result would exceed limit, or WEFT_ENOMEM. On failure nothing
 * changes. */
int weft__ring_append(weft__ring *r, weft__bufpool *pool, const void *data, size_t n, size_t limit);

/* Drops the first n held bytes (n <= len). When the ring empties its buffer goes back to
 * the pool unless keep is set. Never moves bytes or resizes. */
void weft__ring_consume(weft__ring *r, weft__bufpool *pool, size_t n, int keep);

/* The held bytes as one span (they always are one), or NULL when empty. Never moves bytes:
 * kept under this name for its callers. */
uint8_t *weft__ring_linearize(weft__ring *r);

/* Makes at least want bytes of contiguous free space after the held bytes, growing up to
 * limit bytes in all. Returns the write position and its contiguous room in *room, or NULL
 * (limit reached: WEFT_EINCAP semantics; or no memory), with *room = 0. Bytes written there
 * count once weft__ring_commit is called. */
uint8_t *weft__ring_reserve(weft__ring *r, weft__bufpool *pool, size_t want, size_t limit,
                            size_t *room);
void weft__ring_commit(weft__ring *r, size_t n);

/* Says the held bytes are the start of a frame of total bytes (0: not known), so the
 * growth steps toward it end on it exactly. Only a hint: nothing is reserved, and bytes past
 * it are taken as usual. */
void weft__ring_set_goal(weft__ring *r, size_t total);

/* Moves the held bytes to a smaller buffer when the ring is big (64 KiB or more) and mostly
 * unused: it holds at most an eighth of its size, and the frame being assembled (its goal,
 * so set that first) needs no more either. Growth keeps a buffer within 2.5x of what it
 * holds, so that happens only after a big frame was consumed with a little of the next one
 * left, or to a buffer handed a big spare mapping (bufpool.h) for a small frame; a frame's
 * own growth and this never undo each other. A failed move changes nothing. */
void weft__ring_shrink(weft__ring *r, weft__bufpool *pool);

/* Gives the buffer back, dropping whatever is held. */
void weft__ring_release(weft__ring *r, weft__bufpool *pool);

#endif /* WEFT_RING_H */
