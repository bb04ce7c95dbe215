/* weft — reaching a connection from any thread, by ref, through its loop's queue. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Checks that ref names a connection that is open now. It may still close before its loop
 * runs the task; the loop checks again and then drops the task (freeing what it owns). */
static int ref_check(weft_engine *e, weft_conn_ref ref, weft__loop **lp, weft_conn **cp)
{
    if (e == NULL)
        return WEFT_EINVAL;
    if (atomic_load_explicit(&e->stop_requested, memory_order_relaxed))
        return WEFT_ESHUTDOWN;
    if (ref.loop >= e->nloops || (ref.gen & 1u) == 0)
        return WEFT_ESTALE;
    weft__loop *loop = &e->loops[ref.loop];
    weft_conn *c = weft__slot_get(loop, ref.slot);
    if (c == NULL || atomic_load_explicit(&c->gen, memory_order_acquire) != ref.gen)
        return WEFT_ESTALE;
    *lp = loop;
    *cp = c;
    return 0;
}

static int push_write(weft_engine *e, weft_conn_ref ref, void *data, size_t len,
                      weft_free_cb free_cb, void *free_ctx)
{
    weft__loop *loop;
    weft_conn *c;
    int rc = ref_check(e, ref, &loop, &c);
    if (rc == 0 && len > e->cfg.write_hard_cap)
        rc = WEFT_EOUTCAP;
    if (rc == 0) {
        /* The hard cap holds for other threads too: they learn it here, not by a silent
         * drop later. Reserve first, then check, so writers racing each other see each
         * other's reservations. The loop adds a write to out.published before it takes it off
         * async_pending, so reading async_pending first (acquire) can count a write twice
         * for a moment but never miss it. */
        uint64_t pending =
            atomic_fetch_add_explicit(&c->async_pending, (uint32_t)len, memory_order_acq_rel);
        uint64_t queued = pending + atomic_load_explicit(&c->out.published, memory_order_relaxed);
        if (queued > e->cfg.write_hard_cap - len) {
            atomic_fetch_sub_explicit(&c->async_pending, (uint32_t)len, memory_order_relaxed);
            rc = WEFT_EOUTCAP;
        }
    }
    if (rc == WEFT_EOUTCAP) {
        /* Refused at the hard cap: the connection closes, as weft_conn_write closes it, so
         * a reader never gets a stream with a hole in it. */
        weft__task t;
        memset(&t, 0, sizeof(t));
        t.kind = WEFT__TASK_ABORT;
        t.ref = ref;
        t.err = WEFT_EOUTCAP;
        (void)weft__queue_push(&loop->queue, &t);
    }
    if (rc == 0) {
        weft__task t;
        memset(&t, 0, sizeof(t));
        t.kind = WEFT__TASK_WRITE;
        t.ref = ref;
        t.data = data;
        t.len = len;
        t.free_cb = free_cb;
        t.free_ctx = free_ctx;
        rc = weft__queue_push(&loop->queue, &t);
        if (rc != 0)
            atomic_fetch_sub_explicit(&c->async_pending, (uint32_t)len, memory_order_relaxed);
    }
    /* On failure a zero-copy buffer stays the caller's and free_cb never runs (a call that
     * fails never runs its callback); our own copies are ours to free. */
    if (rc != 0 && free_cb == NULL)
        free(data);
    return rc;
}

int weft_async_write_zc(weft_engine *e, weft_conn_ref ref, void *data, size_t len,
                        weft_free_cb free_cb, void *free_ctx)
{
    if (free_cb == NULL || (data == NULL && len > 0))
        return WEFT_EINVAL;
    return push_write(e, ref, data, len, free_cb, free_ctx);
}

int weft_async_writev(weft_engine *e, weft_conn_ref ref, const struct iovec *iov, int iovcnt)
{
    if (iovcnt < 0 || (iovcnt > 0 && iov == NULL))
        return WEFT_EINVAL;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len > WEFT__RING_MAX - total)
            return WEFT_EOUTCAP;
        total += iov[i].iov_len;
    }
    uint8_t *copy = malloc(total ? total : 1);
    if (copy == NULL)
        return WEFT_ENOMEM;
    size_t off = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len > 0)
            memcpy(copy + off, iov[i].iov_base, iov[i].iov_len);
        off += iov[i].iov_len;
    }
    return push_write(e, ref, copy, total, NULL, NULL);
}

