/* weft — a loop's inbox; see queue.h. */
#include "queue.h"

#include <stdlib.h>

int weft__queue_init(weft__queue *q)
{
    q->items = NULL;
    q->len = q->cap = 0;
    q->spare = NULL;
    q->spare_cap = 0;
    q->signaled = false;
    q->wakeups = 0;
    int rc = weft__waker_init(&q->waker);
    if (rc != 0)
        return rc;
    rc = pthread_mutex_init(&q->mu, NULL);
    if (rc != 0) {
        weft__waker_destroy(&q->waker);
        return -rc;
    }
    return 0;
}

void weft__queue_destroy(weft__queue *q)
{
    weft__waker_destroy(&q->waker);
    pthread_mutex_destroy(&q->mu);
    free(q->items);
    free(q->spare);
    q->items = q->spare = NULL;
}

void weft__queue_kick(weft__queue *q)
{
    weft__waker_wake(&q->waker);
}

int weft__queue_push(weft__queue *q, const weft__task *t)
{
    pthread_mutex_lock(&q->mu);
    if (q->len == q->cap) {
        size_t ncap = q->cap ? q->cap * 2 : 64;
        weft__task *n = realloc(q->items, ncap * sizeof(*n));
        if (n == NULL) {
            pthread_mutex_unlock(&q->mu);
            return WEFT_ENOMEM;
        }
        q->items = n;
        q->cap = ncap;
    }
    q->items[q->len++] = *t;
    bool kick = !q->signaled;
    q->signaled = true;
    if (kick)
        q->wakeups++;
    pthread_mutex_unlock(&q->mu);
    if (kick)
        weft__queue_kick(q);
    return 0;
}

void weft__queue_drain(weft__queue *q, weft__task **out, size_t *n)
{
    weft__waker_drain(&q->waker);

    pthread_mutex_lock(&q->mu);
    weft__task *batch = q->items;
    size_t blen = q->len;
    size_t bcap = q->cap;
    q->items = q->spare;
    q->cap = q->spare_cap;
    q->len = 0;
    q->spare = batch;
    q->spare_cap = bcap;
    q->signaled = false;
    pthread_mutex_unlock(&q->mu);
    *out = batch;
    *n = blen;
}
