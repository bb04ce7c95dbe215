/* weft — byte ring buffer; see ring.h. */
#include "ring.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "weft/error.h"

#define RING_MIN_CAP     4096u
#define RING_SHRINK_FROM (64u * 1024u)

static size_t pow2_at_least(size_t n)
{
    size_t c = RING_MIN_CAP;
    while (c < n)
        c <<= 1;
    return c;
}

static uint8_t *buf_get(weft__bufpool *pool, size_t size, size_t *cap)
{
    if (pool != NULL)
        return weft__bufpool_get(pool, size, cap);
    *cap = pow2_at_least(size);
    return malloc(*cap);
}

static void buf_put(weft__bufpool *pool, uint8_t *buf, size_t cap)
{
    if (pool != NULL)
        weft__bufpool_put(pool, buf, cap);
    else
        free(buf);
}

/* Copies the held bytes, in order, to dst. */
static void copy_out(const weft__ring *r, uint8_t *dst)
{
    size_t first = r->cap - r->head;
    if (first >= r->len) {
        memcpy(dst, r->buf + r->head, r->len);
    } else {
        memcpy(dst, r->buf + r->head, first);
        memcpy(dst + first, r->buf, r->len - first);
    }
}

/* Moves the held bytes into a new buffer of at least size bytes, starting at index 0. */
static int move_to(weft__ring *r, weft__bufpool *pool, size_t size)
{
    size_t cap;
    uint8_t *nb = buf_get(pool, size, &cap);
    if (nb == NULL)
        return WEFT_ENOMEM;
    /* The pool hands out powers of two; a ring relies on that for its mask. */
    assert((cap & (cap - 1)) == 0 && cap >= r->len);
    if (r->len > 0)
        copy_out(r, nb);
    if (r->buf != NULL)
        buf_put(pool, r->buf, r->cap);
    r->buf = nb;
    r->cap = (uint32_t)cap;
    r->head = 0;
    return 0;
}

int weft__ring_append(weft__ring *r, weft__bufpool *pool, const void *data, size_t n, size_t limit)
{
    if (n == 0)
        return 0;
    if (limit > WEFT__RING_MAX)
        limit = WEFT__RING_MAX;
    if (n > limit || r->len > limit - n)
        return WEFT_EOUTCAP;
    size_t need = r->len + n;
    if (need > r->cap) {
        size_t want = r->cap * 2u > need ? r->cap * 2u : need;
        int rc = move_to(r, pool, want);
        if (rc != 0)
            return rc;
    }
    size_t mask = r->cap - 1u;
    size_t tail = (r->head + r->len) & mask;
    size_t first = r->cap - tail;
    if (first >= n) {
        memcpy(r->buf + tail, data, n);
    } else {
        memcpy(r->buf + tail, data, first);
        memcpy(r->buf, (const uint8_t *)data + first, n - first);
    }
    r->len += (uint32_t)n;
    return 0;
}

int weft__ring_iov(const weft__ring *r, struct iovec iov[2])
{
    if (r->len == 0)
        return 0;
    size_t first = r->cap - r->head;
    iov[0].iov_base = r->buf + r->head;
    if (first >= r->len) {
        iov[0].iov_len = r->len;
        return 1;
    }
    iov[0].iov_len = first;
    iov[1].iov_base = r->buf;
    iov[1].iov_len = r->len - first;
    return 2;
}

void weft__ring_release(weft__ring *r, weft__bufpool *pool)
{
    if (r->buf != NULL)
        buf_put(pool, r->buf, r->cap);
    r->buf = NULL;
    r->cap = 0;
    r->head = 0;
    r->len = 0;
}

void weft__ring_consume(weft__ring *r, weft__bufpool *pool, size_t n, int keep)
{
    assert(n <= r->len);
    r->len -= (uint32_t)n;
    if (r->len == 0) {
        r->head = 0;
        if (!keep)
            weft__ring_release(r, pool);
        return;
    }
    r->head = (uint32_t)((r->head + n) & (r->cap - 1u));
    /* A big buffer that now holds little goes back for a smaller one, so one burst does
     * not pin a large buffer to a connection for its whole life. */
    if (!keep && r->cap >= RING_SHRINK_FROM && r->len <= r->cap / 8u)
        (void)move_to(r, pool, (size_t)r->len * 2u);
}

static void reverse(uint8_t *p, size_t n)
{
    for (size_t i = 0, j = n; i + 1 < j; i++, j--) {
        uint8_t t = p[i];
        p[i] = p[j - 1];
        p[j - 1] = t;
    }
}

uint8_t *weft__ring_linearize(weft__ring *r)
{
    if (r->len == 0)
        return NULL;
    size_t first = r->cap - r->head;
    if (first >= r->len)
        return r->buf + r->head;
    size_t second = r->len - first;
    if (r->len <= r->head) {
        /* Room enough before the first segment: shift the wrapped part up, then bring
         * the first segment down in front of it. */
        memmove(r->buf + first, r->buf, second);
        memmove(r->buf, r->buf + r->head, first);
    } else {
        /* Rotate the whole buffer left by head, in place (three reversals). */
        reverse(r->buf, r->head);
        reverse(r->buf + r->head, r->cap - r->head);
        reverse(r->buf, r->cap);
    }
    r->head = 0;
    return r->buf;
}

uint8_t *weft__ring_reserve(weft__ring *r, weft__bufpool *pool, size_t want, size_t limit,
                            size_t *room)
{
    *room = 0;
    if (limit > WEFT__RING_MAX)
        limit = WEFT__RING_MAX;
    if (r->len >= limit)
        return NULL;
    if (want == 0)
        want = 1;
    if (want > limit - r->len)
        want = limit - r->len;
    if (r->len == 0)
        r->head = 0;
    if (r->cap - r->len < want) {
        size_t need = r->len + want;
        size_t size = r->cap * 2u > need ? r->cap * 2u : need;
        if (move_to(r, pool, size) != 0)
            return NULL;
    } else if (r->head + r->len + want > r->cap) {
        /* Enough room in all, but not after the bytes: bring them to the front. */
        weft__ring_linearize(r);
        if (r->head != 0) {
            memmove(r->buf, r->buf + r->head, r->len);
            r->head = 0;
        }
    }
    size_t end = r->head + r->len;
    size_t avail = r->cap - end;
    if (avail > limit - r->len)
        avail = limit - r->len;
    *room = avail;
    return r->buf + end;
}

void weft__ring_commit(weft__ring *r, size_t n)
{
    assert(r->head + r->len + n <= r->cap);
    r->len += (uint32_t)n;
}
