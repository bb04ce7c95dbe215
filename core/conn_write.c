/* weft — a connection's output: corking inside callbacks, the queue, backpressure.
 *
 * A write first tries to leave at once (outside a callback, or when it is large and
 * nothing waits before it). Small writes made inside callbacks are corked: their bytes go
 * to the loop's staging area, one for all connections, with a record of (connection,
 * offset, length), and each connection's records leave in one send when the iteration
 * ends; only what the kernel does not take then is copied into the connection's own
 * queue. So a burst of every connection writing at once costs the loop one area, not a
 * buffer per connection. What must wait goes to the connection's chunked queue (outq.c),
 * drained when the backend says the socket takes more.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "send_cap.h"
#include "tls.h"

/* Inside a dispatch, writes smaller than this are corked and leave in one syscall when the
 * iteration ends; larger ones go straight out when nothing waits. */
#define DIRECT_WRITE_MIN (16u * 1024u)
/* The staging area has a fixed size per loop: when a burst fills it, what it holds is sent
 * at once (spilled) and it starts over, so a burst costs the loop this much and no more. */
#define STAGE_BYTES (64u * 1024u)
#define STAGE_RECS  2048u
/* The corked list grows with a burst (one entry per connection written to) and goes back
 * to the system afterwards: big ones are mapped, not taken from the heap, whose top a
 * freed block would stay resident in. */
#define CORKED_KEEP 1024u
/* iovecs per send: a queue of many chunks leaves in several sends. */
#define SEND_IOV 64

/* A run of bytes in the staging area, chained per connection. */
typedef struct weft__staged {
    uint32_t off, len;
    uint32_t next; /* this connection's next record, or WEFT__NO_SLOT */
} weft__staged;

/* A connection with output to flush before the loop sleeps, and what it staged. */
typedef struct weft__corked {
    weft_conn *c;
    uint32_t head, tail; /* its staged records, or WEFT__NO_SLOT */
    uint32_t bytes;      /* staged bytes */
    bool spilled;        /* staged bytes already left (the area filled): on_drain follows */
} weft__corked;

size_t weft__conn_pending(const weft_conn *c)
{
    size_t n = c->out.len;
    if (c->flags & CONN_STAGED)
        n += c->loop->corked[c->cork_idx].bytes;
    return n;
}

/* Bytes the backend still holds for c after their send finished (zero-copy sends waiting
 * for their notification); no call while the loop holds none. */
static size_t held_of(const weft_conn *c)
{
    weft__loop *loop = c->loop;
    if (atomic_load_explicit(&loop->stats.zc_held, memory_order_relaxed) == 0)
        return 0;
    return loop->be->conn_held(c);
}

size_t weft__conn_backlog(const weft_conn *c)
{
    return weft__conn_pending(c) + held_of(c);
}

/* Other threads check the hard cap against this: staged and held bytes count too. */
static void mirror_out(weft_conn *c)
{
    atomic_store_explicit(&c->out.published, (uint32_t)weft__conn_backlog(c), memory_order_relaxed);
}

/* Resizes the corked list; the memory of a large one is mapped. */
static bool corked_resize(weft__loop *loop, uint32_t ncap)
{
    size_t old = (size_t)loop->corked_cap * sizeof(weft__corked);
    size_t want = (size_t)ncap * sizeof(weft__corked);
    void *p;
    if (ncap <= CORKED_KEEP && loop->corked_cap <= CORKED_KEEP) {
        p = ncap == 0 ? (free(loop->corked), NULL) : realloc(loop->corked, want);
    } else if (loop->corked_cap <= CORKED_KEEP) { /* from the heap to a mapping */
        p = weft__vm_map(want);
        if (p == NULL)
            return false;
        if (loop->corked != NULL)
            memcpy(p, loop->corked, old);
        free(loop->corked);
    } else if (ncap == 0) {
        weft__vm_unmap(loop->corked, old);
        p = NULL;
    } else {
        p = weft__vm_remap(loop->corked, old, want);
        if (p == NULL)
            return false;
    }
    if (p == NULL && ncap != 0)
        return false;
    loop->corked = p;
    loop->corked_cap = ncap;
    return true;
}

/* Returns false when there is no memory to remember c: the caller then lets the writable
 * event drain it instead. */
