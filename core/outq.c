/* weft — a connection's output queue; see outq.h. */
#include "outq.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "weft/error.h"

struct weft__chunk {
    weft__chunk *next;
    uint8_t *data;     /* our own chunk: right behind this header */
    uint32_t off, len; /* unsent bytes: data[off .. off + len) */
    uint32_t cap;      /* our own chunk: room for data; 0 for a segment */
    weft_free_cb free_cb;
    void *free_ctx;
};

#define CHUNK_ROOM ((uint32_t)(WEFT__OUTQ_CHUNK - sizeof(weft__chunk)))

static void push(weft__outq *q, weft__chunk *k)
{
    k->next = NULL;
    if (q->tail != NULL)
        q->tail->next = k;
    else
        q->head = k;
    q->tail = k;
}

static weft__chunk *new_chunk(weft__bufpool *pool)
{
    size_t cap;
    weft__chunk *k = weft__bufpool_get(pool, WEFT__OUTQ_CHUNK, &cap);
    if (k == NULL)
        return NULL;
    assert(cap == WEFT__OUTQ_CHUNK);
    k->data = (uint8_t *)(k + 1);
    k->off = k->len = 0;
    k->cap = CHUNK_ROOM;
    k->free_cb = NULL;
    k->free_ctx = NULL;
    return k;
}

static void free_chunk(weft__bufpool *pool, weft__chunk *k)
{
    if (k->cap != 0) {
        weft__bufpool_put(pool, k, WEFT__OUTQ_CHUNK);
        return;
    }
    k->free_cb(k->data, k->free_ctx);
    free(k);
}

int weft__outq_append(weft__outq *q, weft__bufpool *pool, const void *data, size_t n)
{
    const uint8_t *p = data;
    while (n > 0) {
        weft__chunk *t = q->tail;
        if (t == NULL || t->cap == 0 || t->off + t->len == t->cap) {
            t = new_chunk(pool);
            if (t == NULL)
                return WEFT_ENOMEM;
            push(q, t);
        }
        uint32_t room = t->cap - (t->off + t->len);
        uint32_t k = n < room ? (uint32_t)n : room;
        memcpy(t->data + t->off + t->len, p, k);
        t->len += k;
        q->len += k;
        p += k;
        n -= k;
    }
    return 0;
}

int weft__outq_append_ref(weft__outq *q, void *data, size_t skip, size_t n, weft_free_cb free_cb,
                          void *free_ctx)
{
    if (n > UINT32_MAX || skip > n)
        return WEFT_ENOMEM;
    weft__chunk *k = malloc(sizeof(*k));
    if (k == NULL)
        return WEFT_ENOMEM;
    k->data = data;
    k->off = (uint32_t)skip;
    k->len = (uint32_t)(n - skip);
    k->cap = 0;
    k->free_cb = free_cb;
    k->free_ctx = free_ctx;
    push(q, k);
    q->len += (uint32_t)(n - skip);
    return 0;
}

int weft__outq_iov(const weft__outq *q, struct iovec *iov, int max, size_t max_bytes)
{
    int n = 0;
    size_t bytes = 0;
    for (const weft__chunk *k = q->head; k != NULL && n < max && bytes < max_bytes; k = k->next) {
        if (k->len == 0)
            continue;
        size_t l = k->len;
        if (l > max_bytes - bytes)
            l = max_bytes - bytes;
        iov[n].iov_base = k->data + k->off;
        iov[n].iov_len = l;
        bytes += l;
        n++;
    }
    return n;
}

void weft__outq_consume(weft__outq *q, weft__bufpool *pool, size_t n)
{
    assert(n <= q->len);
    q->len -= (uint32_t)n;
    while (n > 0 || (q->head != NULL && q->head->len == 0)) {
        weft__chunk *k = q->head;
        if (n < k->len) {
            k->off += (uint32_t)n;
            k->len -= (uint32_t)n;
            return;
        }
        n -= k->len;
        q->head = k->next;
        if (q->head == NULL)
            q->tail = NULL;
        free_chunk(pool, k);
    }
}

void weft__outq_consume_into(weft__outq *q, size_t n, weft__outq *held)
{
    assert(n <= q->len);
    q->len -= (uint32_t)n;
    while (n > 0 || (q->head != NULL && q->head->len == 0)) {
        weft__chunk *k = q->head;
        if (n < k->len) {
            k->off += (uint32_t)n;
            k->len -= (uint32_t)n;
            return;
        }
        n -= k->len;
        q->head = k->next;
        if (q->head == NULL)
            q->tail = NULL;
        k->off += k->len;
        k->len = 0;
        push(held, k);
    }
}

void weft__outq_release(weft__outq *q, weft__bufpool *pool)
{
    while (q->head != NULL) {
        weft__chunk *k = q->head;
        q->head = k->next;
        free_chunk(pool, k);
    }
    q->tail = NULL;
    q->len = 0;
}

size_t weft__outq_footprint(const weft__outq *q)
{
    size_t n = 0;
    for (const weft__chunk *k = q->head; k != NULL; k = k->next)
        n += k->cap != 0 ? WEFT__OUTQ_CHUNK : k->len;
    return n;
}
