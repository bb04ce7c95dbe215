/* weft — buffer pool: power-of-two size classes with a capped free list per class.
 *
 * Each loop owns one and takes its connections' ring buffers from it, so a connection
 * that has nothing waiting holds no buffer at all. Not thread-safe: one pool per thread.
 */
#ifndef WEFT_BUFPOOL_H
#define WEFT_BUFPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "weft/version.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_bufpool weft_bufpool;

typedef struct weft_bufpool_config {
    size_t min_size;         /* smallest class, a power of two; default 4 KiB */
    size_t max_pooled_size;  /* larger buffers go straight back to malloc; default 1 MiB */
    size_t max_cached_bytes; /* what the free lists may keep in all; default 8 MiB */
} weft_bufpool_config;

typedef struct weft_bufpool_stats {
    uint64_t gets;         /* buffers handed out */
    uint64_t hits;         /* of those, served from a free list */
    uint64_t outstanding;  /* handed out and not yet returned */
    uint64_t out_bytes;    /* their capacity in bytes */
    uint64_t cached_bytes; /* kept on the free lists now */
} weft_bufpool_stats;

WEFT_API void weft_bufpool_config_init(weft_bufpool_config *cfg);

/* Returns 0, WEFT_EINVAL or WEFT_ENOMEM. *out is owned by the caller. */
WEFT_API int weft_bufpool_create(const weft_bufpool_config *cfg, weft_bufpool **out);

/* Frees the pool and what it caches. Buffers still out must have been returned. */
WEFT_API void weft_bufpool_destroy(weft_bufpool *pool);

/* Returns a buffer of at least size bytes and sets *capacity to its real size, or NULL
 * when out of memory. Owned by the caller until weft_bufpool_put. */
WEFT_API void *weft_bufpool_get(weft_bufpool *pool, size_t size, size_t *capacity);

/* Gives a buffer back; capacity is what weft_bufpool_get reported. */
WEFT_API void weft_bufpool_put(weft_bufpool *pool, void *buf, size_t capacity);

WEFT_API void weft_bufpool_get_stats(const weft_bufpool *pool, weft_bufpool_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_BUFPOOL_H */