static bool push_corked(weft__loop *loop, weft_conn *c)
{
    if (c->flags & CONN_CORKED)
        return true;
    if (loop->ncorked == loop->corked_cap &&
        !corked_resize(loop, loop->corked_cap ? loop->corked_cap * 2u : 64u))
        return false;
    c->flags |= CONN_CORKED;
    c->cork_idx = loop->ncorked;
    loop->corked[loop->ncorked++] = (weft__corked){c, WEFT__NO_SLOT, WEFT__NO_SLOT, 0, false};
    return true;
}

static void check_backpressure(weft_conn *c)
{
    const weft_config *cfg = &c->loop->engine->cfg;
    size_t pending = weft__conn_backlog(c);
    if (!(c->flags & CONN_PAUSED) && pending >= cfg->write_high_water) {
        bool counted = (c->flags & CONN_READING) != 0;
        c->flags |= CONN_PAUSED;
        weft__conn_read_clock(c, counted);
        WEFT__STAT_ADD(c->loop->stats.pauses, 1);
        weft__conn_update_interest(c);
    } else if ((c->flags & CONN_PAUSED) && pending <= cfg->write_high_water / 2) {
        c->flags &= (uint16_t)~CONN_PAUSED;
        weft__conn_read_clock(c, false); /* the read timeout goes on with reading */
        weft__conn_update_interest(c);
        /* Input held back at the mark waits in the buffer: offer it again, from the loop's
         * queue, since this may run inside another connection's callback. */
        if (c->in.len > 0)
            (void)weft__loop_post_wake(c->loop, weft_conn_get_ref(c));
    }
}

/* ---- the staging area ---- */

static bool send_staged(weft_conn *c, weft__corked *k);

/* The area is full: everything staged leaves now, what the kernel does not take goes to
 * its connection's queue, and the area starts over. Only bytes move here; what a flush
 * may call back into (on_drain, a close) waits for the end of the iteration. */
static void spill(weft__loop *loop)
{
    for (uint32_t i = 0; i < loop->ncorked; i++) {
        weft__corked *k = &loop->corked[i];
        weft_conn *c = k->c;
        if (!(c->flags & CONN_STAGED))
            continue;
        if (!(c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING)))
            (void)send_staged(c, k);
        c->flags &= (uint16_t)~CONN_STAGED;
        k->head = k->tail = WEFT__NO_SLOT;
        k->bytes = 0;
        k->spilled = true;
    }
    loop->stage_len = 0;
    loop->nrecs = 0;
}

/* Copies iov into the staging area for c. Returns false (nothing staged) when the area
 * cannot take it, or c cannot be remembered for the end of the iteration. */
static bool stage(weft_conn *c, const struct iovec *iov, int iovcnt, size_t total)
{
    weft__loop *loop = c->loop;
    if (loop->stage == NULL) {
        loop->stage = malloc(STAGE_BYTES);
        loop->recs = malloc(STAGE_RECS * sizeof(weft__staged));
        if (loop->stage == NULL || loop->recs == NULL) {
            free(loop->stage);
            free(loop->recs);
            loop->stage = NULL;
            loop->recs = NULL;
            return false;
        }
    }
    if (total > STAGE_BYTES - loop->stage_len || loop->nrecs == STAGE_RECS) {
        spill(loop);
        if (c->out.len > 0) /* part of what it staged is queued now: this goes behind it */
            return false;
    }
    if (!push_corked(loop, c))
        return false;
    weft__corked *k = &loop->corked[c->cork_idx];
    uint32_t off = loop->stage_len;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len > 0)
            memcpy(loop->stage + loop->stage_len, iov[i].iov_base, iov[i].iov_len);
        loop->stage_len += (uint32_t)iov[i].iov_len;
    }
    k->bytes += (uint32_t)total;
    if ((c->flags & CONN_STAGED) &&
        loop->recs[k->tail].off + loop->recs[k->tail].len == off) { /* right behind: one run */
        loop->recs[k->tail].len += (uint32_t)total;
    } else {
        uint32_t r = loop->nrecs++;
        loop->recs[r] = (weft__staged){off, (uint32_t)total, WEFT__NO_SLOT};
        if (c->flags & CONN_STAGED)
            loop->recs[k->tail].next = r;
        else
            k->head = r;
        k->tail = r;
        c->flags |= CONN_STAGED;
    }
    mirror_out(c);
    check_backpressure(c); /* staged bytes count towards the high-water mark too */
    return true;
}

