/* weft — buffer pool: power-of-two classes with a capped LIFO free list each, and mapped
 * buffers above them; see bufpool.h. */
#include "bufpool.h"

#include <stdlib.h>
#include <string.h>

#include "platform.h"
#include "weft/error.h"

#define CLASS_MAX 32

/* Mapped buffers are aligned to this (a transparent huge page on x86-64 and most arm64
 * kernels), committed in whole units of it once they are bigger than half of one, and ask
 * for huge pages: a large frame then faults its memory in 2 MiB at a time instead of 4 KiB.
 * That is 512 times fewer faults and TLB entries; on VMs that shadow page tables, where each
 * first touch of a 4 KiB page after the kernel wrote it costs microseconds, it made a 512 MiB
 * frame several times faster. The buffer fills front to back, so at most one huge page is
 * partly unused. Where THP is off the advice is ignored. */
#define HUGE_UNIT ((size_t)2 << 20)

/* A free buffer stores the next pointer in its own first bytes. */
typedef struct free_buf {
    struct free_buf *next;
} free_buf;

/* A mapped buffer is a reservation of address space (inaccessible: no memory, nothing
 * committed): one page for this header, then, HUGE_UNIT from its start, the data, of which
 * the first `committed` bytes are readable and writable. Growing within the reservation
 * only makes more of it writable: nothing moves, nothing is copied, and huge pages stay
 * whole (mremap would move them to an address that may split them). */
typedef struct map_head {
    size_t reserve;   /* bytes reserved for the data */
    size_t committed; /* of those, writable: the buffer's capacity */
} map_head;

struct weft__bufpool {
    weft__bufpool_config cfg;
    unsigned min_shift;
    unsigned nclasses;
    size_t top;  /* the largest class: anything bigger is mapped */
    size_t page; /* mapped buffers are whole pages */
    free_buf *free[CLASS_MAX];
    size_t list_bytes;    /* on the free lists (the spare is not capped by max_cached_bytes) */
    map_head *spare;      /* the last mapping returned, kept for reuse until trimmed */
    uint64_t spare_since; /* the first trim's now_ms after it came back; 0 = not seen yet */
    weft__bufpool_stats stats;
};

void weft__bufpool_config_init(weft__bufpool_config *cfg)
{
    cfg->min_size = 4096;
    cfg->max_pooled_size = 1u << 20;
    /* A loop keeps at most this much for reuse; the rest goes back at once. */
    cfg->max_cached_bytes = 2u << 20;
    cfg->spare_ms = 1000;
    cfg->reserve_size = (size_t)64 << 20;
}

static int is_pow2(size_t n)
{
    return n != 0 && (n & (n - 1)) == 0;
}

int weft__bufpool_create(const weft__bufpool_config *cfg, weft__bufpool **out)
{
    weft__bufpool_config def;
    if (cfg == NULL) {
        weft__bufpool_config_init(&def);
        cfg = &def;
    }
    if (out == NULL || !is_pow2(cfg->min_size) || cfg->min_size < sizeof(free_buf) ||
        cfg->max_pooled_size < cfg->min_size)
        return WEFT_EINVAL;
    weft__bufpool *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return WEFT_ENOMEM;
    p->cfg = *cfg;
    while (((size_t)1 << p->min_shift) < cfg->min_size)
        p->min_shift++;
    size_t s = cfg->min_size;
    while (s <= cfg->max_pooled_size && p->nclasses < CLASS_MAX) {
        p->top = s;
        p->nclasses++;
        if (s > (SIZE_MAX >> 1))
            break;
        s <<= 1;
    }
    p->page = weft__page_size();
    *out = p;
    return 0;
}

/* ---- mapped buffers ---- */

static size_t round_up(size_t n, size_t unit)
{
    return n > SIZE_MAX - (unit - 1) ? 0 : (n + unit - 1) & ~(unit - 1);
}

/* The bytes to commit for a mapped buffer of size bytes: whole huge pages, or whole pages
 * for one smaller than half a huge page (only a pool with small classes has those); 0 when
 * that does not fit a size_t. */
