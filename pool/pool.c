/* weft — worker-thread pool: fixed threads, one bounded ring of tasks.
 *
 * One mutex guards everything and two condition variables carry the two waits: workers wait
 * on not_empty, submit_wait callers on not_full. A lock-free queue would be faster under heavy
 * contention, but tasks sent here block on disk or a database, so a task costs far more than
 * the lock; the mutex keeps the code short and obviously race-free.
 */
#ifndef _GNU_SOURCE /* the build defines it already; a bare redefinition is -Werror */
#define _GNU_SOURCE
#endif
#include <assert.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "timed_wait.h"
#include "weft/pool.h"

/* Sanity caps: anything above is almost certainly a unit mix-up, and refusing it beats
 * trying to start a million threads or allocate terabytes. */
#define WEFT__POOL_MAX_THREADS 1024
#define WEFT__POOL_MAX_QUEUE   ((size_t)1 << 24)

/* Linux limits a thread name to 15 bytes plus the terminating NUL. */
#define WEFT__POOL_NAME_MAX 16

typedef struct weft_pool_task {
    weft_task_cb fn;
    void *arg;
} weft_pool_task;

struct weft_pool {
    pthread_mutex_t lock;
    pthread_cond_t not_empty; /* a task was queued, or shutdown began */
    pthread_cond_t not_full;  /* a slot freed, or shutdown began */
    pthread_cond_t quiet;     /* the last submit_wait waiter left after shutdown began */

    weft_pool_task *ring;
    size_t capacity;
    size_t head;  /* index of the oldest queued task */
    size_t count; /* tasks queued */

    bool stopping;
    weft_pool_shutdown_mode mode;
    size_t waiters; /* callers blocked in submit_wait */

    uint64_t running;
    uint64_t completed;
    uint64_t rejected;

    char name[WEFT__POOL_NAME_MAX];
    pthread_t *threads;
    size_t nthreads; /* threads started, which may be fewer than asked while creating */
};

typedef struct weft_pool_start {
    weft_pool *pool;
    size_t index;
} weft_pool_start;

void weft_pool_config_init(weft_pool_config *cfg)
{
    if (cfg == NULL)
        return;
    memset(cfg, 0, sizeof(*cfg));
    cfg->threads = 4;
    cfg->queue_capacity = 1024;
    cfg->name = "weft-worker";
}

/* "<prefix>-<index>", with the prefix cut rather than the index when the name is too long,
 * so threads of one pool never end up with the same name. */
static void pool_thread_name(const weft_pool *pool, size_t index, char *out)
{
    char suffix[24];
    int n = snprintf(suffix, sizeof(suffix), "-%zu", index);
    size_t keep = WEFT__POOL_NAME_MAX - 1 - (size_t)n;
    size_t plen = strnlen(pool->name, keep);
    memcpy(out, pool->name, plen);
    memcpy(out + plen, suffix, (size_t)n + 1);
}