/* Moves what c staged, from record r on and skipping its first skip bytes, into its queue
 * (it must wait there: the kernel did not take it, or a write must follow it). */
static int unstage_from(weft_conn *c, weft__corked *k, uint32_t r, size_t skip)
{
    weft__loop *loop = c->loop;
    c->flags &= (uint16_t)~CONN_STAGED;
    k->head = k->tail = WEFT__NO_SLOT;
    k->bytes = 0;
    for (; r != WEFT__NO_SLOT; r = loop->recs[r].next) {
        const weft__staged *s = &loop->recs[r];
        if (skip >= s->len) {
            skip -= s->len;
            continue;
        }
        int rc =
            weft__outq_append(&c->out, loop->bufpool, loop->stage + s->off + skip, s->len - skip);
        skip = 0;
        if (rc != 0)
            return rc;
    }
    return 0;
}

void weft__loop_stage_reset(weft__loop *loop)
{
    loop->stage_len = 0;
    loop->nrecs = 0;
    if (loop->ncorked == 0 && loop->corked_cap > CORKED_KEEP)
        (void)corked_resize(loop, 0); /* a burst's list goes back to the system */
}

void weft__loop_stage_free(weft__loop *loop)
{
    free(loop->stage);
    free(loop->recs);
    loop->stage = NULL;
    loop->recs = NULL;
    (void)corked_resize(loop, 0);
}

/* ---- sending ---- */

/* The backend's send; under the test-only cap (send_cap.h) at most send_cap bytes of it, so
 * that the send ends before the queue does and the paths that go on from a partial send run
 * on every backend, whatever the kernel (or Wine) would have taken. */
static ssize_t backend_send(weft_conn *c, const struct iovec *iov, int iovcnt)
{
    weft__loop *loop = c->loop;
    if (loop->send_cap == 0)
        return loop->be->conn_send(c, iov, iovcnt);
    struct iovec capped[SEND_IOV];
    iovcnt = weft__send_cap_apply(loop, iov, iovcnt < SEND_IOV ? iovcnt : SEND_IOV, capped);
    return loop->be->conn_send(c, capped, iovcnt);
}

/* What the backend took of the queue: n bytes, or a negated errno. The chunks that empties
 * go back to the pool, or to held when the kernel may still read them (the n bytes then
 * count in *held_bytes). Returns false when c closed. */
static bool took(weft_conn *c, ssize_t n, weft__outq *held, uint32_t *held_bytes)
{
    weft__loop *loop = c->loop;
    if (n < 0) {
        weft__conn_close_now(c, (int)n);
        return false;
    }
    if (n > 0) {
        WEFT__STAT_ADD(loop->stats.bytes_out, n);
        c->active_ms = loop->now_ms;
        if (held != NULL) {
            weft__outq_consume_into(&c->out, (size_t)n, held);
            *held_bytes += (uint32_t)n;
            WEFT__STAT_ADD(loop->stats.zc_held, n);
        } else {
            weft__outq_consume(&c->out, loop->bufpool, (size_t)n);
        }
    }
    return true;
}

/* The queue changed: closing, backpressure, interest, on_drain. */
static void after_flush(weft_conn *c, bool had)
{
    mirror_out(c);
    if (c->out.len == 0 && c->loop->tls != NULL)
        weft__tls_drained(c); /* kernel TLS switches (or says close_notify) on no output */
    if (c->out.len == 0 && (c->flags & CONN_CLOSING)) {
        if (!(c->flags & CONN_LINGER))
            weft__conn_closing_drained(c);
        return;
    }
    check_backpressure(c);
    weft__conn_update_interest(c);
    /* Bytes a zero-copy send still holds count as output: on_drain waits for their
     * release (weft__conn_held_release). */
    weft_engine *e = c->loop->engine;
    if (had && c->out.len == 0 && e->cfg.handler.on_drain != NULL &&
        !(c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING | CONN_CLOSING)) && held_of(c) == 0)
        e->cfg.handler.on_drain(c);
}

