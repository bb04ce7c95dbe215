/* weft — a connection's output queue: a list of fixed-size chunks from the loop's pool.
 *
 * netty's ChannelOutboundBuffer and Redis's reply blocks: appending fills the last chunk
 * and takes new ones as needed, so growing the queue never copies what is already queued,
 * and a queue of N bytes holds at most N plus one chunk. A chunk may also be a segment of
 * someone else's memory (a zero-copy write), released through its free callback once the
 * bytes are sent or dropped. The queue is sent with scatter/gather over several chunks.
 * An empty queue holds nothing. Not thread-safe: the owning loop only.
 */
#ifndef WEFT_OUTQ_H
#define WEFT_OUTQ_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "bufpool.h"
#include "weft/engine.h"
#include "weft/socket.h"

/* Bytes of data in a chunk of our own (its header included, a chunk is one pool buffer). */
#define WEFT__OUTQ_CHUNK 16384u

typedef struct weft__chunk weft__chunk;

typedef struct weft__outq {
    weft__chunk *head;
    weft__chunk *tail;
    uint32_t len; /* bytes queued: the engine caps a queue well below 4 GiB */
    /* Not the queue's own: its owner's count of the bytes waiting to go out (this queue's
     * and any it holds elsewhere), published for other threads. Here because the struct
     * has 4 bytes of room after len. */
    _Atomic uint32_t published;
} weft__outq;

/* Appends a copy of data[0..n). Returns 0 or WEFT_ENOMEM (what fitted stays queued: the
 * caller closes the connection). */
int weft__outq_append(weft__outq *q, weft__bufpool *pool, const void *data, size_t n);

/* Appends data[skip..n) without copying: ownership of data passes to the queue, which
 * calls free_cb(data, free_ctx) once the bytes are sent or dropped. Returns 0 or
 * WEFT_ENOMEM (then nothing was queued and data stays the caller's). */
int weft__outq_append_ref(weft__outq *q, void *data, size_t skip, size_t n, weft_free_cb free_cb,
                          void *free_ctx);

/* Fills iov[0..max) with the queued bytes in order, at most max_bytes in all; returns how
 * many entries it used. */
int weft__outq_iov(const weft__outq *q, struct iovec *iov, int max, size_t max_bytes);

/* Drops the first n queued bytes (n <= len); emptied chunks go back to the pool. */
void weft__outq_consume(weft__outq *q, weft__bufpool *pool, size_t n);

/* Drops the first n queued bytes (n <= len) as weft__outq_consume does, but the chunks it
 * empties move to the end of held instead of going back: the kernel may still read them
 * (a zero-copy send). held keeps no length; weft__outq_release(held) lets them go. */
void weft__outq_consume_into(weft__outq *q, size_t n, weft__outq *held);

/* Drops everything. */
void weft__outq_release(weft__outq *q, weft__bufpool *pool);

/* The memory the queue holds: its chunks' capacity (segments count their length). */
size_t weft__outq_footprint(const weft__outq *q);

#endif /* WEFT_OUTQ_H */
