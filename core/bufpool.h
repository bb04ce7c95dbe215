/* weft — buffer pool: power-of-two size classes with a capped free list per class, and
 * large buffers mapped straight from the system.
 *
 * Each loop owns one and takes its connections' buffers from it, so a connection that has
 * nothing waiting holds no buffer at all. Up to max_pooled_size a buffer comes from malloc
 * in a power-of-two class and goes back on that class's free list, as long as the lists
 * keep at most max_cached_bytes in all. Above it a buffer is its own mapping, sized to
 * whole 2 MiB huge pages (whole pages under 1 MiB) rather than to a power of two: a 512 MiB
 * frame takes 512 MiB, not 1 GiB. A mapping reserves reserve_size bytes of address
 * space (no memory) and commits what it is resized to, so it grows in place up to that size
 * without moving or copying a byte. The last one to come back is kept as a spare for
 * spare_ms, so the next large frame reuses memory already faulted in (on some machines
 * faulting in fresh memory costs more than receiving the bytes), and then unmapped by
 * weft__bufpool_trim: memory a peer made us take returns to the system within about a
 * second of the peer being done, not when the allocator feels like it.
 *
 * Not thread-safe: one pool per thread. Private to core: the buffers are the engine's
 * business, not the API's.
 */
#ifndef WEFT_BUFPOOL_PRIVATE_H
#define WEFT_BUFPOOL_PRIVATE_H

#include <stddef.h>
#include <stdint.h>

typedef struct weft__bufpool weft__bufpool;

typedef struct weft__bufpool_config {
    size_t min_size;         /* smallest class, a power of two; default 4 KiB */
    size_t max_pooled_size;  /* largest class; larger buffers are mapped; default 1 MiB */
    size_t max_cached_bytes; /* what the free lists may keep in all; default 2 MiB */
    unsigned spare_ms;       /* how long a returned mapping is kept for reuse; 0 = not at
                                all; default 1000 */
    size_t reserve_size;     /* address space each mapping reserves, so that it grows in
                                place up to this size (a loop: max_inbound); larger ones
                                move; default 64 MiB */
} weft__bufpool_config;

typedef struct weft__bufpool_stats {
    uint64_t gets;         /* buffers handed out */
    uint64_t hits;         /* of those, served from a free list */
    uint64_t outstanding;  /* handed out and not yet returned */
    uint64_t out_bytes;    /* their capacity in bytes */
    uint64_t cached_bytes; /* kept on the free lists now, and in the spare mapping */
    uint64_t mapped_bytes; /* of out_bytes, in buffers mapped from the system */
    uint64_t maps;         /* mappings made (mmap): what the spare could not save */
    uint64_t resizes;      /* weft__bufpool_resize calls that gave a new size */
    uint64_t copied_bytes; /* bytes copied to keep them: by resizes that could not grow in
                              place, and what users counted with weft__bufpool_count_copy */
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

/* Unmaps the spare once spare_ms passed since the first call after it came back (the pool
 * has no clock of its own); now_ms is any millisecond clock that only moves forward, the same
 * one every call. The owner calls it regularly: a loop does before it sleeps, so at least
 * every wheel tick. */
void weft__bufpool_trim(weft__bufpool *pool, uint64_t now_ms);

/* Exchanges buf (capacity bytes, from this pool, or NULL) for a buffer of at least size
 * bytes that starts with buf's first keep bytes (keep <= both sizes), and sets
 * *new_capacity. A mapping that stays within its reservation is resized in place.
 * Returns the buffer (maybe buf itself), or NULL when out of memory: buf is then untouched
 * and still the caller's. */
void *weft__bufpool_resize(weft__bufpool *pool, void *buf, size_t capacity, size_t keep,
                           size_t size, size_t *new_capacity);

/* Counts n bytes a user copied within one of its buffers to keep them (a ring moving what
 * it holds to the front), so copied_bytes shows every byte moved to keep data. */
void weft__bufpool_count_copy(weft__bufpool *pool, size_t n);

void weft__bufpool_get_stats(const weft__bufpool *pool, weft__bufpool_stats *out);

#endif /* WEFT_BUFPOOL_PRIVATE_H */