void weft__conn_flush(weft_conn *c)
{
    if (c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING))
        return;
    const weft__backend *be = c->loop->be;
    bool had = c->out.len > 0;
    struct iovec iov[SEND_IOV];
    if (be->completion) {
        /* One send in flight at a time; weft__conn_sent goes on from there. */
        if (c->out.len > 0 && !(c->flags & CONN_SENDING)) {
            int cnt = weft__outq_iov(&c->out, iov, SEND_IOV, SIZE_MAX);
            ssize_t n = backend_send(c, iov, cnt);
            if (n < 0) {
                weft__conn_close_now(c, (int)n);
                return;
            }
            c->flags |= CONN_SENDING;
        }
        return;
    }
    while (c->out.len > 0) {
        int cnt = weft__outq_iov(&c->out, iov, SEND_IOV, SIZE_MAX);
        ssize_t n = backend_send(c, iov, cnt);
        if (!took(c, n, NULL, NULL))
            return;
        if (n == 0)
            break;
    }
    after_flush(c, had);
}

/* Sends c's staged records, as few sends as their count allows; the rest waits in c's
 * queue. Returns false when c closed. */
static bool send_staged(weft_conn *c, weft__corked *k)
{
    weft__loop *loop = c->loop;
    uint32_t r = k->head;
    while (r != WEFT__NO_SLOT) {
        struct iovec iov[SEND_IOV];
        int cnt = 0;
        size_t total = 0;
        uint32_t first = r;
        for (; r != WEFT__NO_SLOT && cnt < SEND_IOV; r = loop->recs[r].next) {
            iov[cnt].iov_base = loop->stage + loop->recs[r].off;
            iov[cnt].iov_len = loop->recs[r].len;
            total += loop->recs[r].len;
            cnt++;
        }
        ssize_t n = backend_send(c, iov, cnt);
        if (n < 0) {
            c->flags &= (uint16_t)~CONN_STAGED;
            weft__conn_close_now(c, (int)n);
            return false;
        }
        if (n > 0) {
            WEFT__STAT_ADD(loop->stats.bytes_out, n);
            c->active_ms = loop->now_ms;
        }
        if ((size_t)n < total) {
            int rc = unstage_from(c, k, first, (size_t)n);
            if (rc != 0) {
                weft__conn_close_now(c, rc);
                return false;
            }
            return true;
        }
    }
    c->flags &= (uint16_t)~CONN_STAGED;
    k->head = k->tail = WEFT__NO_SLOT;
    k->bytes = 0;
    return true;
}

void weft__conn_flush_corked(weft__loop *loop, uint32_t i)
{
    weft__corked k = loop->corked[i]; /* a flush may push a new entry where this one was */
    weft_conn *c = k.c;
    c->flags &= (uint16_t)~CONN_CORKED;
    if (c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING)) {
        c->flags &= (uint16_t)~CONN_STAGED; /* dropped with the connection */
        return;
    }
    if (c->flags & CONN_STAGED) {
        if (send_staged(c, &k))
            after_flush(c, true);
    } else if (k.spilled && c->out.len == 0) {
        after_flush(c, true); /* what it wrote left early: the rest of the flush is now */
    } else {
        weft__conn_flush(c);
    }
}

void weft__conn_writable(weft_conn *c)
{
    c->loop->nio++;
    /* Closed earlier in this iteration (its event goes when the iteration ends): a dial
     * that completes now must not be opened. */
    if (c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING))
        return;
    if (c->flags & CONN_CONNECTING)
        c->loop->engine->connect_done(c);
    else
        weft__conn_flush(c);
}

static void sent(weft_conn *c, ssize_t n, weft__outq *held, uint32_t *held_bytes)
{
    c->loop->nio++;
    c->flags &= (uint16_t)~CONN_SENDING;
    if (c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING))
        return;
    weft__loop_enter(c->loop);
    if (took(c, n, held, held_bytes)) {
        if (c->out.len == 0) {
            after_flush(c, n > 0);
        } else {
            /* The rest goes in the next send; the queue shrank all the same, which may
             * resume reading that the high-water mark paused. */
            weft__conn_flush(c);
            if (!(c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING))) {
                mirror_out(c);
                check_backpressure(c);
            }
        }
    }
    weft__loop_leave(c->loop);
}

void weft__conn_sent(weft_conn *c, ssize_t n)
{
    sent(c, n, NULL, NULL);
}