static size_t commit_for(const weft__bufpool *p, size_t size)
{
    return round_up(size, size > HUGE_UNIT / 2 ? HUGE_UNIT : p->page);
}

static uint8_t *map_data(map_head *h)
{
    return (uint8_t *)h + HUGE_UNIT;
}

static map_head *map_of(void *buf)
{
    return (map_head *)(void *)((uint8_t *)buf - HUGE_UNIT);
}

/* Makes the first commit bytes of h's data writable, and only those (commit <= reserve). */
static int map_commit(map_head *h, size_t commit)
{
    uint8_t *data = map_data(h);
    if (commit > h->committed) {
        if (weft__vm_commit(data + h->committed, commit - h->committed) != 0)
            return -1;
    } else if (commit < h->committed) {
        /* The pages go back now; the address space stays reserved. */
        weft__vm_decommit(data + commit, h->committed - commit);
    }
    h->committed = commit;
    return 0;
}

/* A new reservation of the configured size (at least commit) with commit bytes of it
 * writable; NULL when out of memory or address space. */
static map_head *map_new(const weft__bufpool *p, size_t commit)
{
    size_t reserve = commit_for(p, p->cfg.reserve_size);
    if (reserve < commit)
        reserve = commit;
    for (;;) {
        /* Header and data, aligned to a huge page. */
        size_t whole = HUGE_UNIT + reserve;
        uint8_t *base =
            reserve > SIZE_MAX - 2 * HUGE_UNIT ? NULL : weft__vm_reserve(whole, HUGE_UNIT);
        if (base != NULL) {
            map_head *h = (map_head *)(void *)base;
            if (weft__vm_commit(base, p->page) != 0 ||
                weft__vm_commit(base + HUGE_UNIT, commit) != 0) {
                weft__vm_release(base, whole);
                return NULL;
            }
            weft__vm_advise_huge(base + HUGE_UNIT, reserve);
            h->reserve = reserve;
            h->committed = commit;
            return h;
        }
        if (reserve == commit)
            return NULL;
        reserve = commit; /* short of address space (32-bit): reserve only what is asked */
    }
}

static void map_free(map_head *h)
{
    weft__vm_release(h, HUGE_UNIT + h->reserve);
}

/* ---- classes ---- */

void weft__bufpool_destroy(weft__bufpool *p)
{
    if (p == NULL)
        return;
    for (unsigned c = 0; c < p->nclasses; c++) {
        free_buf *b = p->free[c];
        while (b != NULL) {
            free_buf *next = b->next;
            free(b);
            b = next;
        }
    }
    if (p->spare != NULL)
        map_free(p->spare);
    free(p);
}

/* The capacity a buffer of size bytes gets: its class, or above the classes what a mapping
 * commits for it; 0 when that does not fit a size_t. */
static size_t capacity_for(const weft__bufpool *p, size_t size)
{
    if (size > p->top)
        return commit_for(p, size);
    size_t cap = p->cfg.min_size;
    while (cap < size)
        cap <<= 1;
    return cap;
}

/* The class index of a pooled capacity. */
static unsigned class_of(const weft__bufpool *p, size_t cap)
{
    unsigned c = 0;
    while (((size_t)1 << (p->min_shift + c)) < cap)
        c++;
    return c;
}

static void count_out(weft__bufpool *p, size_t cap)
{
    p->stats.outstanding++;
    p->stats.out_bytes += cap;
    if (cap > p->top)
        p->stats.mapped_bytes += cap;
}

/* A mapping with at least commit bytes writable: the spare if it can be one (handed out
 * whole: its pages are already faulted in, and cutting it down would give back what the
 * next frame of that size needs again), else a new one. */
static map_head *map_get(weft__bufpool *p, size_t commit)
{
    map_head *h = p->spare;
    size_t kept = h != NULL ? h->committed : 0;
    if (h != NULL && h->reserve >= commit &&
        (h->committed >= commit || map_commit(h, commit) == 0)) {
        p->spare = NULL;
        p->stats.cached_bytes -= kept;
        p->stats.hits++;
        return h;
    }
    h = map_new(p, commit);
    if (h != NULL)
        p->stats.maps++;
    return h;
}