static void *pool_worker(void *p)
{
    weft_pool_start start = *(weft_pool_start *)p;
    weft_pool *pool = start.pool;
    free(p);

    char name[WEFT__POOL_NAME_MAX];
    pool_thread_name(pool, start.index, name);
    /* Only a debugging aid: a failure to name the thread changes nothing. */
    (void)pthread_setname_np(pthread_self(), name);

    pthread_mutex_lock(&pool->lock);
    for (;;) {
        while (pool->count == 0 && !pool->stopping)
            pthread_cond_wait(&pool->not_empty, &pool->lock);
        /* Draining: leave once the queue is empty. Cancelling: leave at once; the thread
         * that called shutdown hands every queued task its WEFT_ECANCELED, so no task can
         * be both run and cancelled. */
        if (pool->stopping && (pool->count == 0 || pool->mode == WEFT_POOL_CANCEL))
            break;

        weft_pool_task task = pool->ring[pool->head];
        pool->head = (pool->head + 1) % pool->capacity;
        pool->count--;
        pool->running++;
        if (pool->waiters > 0)
            pthread_cond_signal(&pool->not_full);
        pthread_mutex_unlock(&pool->lock);

        task.fn(task.arg, 0);

        pthread_mutex_lock(&pool->lock);
        pool->running--;
        pool->completed++;
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

/* Refuses new work from now on and wakes every worker and every submit_wait caller. */
static void pool_stop_threads(weft_pool *pool, weft_pool_shutdown_mode mode)
{
    pthread_mutex_lock(&pool->lock);
    pool->stopping = true;
    pool->mode = mode;
    pthread_cond_broadcast(&pool->not_empty);
    pthread_cond_broadcast(&pool->not_full);
    pthread_mutex_unlock(&pool->lock);
}

static void pool_join_threads(weft_pool *pool)
{
    for (size_t i = 0; i < pool->nthreads; i++)
        pthread_join(pool->threads[i], NULL);
}

static void pool_free(weft_pool *pool)
{
    pthread_cond_destroy(&pool->quiet);
    pthread_cond_destroy(&pool->not_full);
    pthread_cond_destroy(&pool->not_empty);
    pthread_mutex_destroy(&pool->lock);
    free(pool->threads);
    free(pool->ring);
    free(pool);
}

/* Sets up the lock and condition variables; a submit_wait's wait on not_full is measured
 * on the monotonic clock (timed_wait.h), so a wall-clock jump neither cuts it short nor
 * stretches it. */
static int pool_init_sync(weft_pool *pool)
{
    pthread_condattr_t attr;
    int rc = weft__pool_condattr_init(&attr);
    if (rc != 0)
        return -rc;
    rc = pthread_mutex_init(&pool->lock, NULL);
    if (rc != 0)
        goto out_attr;
    rc = pthread_cond_init(&pool->not_empty, &attr);
    if (rc != 0)
        goto out_lock;
    rc = pthread_cond_init(&pool->not_full, &attr);
    if (rc != 0)
        goto out_not_empty;
    rc = pthread_cond_init(&pool->quiet, &attr);
    if (rc != 0)
        goto out_not_full;
    pthread_condattr_destroy(&attr);
    return 0;

out_not_full:
    pthread_cond_destroy(&pool->not_full);
out_not_empty:
    pthread_cond_destroy(&pool->not_empty);
out_lock:
    pthread_mutex_destroy(&pool->lock);
out_attr:
    pthread_condattr_destroy(&attr);
    return -rc;
}

int weft_pool_create(const weft_pool_config *cfg, weft_pool **out)
{
    if (out != NULL)
        *out = NULL;
    if (cfg == NULL || out == NULL)
        return WEFT_EINVAL;
    if (cfg->threads == 0 || cfg->threads > WEFT__POOL_MAX_THREADS)
        return WEFT_EINVAL;
    if (cfg->queue_capacity == 0 || cfg->queue_capacity > WEFT__POOL_MAX_QUEUE)
        return WEFT_EINVAL;

    weft_pool *pool = calloc(1, sizeof(*pool));
    if (pool == NULL)
        return WEFT_ENOMEM;
    pool->ring = calloc(cfg->queue_capacity, sizeof(*pool->ring));
    pool->threads = calloc(cfg->threads, sizeof(*pool->threads));
    if (pool->ring == NULL || pool->threads == NULL) {
        free(pool->ring);
        free(pool->threads);
        free(pool);
        return WEFT_ENOMEM;
    }
    pool->capacity = cfg->queue_capacity;
    const char *name = cfg->name != NULL ? cfg->name : "weft-worker";
    snprintf(pool->name, sizeof(pool->name), "%s", name);

    int rc = pool_init_sync(pool);
    if (rc != 0) {
        free(pool->ring);
        free(pool->threads);
        free(pool);
        return rc;
    }

    for (size_t i = 0; i < cfg->threads; i++) {
        weft_pool_start *start = malloc(sizeof(*start));
        if (start == NULL) {
            rc = WEFT_ENOMEM;
            break;
        }
        start->pool = pool;
        start->index = i;
        int err = pthread_create(&pool->threads[i], NULL, pool_worker, start);
        if (err != 0) {
            free(start);
            rc = -err;
            break;
        }
        pool->nthreads++;
    }
    if (rc != 0) {
        /* Nobody else has seen the pool, so the queue is empty and a drain is instant. */
        pool_stop_threads(pool, WEFT_POOL_DRAIN);
        pool_join_threads(pool);
        pool_free(pool);
        return rc;
    }
    *out = pool;
    return 0;
}

/* Queues one task; the caller holds the lock and has checked there is room. */
static void pool_push(weft_pool *pool, weft_task_cb fn, void *arg)
{
    assert(pool->count < pool->capacity);
    size_t tail = (pool->head + pool->count) % pool->capacity;
    pool->ring[tail].fn = fn;
    pool->ring[tail].arg = arg;
    pool->count++;
    pthread_cond_signal(&pool->not_empty);
}

int weft_pool_submit(weft_pool *pool, weft_task_cb fn, void *arg)
{
    if (pool == NULL || fn == NULL)
        return WEFT_EINVAL;
    int rc = 0;
    pthread_mutex_lock(&pool->lock);
    if (pool->stopping)
        rc = WEFT_ESHUTDOWN;
    else if (pool->count == pool->capacity)
        rc = WEFT_EAGAIN;
    if (rc == 0)
        pool_push(pool, fn, arg);
    else
        pool->rejected++;
    pthread_mutex_unlock(&pool->lock);
    return rc;
}

int weft_pool_submit_wait(weft_pool *pool, weft_task_cb fn, void *arg, int timeout_ms)
{
    if (pool == NULL || fn == NULL)
        return WEFT_EINVAL;
    struct timespec deadline = {0, 0};
    if (timeout_ms >= 0)
        deadline = weft__pool_deadline_after(timeout_ms);

    int rc = 0;
    bool timed_out = false;
    pthread_mutex_lock(&pool->lock);
    pool->waiters++;
    while (!pool->stopping && pool->count == pool->capacity && !timed_out) {
        if (timeout_ms < 0)
            pthread_cond_wait(&pool->not_full, &pool->lock);
        else
            timed_out = weft__pool_timedwait(&pool->not_full, &pool->lock, &deadline) == ETIMEDOUT;
    }
    pool->waiters--;
    if (pool->stopping)
        rc = WEFT_ESHUTDOWN;
    else if (pool->count == pool->capacity)
        rc = WEFT_ETIMEDOUT;
    if (rc == 0)
        pool_push(pool, fn, arg);
    else
        pool->rejected++;
    /* Shutdown frees the condition variables only once no waiter is left inside them. */
    if (pool->stopping && pool->waiters == 0)
        pthread_cond_signal(&pool->quiet);
    pthread_mutex_unlock(&pool->lock);
    return rc;
}

static bool pool_is_own_thread(const weft_pool *pool)
{
    pthread_t self = pthread_self();
    for (size_t i = 0; i < pool->nthreads; i++) {
        if (pthread_equal(self, pool->threads[i]))
            return true;
    }
    return false;
}

int weft_pool_shutdown(weft_pool *pool, weft_pool_shutdown_mode mode)
{
    if (pool == NULL || (mode != WEFT_POOL_DRAIN && mode != WEFT_POOL_CANCEL))
        return WEFT_EINVAL;
    /* A worker would end up joining itself; refuse and leave the pool running. threads[]
     * and nthreads are written only before create returns, so reading them here is safe. */
    if (pool_is_own_thread(pool))
        return WEFT_EBUSY;

    pool_stop_threads(pool, mode);

    if (mode == WEFT_POOL_CANCEL) {
        /* Workers no longer pop, and submit refuses new work, so the queue only shrinks
         * here. Each task counts as running while its cancel callback runs, which keeps
         * queued + running + completed equal to what was accepted. */
        pthread_mutex_lock(&pool->lock);
        while (pool->count > 0) {
            weft_pool_task task = pool->ring[pool->head];
            pool->head = (pool->head + 1) % pool->capacity;
            pool->count--;
            pool->running++;
            pthread_mutex_unlock(&pool->lock);

            task.fn(task.arg, WEFT_ECANCELED);

            pthread_mutex_lock(&pool->lock);
            pool->running--;
            pool->completed++;
        }
        pthread_mutex_unlock(&pool->lock);
    }

    pool_join_threads(pool);

    /* submit_wait callers woken by the broadcast may still be queued on the lock. */
    pthread_mutex_lock(&pool->lock);
    while (pool->waiters > 0)
        pthread_cond_wait(&pool->quiet, &pool->lock);
    pthread_mutex_unlock(&pool->lock);

    pool_free(pool);
    return 0;
}

void weft_pool_get_stats(weft_pool *pool, weft_pool_stats *out)
{
    if (out == NULL)
        return;
    memset(out, 0, sizeof(*out));
    if (pool == NULL)
        return;
    pthread_mutex_lock(&pool->lock);
    out->queued = pool->count;
    out->running = pool->running;
    out->completed = pool->completed;
    out->rejected = pool->rejected;
    pthread_mutex_unlock(&pool->lock);
}
