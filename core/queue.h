/* weft — a loop's inbox: tasks from other threads, and one wakeup for a burst of them.
 *
 * Producers (the acceptor, workers, any thread) push under a mutex; the owning loop swaps
 * the whole batch out under the same mutex and runs it without holding it. Only the push
 * that finds the inbox empty wakes the loop (platform.h's waker), so N pushes before the loop wakes cost one
 * wakeup, not N.
 */
#ifndef WEFT_QUEUE_H
#define WEFT_QUEUE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weft/engine.h"
#include "platform.h"

typedef enum weft__task_kind {
    WEFT__TASK_NEW_CONN = 1, /* fd: a connection the acceptor took (data: the TLS certificates
                                of its listener, or NULL) */
    WEFT__TASK_DIAL,         /* fd: connecting; data: ctx; len: connect timeout in ms */
    WEFT__TASK_ENROLL,       /* fd: connected, from weft_engine_enroll; data: ctx */
    WEFT__TASK_WRITE,        /* ref, data/len, free_cb + free_ctx (NULL = free()) */
    WEFT__TASK_CLOSE,        /* ref: graceful close */
    WEFT__TASK_WAKE,         /* ref: call on_traffic */
    WEFT__TASK_ABORT,        /* ref: close now; len: the reason (a WEFT_E* code) */
    WEFT__TASK_CALL,         /* ref: conn_fn(conn, data) */
    WEFT__TASK_LOOP_CALL,    /* loop_fn(engine, loop, data, 0) */
    WEFT__TASK_STOP          /* begin the loop's shutdown; from the acceptor, once it
                                stopped accepting */
} weft__task_kind;

struct weft__loop;

typedef struct weft__task {
    weft__task_kind kind;
    weft__sock fd;
    /* DIAL on a backend that connects itself (conn_connect): where to, owned by the task
     * (freed by whoever runs or drops it); NULL otherwise. */
    struct sockaddr_storage *dest;
    socklen_t dest_len;
    int family; /* NEW_CONN, DIAL, ENROLL: the socket's address family */
    int err;    /* ABORT: the reason */
    weft_conn_ref ref;
    void *data;
    size_t len;
    weft_free_cb free_cb;
    void *free_ctx;
    /* DIAL: what the loop runs for it (dial.c's side), so the loop needs no arrow back
     * into the control side. */
    void (*run)(struct weft__loop *loop, struct weft__task *t);
    weft_conn_call_cb conn_fn; /* CALL */
    weft_loop_call_cb loop_fn; /* LOOP_CALL */
} weft__task;

typedef struct weft__queue {
    pthread_mutex_t mu;
    weft__task *items;
    size_t len, cap;
    weft__task *spare; /* the consumer's batch buffer, swapped with items */
    size_t spare_cap;
    bool signaled;     /* a wakeup is written and not yet consumed */
    weft__waker waker; /* what the loop's backend watches */
    uint64_t wakeups;  /* wakes, for statistics (under mu) */
} weft__queue;

/* Returns 0 or a negated errno. */
int weft__queue_init(weft__queue *q);
void weft__queue_destroy(weft__queue *q);

/* Any thread. Returns 0 or WEFT_ENOMEM. */
int weft__queue_push(weft__queue *q, const weft__task *t);

/* Owning loop only. Takes every queued task: *out points at a batch of *n tasks valid
 * until the next drain. Clears the wakeup first so no push is ever left unseen. */
void weft__queue_drain(weft__queue *q, weft__task **out, size_t *n);

/* Wakes the loop. Outside the tests only push calls it, when no wakeup is pending
 * (weft_engine_stop wakes the acceptor's own, not a loop's). */
void weft__queue_kick(weft__queue *q);

#endif /* WEFT_QUEUE_H */
