/* weft — buffer pool: power-of-two size classes with a capped free list per class.
 *
 * Each loop owns one and takes its connections' ring buffers from it, so a connection
 * that has nothing waiting holds no buffer at all. Not thread-safe: one pool per thread.
 * Private to core: the buffers are the engine's business, not the API's.
 */
#ifndef WEFT_BUFPOOL_PRIVATE_H
#define WEFT_BUFPOOL_PRIVATE_H

#include <stddef.h>
#include <stdint.h>

typedef struct weft__bufpool weft__bufpool;

typedef struct weft__bufpool_config {
    size_t min_size;         /* smallest class, a power of two; default 4 KiB */
    size_t max_pooled_size;  /* larger buffers go straight back to malloc; default 1 MiB */
    size_t max_cached_bytes; /* what the free lists may keep in all; default 8 MiB */
} weft__bufpool_config;

typedef struct weft__bufpool_stats {
    uint64_t gets;         /* buffers handed out */
    uint64_t hits;         /* of those, served from a free list */
    uint64_t outstanding;  /* handed out and not yet returned */
    uint64_t out_bytes;    /* their capacity in bytes */
    uint64_t cached_bytes; /* kept on the free lists now */
} weft__bufpool_stats;

void weft__bufpool_config_init(weft__bufpool_config *cfg);

/* Returns 0, WEFT_EINVAL or WEFT_ENOMEM. *out is owned by the caller. */
int weft__bufpool_create(const weft__bufpool_config *cfg, weft__bufpool **out);

/* Frees the pool and what it caches. Buffers still out must have been returned. */
void weft__bufpool_destroy(weft__bufpool *pool);

/* Returns a buffer of at least size bytes and sets *capacity to its real size, or NULL
 * when out of memory. Owned by the caller until weft__bufpool_put. */
void *weft__bufpool_get(weft__bufpool *pool, size_t size, size_t *capacity);

/* Gives a buffer back; capacity is what weft__bufpool_get reported. */
void weft__bufpool_put(weft__bufpool *pool, void *buf, size_t capacity);

void weft__bufpool_get_stats(const weft__bufpool *pool, weft__bufpool_stats *out);

#endif /* WEFT_BUFPOOL_PRIVATE_H */