void weft__conn_sent_held(weft_conn *c, ssize_t n, weft__outq *held, uint32_t *held_bytes)
{
    sent(c, n, held, held_bytes);
}

void weft__conn_held_release(weft_conn *c, weft__outq *held, size_t bytes)
{
    weft__loop *loop = c->loop;
    WEFT__STAT_ADD(loop->stats.zc_held, -(int64_t)bytes);
    if (held->head != NULL) {
        weft__outq_release(held, loop->bufpool);
        /* The connection may be closed (and the loop stopping): nobody else would say so. */
        weft__loop_publish_buffers(loop);
    }
    if (bytes == 0 || (c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING)))
        return;
    /* As when queued bytes leave: below half the mark reading goes on, and output that is
     * all gone now says on_drain. */
    weft__loop_enter(loop);
    mirror_out(c);
    check_backpressure(c);
    weft_engine *e = loop->engine;
    if (c->out.len == 0 && held_of(c) == 0 && e->cfg.handler.on_drain != NULL &&
        !(c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING | CONN_CLOSING | CONN_SENDING)))
        e->cfg.handler.on_drain(c);
    weft__loop_leave(loop);
}

/* Over the hard cap with n more bytes: closes c (WEFT_EOUTCAP). */
static bool over_cap(weft_conn *c, size_t n)
{
    weft__loop *loop = c->loop;
    size_t cap = loop->engine->cfg.write_hard_cap;
    size_t queued = weft__conn_backlog(c);
    if (n <= cap && queued <= cap - n)
        return false;
    weft__log_peer(loop, WEFT_LOG_WARN,
                   "conn %u/%u: %zu bytes queued for a peer that does not read: over the hard cap "
                   "of %zu, closing",
                   loop->index, c->slot, queued + n, cap);
    weft__conn_close_now(c, WEFT_EOUTCAP);
    return true;
}

/* The bytes could not all leave at once: c's queue holds them now. */
static void queued(weft_conn *c)
{
    weft__loop *loop = c->loop;
    mirror_out(c);
    if (loop->depth > 0) {
        if (!push_corked(loop, c))
            weft__conn_update_interest(c); /* the writable event drains it instead */
    } else if (loop->be->completion) {
        weft__conn_flush(c);
    } else {
        weft__conn_update_interest(c); /* the direct send left a rest: wait for room */
    }
    check_backpressure(c);
}

/* Tries to send iov straight away: when nothing waits before it, and outside a callback or
 * when large. Returns the bytes sent (maybe 0), or a negated errno (c is then closing). */
static ssize_t send_direct(weft_conn *c, const struct iovec *iov, int iovcnt, size_t total)
{
    weft__loop *loop = c->loop;
    if (c->out.len > 0 || (c->flags & CONN_STAGED) || loop->be->completion ||
        (loop->depth > 0 && total < DIRECT_WRITE_MIN))
        return 0;
    ssize_t n = backend_send(c, iov, iovcnt);
    if (n < 0) {
        weft__conn_close_now(c, (int)n);
        return n;
    }
    if (n > 0) {
        WEFT__STAT_ADD(loop->stats.bytes_out, n);
        c->active_ms = loop->now_ms;
    }
    return n;
}

int weft__conn_send(weft_conn *c, const struct iovec *iov, int iovcnt)
{
    if (c->flags & CONN_DGRAM)
        return weft__dgram_send(c, iov, iovcnt, NULL, 0);
    if (c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING | CONN_CLOSING))
        return WEFT_ECLOSED;
    if (c->loop->tls != NULL && weft__tls_of(c) != NULL)
        return weft__tls_send(c, iov, iovcnt); /* its records come back to send_raw */
    return weft__conn_send_raw(c, iov, iovcnt);
}

