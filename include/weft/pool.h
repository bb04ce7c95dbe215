/* weft — worker-thread pool for blocking work.
 *
 * A fixed set of threads with a bounded queue. Usable on its own; an engine with
 * cfg.workers > 0 owns one (weft_engine_get_pool). Tasks that answer a connection do so with
 * weft_async_write() and friends, which are safe from any thread.
 */
#ifndef WEFT_POOL_H
#define WEFT_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "weft/error.h"
#include "weft/version.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_pool weft_pool;

/* Runs a task. status is 0 when the task runs normally and WEFT_ECANCELED when the pool
 * shut down with WEFT_POOL_CANCEL before it ran: every submitted task is called exactly
 * once, either way, so it can free arg. */
typedef void (*weft_task_cb)(void *arg, int status);

typedef struct weft_pool_config {
    size_t threads;        /* default 4 */
    size_t queue_capacity; /* tasks waiting, beyond the running ones; default 1024 */
    const char *name;      /* thread name prefix (for debuggers); default "weft-worker" */
} weft_pool_config;

WEFT_API void weft_pool_config_init(weft_pool_config *cfg);

/* Starts the threads. *out is owned by the caller until weft_pool_shutdown. Returns 0,
 * WEFT_EINVAL or a negated errno. */
WEFT_API int weft_pool_create(const weft_pool_config *cfg, weft_pool **out);

/* Queues fn(arg) and returns at once: 0, WEFT_EAGAIN when the queue is full, WEFT_ESHUTDOWN
 * once shutdown began. On failure fn is never called. Any thread. */
WEFT_API int weft_pool_submit(weft_pool *pool, weft_task_cb fn, void *arg);

/* Like weft_pool_submit, but waits up to timeout_ms (< 0: forever) for room: 0,
 * WEFT_ETIMEDOUT or WEFT_ESHUTDOWN. On failure fn is never called. Any thread. */
WEFT_API int weft_pool_submit_wait(weft_pool *pool, weft_task_cb fn, void *arg, int timeout_ms);

typedef enum weft_pool_shutdown_mode {
    WEFT_POOL_DRAIN = 0, /* run every queued task, then stop */
    WEFT_POOL_CANCEL     /* call queued tasks with WEFT_ECANCELED, finish the running ones */
} weft_pool_shutdown_mode;

/* Stops accepting tasks, drains or cancels the queue, joins the threads and frees pool.
 * Returns 0; WEFT_EINVAL for a NULL pool or unknown mode; WEFT_EBUSY, leaving the pool
 * untouched, when called from one of its own threads (it would have to join itself).
 * Cancelled tasks are called on the calling thread; callers blocked in submit_wait get
 * WEFT_ESHUTDOWN. Call it once; no other call on pool may still run when it returns. */
WEFT_API int weft_pool_shutdown(weft_pool *pool, weft_pool_shutdown_mode mode);

typedef struct weft_pool_stats {
    uint64_t queued;    /* waiting now */
    uint64_t running;   /* running now */
    uint64_t completed; /* ran (or were cancelled) */
    uint64_t rejected;  /* refused by submit (full, timed out, shut down) */
} weft_pool_stats;

/* Any thread; the numbers are a consistent snapshot. */
WEFT_API void weft_pool_get_stats(weft_pool *pool, weft_pool_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_POOL_H */
