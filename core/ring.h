/* weft — byte ring buffer for one connection's inbound or outbound bytes.
 *
 * A connection holds a buffer only while bytes wait: the ring starts empty with no memory,
 * takes a buffer from the loop's weft__bufpool when bytes arrive, and gives it back when it
 * drains. Capacities come from the pool's power-of-two classes, so indices wrap with a
 * mask. Lengths are 32-bit: the engine caps both directions well below 4 GiB.
 */
#ifndef WEFT_RING_H
#define WEFT_RING_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "bufpool.h"

typedef struct weft__ring {
    uint8_t *buf;
    uint32_t cap;  /* 0 or a power of two */
    uint32_t head; /* index of the first byte */
    uint32_t len;  /* bytes held */
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

/* Fills iov[0..2) with the held bytes in order; returns how many entries were used. */
int weft__ring_iov(const weft__ring *r, struct iovec iov[2]);

/* Drops n held bytes (n <= len). When the ring empties its buffer goes back to the pool
 * unless keep is set; a ring holding little in a big buffer moves to a smaller one. */
void weft__ring_consume(weft__ring *r, weft__bufpool *pool, size_t n, int keep);

/* Makes the held bytes one contiguous span and returns it (NULL when empty). Returns NULL
 * with the ring unchanged only if empty. May move bytes; never allocates. */
uint8_t *weft__ring_linearize(weft__ring *r);

/* Makes at least want bytes of contiguous free space after the held bytes (which end up
 * contiguous too), growing up to limit bytes in all. Returns the write position and its
 * contiguous room in *room, or NULL (limit reached: WEFT_EINCAP semantics; or no memory),
 * with *room = 0. Bytes written there count once weft__ring_commit is called. */
uint8_t *weft__ring_reserve(weft__ring *r, weft__bufpool *pool, size_t want, size_t limit,
                            size_t *room);
void weft__ring_commit(weft__ring *r, size_t n);

/* Gives the buffer back, dropping whatever is held. */
void weft__ring_release(weft__ring *r, weft__bufpool *pool);

#endif /* WEFT_RING_H */
