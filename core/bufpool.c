/* weft — buffer pool: power-of-two classes with a capped LIFO free list each, and mapped
 * buffers above them; see bufpool.h. */
#include "bufpool.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "weft/error.h"

#define CLASS_MAX 32
/* Mappings this big ask for transparent huge pages: a large frame then faults its memory in
 * 2 MiB at a time instead of 4 KiB (512 times fewer faults, and where fresh memory is slow
 * to come by, as on some VMs, several times faster). They are filled front to back, so at
 * most one huge page is partly unused. Where THP is off the advice is ignored. */
#define HUGE_FROM ((size_t)2 << 20)

/* A free buffer stores the next pointer in its own first bytes. */
typedef struct free_buf {
    struct free_buf *next;
} free_buf;

struct weft__bufpool {
    weft__bufpool_config cfg;
    unsigned min_shift;
    unsigned nclasses;
    size_t top;  /* the largest class: anything bigger is mapped */
    size_t page; /* mapped buffers are whole pages */
    free_buf *free[CLASS_MAX];
    size_t list_bytes; /* on the free lists (the spare is not capped by max_cached_bytes) */
    void *spare;       /* the last mapping returned, kept for reuse until trimmed */
    size_t spare_cap;
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
    long page = sysconf(_SC_PAGESIZE);
    p->page = page > 0 && is_pow2((size_t)page) ? (size_t)page : 4096;
    *out = p;
    return 0;
}

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
        munmap(p->spare, p->spare_cap);
    free(p);
}

/* The capacity a buffer of size bytes gets: its class, or whole pages above the classes;
 * 0 when that does not fit a size_t. */
static size_t capacity_for(const weft__bufpool *p, size_t size)
{
    if (size > p->top) {
        if (size > SIZE_MAX - (p->page - 1))
            return 0;
        return (size + p->page - 1) & ~(p->page - 1);
    }
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

static void advise_huge(void *map, size_t cap)
{
#ifdef MADV_HUGEPAGE
    if (cap >= HUGE_FROM)
        (void)madvise(map, cap, MADV_HUGEPAGE);
#else
    (void)map;
    (void)cap;
#endif
}

static void count_out(weft__bufpool *p, size_t cap)
{
    p->stats.outstanding++;
    p->stats.out_bytes += cap;
    if (cap > p->top)
        p->stats.mapped_bytes += cap;
}

void *weft__bufpool_get(weft__bufpool *p, size_t size, size_t *capacity)
{
    size_t cap = capacity_for(p, size);
    if (cap == 0)
        return NULL;
    void *buf;
    if (cap > p->top && p->spare != NULL && p->spare_cap >= cap) {
        /* Whole: its pages are already faulted in, and cutting it down would give back
         * what the next frame of that size needs again. */
        buf = p->spare;
        cap = p->spare_cap;
        p->spare = NULL;
        p->stats.cached_bytes -= cap;
        p->stats.hits++;
    } else if (cap > p->top) {
        buf = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (buf == MAP_FAILED)
            return NULL;
        advise_huge(buf, cap);
        p->stats.maps++;
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
        p->stats.mapped_bytes -= capacity;
        if (p->cfg.spare_ms == 0 || (p->spare != NULL && p->spare_cap > capacity)) {
            munmap(buf, capacity);
            return;
        }
        /* The bigger of the two serves more of what may follow. */
        if (p->spare != NULL) {
            munmap(p->spare, p->spare_cap);
            p->stats.cached_bytes -= p->spare_cap;
        }
        p->spare = buf;
        p->spare_cap = capacity;
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
        munmap(p->spare, p->spare_cap);
        p->stats.cached_bytes -= p->spare_cap;
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
#ifdef MREMAP_MAYMOVE
    if (capacity > p->top && cap > p->top) {
        /* The kernel moves the pages: nothing is copied, whatever the size. */
        void *nb = mremap(buf, capacity, cap, MREMAP_MAYMOVE);
        if (nb == MAP_FAILED)
            return NULL;
        if (capacity < HUGE_FROM)
            advise_huge(nb, cap); /* grown past it (the advice moves with the mapping) */
        p->stats.out_bytes = p->stats.out_bytes - capacity + cap;
        p->stats.mapped_bytes = p->stats.mapped_bytes - capacity + cap;
        p->stats.resizes++;
        *new_capacity = cap;
        return nb;
    }
#endif
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
