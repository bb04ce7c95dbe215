/* weft — buffer pool: power-of-two classes, a capped LIFO free list per class. */
#include <stdlib.h>
#include <string.h>

#include "bufpool.h"
#include "weft/error.h"

#define CLASS_MAX 32

/* A free buffer stores the next pointer in its own first bytes. */
typedef struct free_buf {
    struct free_buf *next;
} free_buf;

struct weft__bufpool {
    weft__bufpool_config cfg;
    unsigned min_shift;
    unsigned nclasses;
    free_buf *free[CLASS_MAX];
    weft__bufpool_stats stats;
};

void weft__bufpool_config_init(weft__bufpool_config *cfg)
{
    cfg->min_size = 4096;
    cfg->max_pooled_size = 1u << 20;
    cfg->max_cached_bytes = 8u << 20;
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
        p->nclasses++;
        s <<= 1;
    }
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
    free(p);
}

/* The class index of a power-of-two capacity, or -1 when it is not pooled. */
static int class_of(const weft__bufpool *p, size_t cap)
{
    unsigned shift = p->min_shift;
    for (unsigned c = 0; c < p->nclasses; c++, shift++) {
        if (((size_t)1 << shift) == cap)
            return (int)c;
    }
    return -1;
}

void *weft__bufpool_get(weft__bufpool *p, size_t size, size_t *capacity)
{
    size_t cap = p->cfg.min_size;
    while (cap < size) {
        if (cap > (SIZE_MAX >> 1))
            return NULL;
        cap <<= 1;
    }
    p->stats.gets++;
    int c = class_of(p, cap);
    void *buf = NULL;
    if (c >= 0 && p->free[c] != NULL) {
        free_buf *b = p->free[c];
        p->free[c] = b->next;
        p->stats.cached_bytes -= cap;
        p->stats.hits++;
        buf = b;
    } else {
        buf = malloc(cap);
        if (buf == NULL)
            return NULL;
    }
    p->stats.outstanding++;
    p->stats.out_bytes += cap;
    *capacity = cap;
    return buf;
}

void weft__bufpool_put(weft__bufpool *p, void *buf, size_t capacity)
{
    if (buf == NULL)
        return;
    p->stats.outstanding--;
    p->stats.out_bytes -= capacity;
    int c = class_of(p, capacity);
    if (c < 0 || p->stats.cached_bytes + capacity > p->cfg.max_cached_bytes) {
        free(buf);
        return;
    }
    free_buf *b = buf;
    b->next = p->free[c];
    p->free[c] = b;
    p->stats.cached_bytes += capacity;
}

void weft__bufpool_get_stats(const weft__bufpool *p, weft__bufpool_stats *out)
{
    *out = p->stats;
}
