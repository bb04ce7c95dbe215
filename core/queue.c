/* weft — a loop's inbox; see queue.h. */
#include "queue.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

int weft__queue_init(weft__queue *q)
{
    q->items = NULL;
    q->len = q->cap = 0;
    q->spare = NULL;
    q->spare_cap = 0;
    q->signaled = false;
    q->wakeups = 0;
    q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (q->efd < 0)
        return -errno;
    int rc = pthread_mutex_init(&q->mu, NULL);
    if (rc != 0) {
        close(q->efd);
        q->efd = -1;
        return -rc;
    }
    return 0;
}

void weft__queue_destroy(weft__queue *q)
{
    if (q->efd >= 0)
        close(q->efd);
    q->efd = -1;
    pthread_mutex_destroy(&q->mu);
    free(q->items);
    free(q->spare);
    q->items = q->spare = NULL;
}

void weft__queue_kick(weft__queue *q)
{
    uint64_t one = 1;
    ssize_t n;
    do {
        n = write(q->efd, &one, sizeof(one));
    } while (n < 0 && errno == EINTR);
    /* EAGAIN means the counter is already non-zero: the loop will wake anyway. */
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
    uint64_t v;
    ssize_t r;
    do {
        r = read(q->efd, &v, sizeof(v));
    } while (r < 0 && errno == EINTR);

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