void *weft__bufpool_get(weft__bufpool *p, size_t size, size_t *capacity)
{
    size_t cap = capacity_for(p, size);
    if (cap == 0)
        return NULL;
    void *buf;
    if (cap > p->top) {
        map_head *h = map_get(p, cap);
        if (h == NULL)
            return NULL;
        buf = map_data(h);
        cap = h->committed;
    } else {
        unsigned c = class_of(p, cap);
        if (p->free[c] != NULL) {
            free_buf *b = p->free[c];
            p->free[c] = b->next;
            p->list_bytes -= cap;
            p->stats.cached_bytes -= cap;
            p->stats.hits++;
            buf = b;
        } else {
            buf = malloc(cap);
            if (buf == NULL)
                return NULL;
        }
    }
    p->stats.gets++;
    count_out(p, cap);
    *capacity = cap;
    return buf;
}

void weft__bufpool_put(weft__bufpool *p, void *buf, size_t capacity)
{
    if (buf == NULL)
        return;
    p->stats.outstanding--;
    p->stats.out_bytes -= capacity;
    if (capacity > p->top) {
        map_head *h = map_of(buf);
        p->stats.mapped_bytes -= capacity;
        if (p->cfg.spare_ms == 0 || (p->spare != NULL && p->spare->committed > h->committed)) {
            map_free(h);
            return;
        }
        /* The bigger of the two serves more of what may follow. */
        if (p->spare != NULL) {
            p->stats.cached_bytes -= p->spare->committed;
            map_free(p->spare);
        }
        p->spare = h;
        /* Dated by the next trim, not the last one: that may be long ago (one recv into a
         * big buffer can take a second). */
        p->spare_since = 0;
        p->stats.cached_bytes += capacity;
        return;
    }
    if (p->list_bytes + capacity > p->cfg.max_cached_bytes) {
        free(buf);
        return;
    }
    unsigned c = class_of(p, capacity);
    free_buf *b = buf;
    b->next = p->free[c];
    p->free[c] = b;
    p->list_bytes += capacity;
    p->stats.cached_bytes += capacity;
}

void weft__bufpool_trim(weft__bufpool *p, uint64_t now_ms)
{
    if (p->spare == NULL)
        return;
    now_ms++; /* so that 0 can mean "not seen yet" */
    if (p->spare_since == 0)
        p->spare_since = now_ms;
    if (now_ms - p->spare_since >= p->cfg.spare_ms) {
        p->stats.cached_bytes -= p->spare->committed;
        map_free(p->spare);
        p->spare = NULL;
    }
}

void *weft__bufpool_resize(weft__bufpool *p, void *buf, size_t capacity, size_t keep, size_t size,
                           size_t *new_capacity)
{
    if (buf == NULL)
        return weft__bufpool_get(p, size, new_capacity);
    size_t cap = capacity_for(p, size);
    if (cap == 0)
        return NULL;
    if (cap == capacity) {
        *new_capacity = cap;
        return buf;
    }
    if (capacity > p->top && cap > p->top && cap <= map_of(buf)->reserve) {
        /* Within its reservation: more (or less) of it is made writable, in place. */
        if (map_commit(map_of(buf), cap) != 0)
            return NULL;
        p->stats.out_bytes = p->stats.out_bytes - capacity + cap;
        p->stats.mapped_bytes = p->stats.mapped_bytes - capacity + cap;
        p->stats.resizes++;
        *new_capacity = cap;
        return buf;
    }
    size_t ncap;
    void *nb = weft__bufpool_get(p, size, &ncap);
    if (nb == NULL)
        return NULL;
    if (keep > 0)
        memcpy(nb, buf, keep);
    p->stats.copied_bytes += keep;
    p->stats.resizes++;
    weft__bufpool_put(p, buf, capacity);
    *new_capacity = ncap;
    return nb;
}

void weft__bufpool_count_copy(weft__bufpool *p, size_t n)
{
    p->stats.copied_bytes += n;
}

void weft__bufpool_get_stats(const weft__bufpool *p, weft__bufpool_stats *out)
{
    *out = p->stats;
}