int weft__conn_send_raw(weft_conn *c, const struct iovec *iov, int iovcnt)
{
    if (c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING))
        return WEFT_ECLOSED;
    weft__loop *loop = c->loop;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (total == 0)
        return 0;
    ssize_t sent = send_direct(c, iov, iovcnt, total);
    if (sent < 0)
        return (int)sent;
    if ((size_t)sent == total)
        return 0;
    /* Corked: a small write inside a callback with no queue before it. A completion backend
     * sends from memory that lives until the send completes, so it queues instead. */
    if (sent == 0 && loop->depth > 0 && total < DIRECT_WRITE_MIN && c->out.len == 0 &&
        !loop->be->completion && stage(c, iov, iovcnt, total))
        return 0;
    if (over_cap(c, total - (size_t)sent))
        return WEFT_EOUTCAP;
    /* Whatever this connection staged goes before these bytes. */
    int rc = 0;
    if (c->flags & CONN_STAGED) {
        weft__corked *k = &loop->corked[c->cork_idx];
        rc = unstage_from(c, k, k->head, 0);
    }
    size_t skip = (size_t)sent;
    for (int i = 0; i < iovcnt && rc == 0; i++) {
        size_t l = iov[i].iov_len;
        if (skip >= l) {
            skip -= l;
            continue;
        }
        rc = weft__outq_append(&c->out, loop->bufpool, (const uint8_t *)iov[i].iov_base + skip,
                               l - skip);
        skip = 0;
    }
    if (rc != 0) {
        weft__conn_close_now(c, rc);
        return rc;
    }
    queued(c);
    return 0;
}

static void free_plain(void *data, void *ctx)
{
    (void)ctx;
    free(data);
}

int weft__conn_send_ref(weft_conn *c, void *data, size_t len, weft_free_cb free_cb, void *free_ctx)
{
    if (free_cb == NULL)
        free_cb = free_plain;
    weft__loop *loop = c->loop;
    int rc = WEFT_ECLOSED;
    ssize_t sent = 0;
    if (len == 0 || (c->flags & CONN_DGRAM) || loop->depth == 0 || len < DIRECT_WRITE_MIN ||
        (c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING | CONN_CLOSING)) ||
        (loop->tls != NULL && weft__tls_of(c) != NULL)) {
        /* Small, not a stream, or encrypted (the records are new bytes): copied like any
         * write, and ours to release now. */
        struct iovec iov = {data, len};
        rc = weft__conn_send(c, &iov, 1);
        free_cb(data, free_ctx);
        return rc;
    }
    struct iovec iov = {data, len};
    sent = send_direct(c, &iov, 1, len);
    if (sent < 0 || (size_t)sent == len) {
        free_cb(data, free_ctx);
        return sent < 0 ? (int)sent : 0;
    }
    if (over_cap(c, len - (size_t)sent)) {
        free_cb(data, free_ctx);
        return WEFT_EOUTCAP;
    }
    rc = 0;
    if (c->flags & CONN_STAGED) {
        weft__corked *k = &loop->corked[c->cork_idx];
        rc = unstage_from(c, k, k->head, 0);
    }
    if (rc == 0)
        rc = weft__outq_append_ref(&c->out, data, (size_t)sent, len, free_cb, free_ctx);
    if (rc != 0) {
        free_cb(data, free_ctx);
        weft__conn_close_now(c, rc);
        return rc;
    }
    queued(c);
    return 0;
}

/* ---- public connection API (owning loop's thread) ---- */

int weft_conn_write(weft_conn *c, const void *data, size_t len)
{
    struct iovec iov = {(void *)data, len};
    return weft__conn_send(c, &iov, 1);
}

int weft_conn_writev(weft_conn *c, const struct iovec *iov, int iovcnt)
{
    if (iovcnt < 0 || (iovcnt > 0 && iov == NULL))
        return WEFT_EINVAL;
    return weft__conn_send(c, iov, iovcnt);
}

int weft_conn_write_frame(weft_conn *c, const void *data, size_t len)
{
    weft_encoding enc;
    struct iovec iov[3];
    int rc = weft__frame_iov(c->loop->engine, data, len, &enc, iov);
    return rc != 0 ? rc : weft__conn_send(c, iov, 3);
}

int weft__frame_iov(weft_engine *e, const void *data, size_t len, weft_encoding *enc,
                    struct iovec iov[3])
{
    if (!e->has_codec)
        return WEFT_ENOCODEC;
    memset(enc, 0, sizeof(*enc));
    int rc = weft_codec_encode(&e->codec, data, len, enc);
    if (rc != 0)
        return rc;
    iov[0] = (struct iovec){enc->head, enc->head_len};
    iov[1] = (struct iovec){(void *)data, len};
    iov[2] = (struct iovec){(void *)enc->tail, enc->tail_len};
    return 0;
}