int weft_async_write(weft_engine *e, weft_conn_ref ref, const void *data, size_t len)
{
    if (data == NULL && len > 0)
        return WEFT_EINVAL;
    if (len > WEFT__RING_MAX)
        return WEFT_EOUTCAP;
    uint8_t *copy = malloc(len ? len : 1);
    if (copy == NULL)
        return WEFT_ENOMEM;
    if (len > 0)
        memcpy(copy, data, len);
    return push_write(e, ref, copy, len, NULL, NULL);
}

int weft_async_write_frame(weft_engine *e, weft_conn_ref ref, const void *data, size_t len)
{
    if (e == NULL || (data == NULL && len > 0))
        return WEFT_EINVAL;
    /* The codec is shared read-only by every thread (codec.h), so it encodes here, on the
     * caller's thread, and the loop only sends. */
    weft_encoding enc;
    struct iovec iov[3];
    int rc = weft__frame_iov(e, data, len, &enc, iov);
    return rc != 0 ? rc : weft_async_writev(e, ref, iov, 3);
}

/* Queues task t (its kind and what goes with it) for ref's connection. */
static int push_task(weft_engine *e, weft_conn_ref ref, weft__task *t)
{
    weft__loop *loop;
    weft_conn *c;
    int rc = ref_check(e, ref, &loop, &c);
    if (rc != 0)
        return rc;
    t->ref = ref;
    return weft__queue_push(&loop->queue, t);
}

int weft_async_close(weft_engine *e, weft_conn_ref ref)
{
    weft__task t = {.kind = WEFT__TASK_CLOSE};
    return push_task(e, ref, &t);
}

int weft_async_wake(weft_engine *e, weft_conn_ref ref)
{
    weft__task t = {.kind = WEFT__TASK_WAKE};
    return push_task(e, ref, &t);
}

int weft_async_abort(weft_engine *e, weft_conn_ref ref)
{
    weft__task t = {.kind = WEFT__TASK_ABORT, .err = WEFT_ECANCELED};
    return push_task(e, ref, &t);
}

int weft_async_call(weft_engine *e, weft_conn_ref ref, weft_conn_call_cb fn, void *arg)
{
    if (fn == NULL)
        return WEFT_EINVAL;
    weft__task t = {.kind = WEFT__TASK_CALL, .conn_fn = fn, .data = arg};
    return push_task(e, ref, &t);
}

int weft_loop_call(weft_engine *e, unsigned loop, weft_loop_call_cb fn, void *arg)
{
    if (e == NULL || fn == NULL || loop >= e->nloops)
        return WEFT_EINVAL;
    if (atomic_load_explicit(&e->stop_requested, memory_order_relaxed))
        return WEFT_ESHUTDOWN;
    weft__task t;
    memset(&t, 0, sizeof(t));
    t.kind = WEFT__TASK_LOOP_CALL;
    t.loop_fn = fn;
    t.data = arg;
    return weft__queue_push(&e->loops[loop].queue, &t);
}

int weft_async_get_pending_out(weft_engine *e, weft_conn_ref ref, size_t *bytes)
{
    if (bytes == NULL)
        return WEFT_EINVAL;
    *bytes = 0;
    /* No stop check: still a fair question while the engine stops. */
    if (e == NULL)
        return WEFT_EINVAL;
    if (ref.loop >= e->nloops || (ref.gen & 1u) == 0)
        return WEFT_ESTALE;
    weft_conn *c = weft__slot_get(&e->loops[ref.loop], ref.slot);
    if (c == NULL || atomic_load_explicit(&c->gen, memory_order_acquire) != ref.gen)
        return WEFT_ESTALE;
    uint64_t n = atomic_load_explicit(&c->async_pending, memory_order_acquire) +
                 atomic_load_explicit(&c->out.published, memory_order_relaxed);
    /* Read again: a slot reused meanwhile answers for another connection. */
    if (atomic_load_explicit(&c->gen, memory_order_acquire) != ref.gen)
        return WEFT_ESTALE;
    *bytes = (size_t)n;
    return 0;
}
