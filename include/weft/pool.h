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

/* Runs a task, on a worker thread with status 0, or with WEFT_ECANCELED on the thread calling
 * weft_pool_shutdown(WEFT_POOL_CANCEL) when the pool shut down before it ran: every submitted
 * task is called exactly once, either way, so it can free arg. */
typedef void (*weft_task_cb)(void *arg, int status);

typedef struct weft_pool_config {
    size_t threads;        /* 1 to 1024; default 4 */
    size_t queue_capacity; /* tasks waiting, beyond the running ones, 1 to 2^24; default 1024 */
    const char *name;      /* thread name prefix (for debuggers), cut so "<name>-<i>" fits
                              15 bytes; NULL = the default; default "weft-worker" */
} weft_pool_config;

/* Fills every field with its default (a NULL cfg is ignored). */
WEFT_API void weft_pool_config_init(weft_pool_config *cfg);

/* Starts the threads. cfg is copied (name borrowed until this returns); *out is owned by the
 * caller until weft_pool_shutdown. Returns 0, or with *out NULL and no thread left running:
 * WEFT_EINVAL (a NULL argument, threads or queue_capacity out of range), WEFT_ENOMEM, or a
 * negated errno from creating a thread (e.g. WEFT_EAGAIN). Any thread. */
WEFT_API int weft_pool_create(const weft_pool_config *cfg, weft_pool **out);

/* Queues fn(arg) and returns at once: 0, WEFT_EINVAL (pool or fn NULL), WEFT_EAGAIN when the
 * queue is full, WEFT_ESHUTDOWN once shutdown began. On failure fn is never called. Any
 * thread. */
WEFT_API int weft_pool_submit(weft_pool *pool, weft_task_cb fn, void *arg);

/* Like weft_pool_submit, but waits up to timeout_ms (< 0: forever; 0: not at all) for room:
 * 0, WEFT_EINVAL (pool or fn NULL), WEFT_ETIMEDOUT (still full) or WEFT_ESHUTDOWN. On failure
 * fn is never called. Any thread. */
WEFT_API int weft_pool_submit_wait(weft_pool *pool, weft_task_cb fn, void *arg, int timeout_ms);

typedef enum weft_pool_shutdown_mode {
    WEFT_POOL_DRAIN = 0, /* run every queued task, then stop */
    WEFT_POOL_CANCEL     /* call queued tasks with WEFT_ECANCELED, finish the running ones */
} weft_pool_shutdown_mode;

/* Stops accepting tasks, drains or cancels the queue, joins the threads and frees pool.
 * Returns 0; WEFT_EINVAL for a NULL pool or unknown mode; WEFT_EBUSY, leaving the pool
 * untouched, when called from one of its own threads (it would have to join itself).
 * Cancelled tasks are called on the calling thread; callers blocked in submit_wait get
 * WEFT_ESHUTDOWN. Call it once; no other call on pool may still run when it returns. Never
 * on the engine's pool (weft_engine_get_pool): weft_engine_wait shuts that one down. */
WEFT_API int weft_pool_shutdown(weft_pool *pool, weft_pool_shutdown_mode mode);

typedef struct weft_pool_stats {
    uint64_t queued;    /* waiting now */
    uint64_t running;   /* running now */
    uint64_t completed; /* ran (or were cancelled) */
    uint64_t rejected;  /* refused by submit (full, timed out, shut down) */
} weft_pool_stats;

/* Fills out (owned by the caller; all zeros for a NULL pool). Any thread; the numbers are a
 * consistent snapshot. */
WEFT_API void weft_pool_get_stats(weft_pool *pool, weft_pool_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_POOL_H */
