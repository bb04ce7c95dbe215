/* weft — a connection's output: the queue, corking inside callbacks, backpressure. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "internal.h"

/* Inside a dispatch, writes smaller than this go to the queue and leave in one syscall when
 * the iteration ends; larger ones go straight out when nothing waits. */
#define DIRECT_WRITE_MIN (16u * 1024u)

static void mirror_out(weft_conn *c)
{
    atomic_store_explicit(&c->out_len, c->out.len, memory_order_relaxed);
}

/* Returns false when there is no memory to remember c: the caller then lets the writable
 * event drain it instead. */
static bool push_corked(weft__loop *loop, weft_conn *c)
{
    if (loop->ncorked == loop->corked_cap) {
        uint32_t ncap = loop->corked_cap ? loop->corked_cap * 2u : 64u;
        weft_conn **n = realloc(loop->corked, ncap * sizeof(*n));
        if (n == NULL)
            return false;
        loop->corked = n;
        loop->corked_cap = ncap;
    }
    c->flags |= CONN_CORKED;
    loop->corked[loop->ncorked++] = c;
    return true;
}

static void check_backpressure(weft_conn *c)
{
    const weft_config *cfg = &c->loop->engine->cfg;
    if (!(c->flags & CONN_PAUSED) && c->out.len >= cfg->write_high_water) {
        c->flags |= CONN_PAUSED;
        WEFT__STAT_ADD(c->loop->stats.pauses, 1);
        weft__conn_update_interest(c);
    } else if ((c->flags & CONN_PAUSED) && c->out.len <= cfg->write_high_water / 2) {
        c->flags &= (uint16_t)~CONN_PAUSED;
        c->since_ms = c->loop->now_ms; /* the read timeout restarts with reading */
        weft__conn_update_interest(c);
    }
}

/* What the backend took of the queue: n bytes, or a negated errno. Returns false when c
 * closed. */
static bool took(weft_conn *c, ssize_t n)
{
    weft__loop *loop = c->loop;
    if (n < 0) {
        weft__conn_close_now(c, (int)n);
        return false;
    }
    if (n > 0) {
        WEFT__STAT_ADD(loop->stats.bytes_out, n);
        c->active_ms = loop->now_ms;
        weft__ring_consume(&c->out, loop->bufpool, (size_t)n, 0);
    }
    return true;
}

/* The queue changed: closing, backpressure, interest, on_drain. */
static void after_flush(weft_conn *c, bool had)
{
    mirror_out(c);
    if (c->out.len == 0 && (c->flags & CONN_CLOSING)) {
        if (!(c->flags & CONN_LINGER))
            weft__conn_closing_drained(c);
        return;
    }
    check_backpressure(c);
    weft__conn_update_interest(c);
    weft_engine *e = c->loop->engine;
    if (had && c->out.len == 0 && e->cfg.handler.on_drain != NULL &&
        !(c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING | CONN_CLOSING)))
        e->cfg.handler.on_drain(c);
}

void weft__conn_flush(weft_conn *c)
{
    if (c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING))
        return;
    const weft__backend *be = c->loop->be;
    bool had = c->out.len > 0;
    if (be->completion) {
        /* One send in flight at a time; weft__conn_sent goes on from there. */
        if (c->out.len > 0 && !(c->flags & CONN_SENDING)) {
            struct iovec iov[2];
            int cnt = weft__ring_iov(&c->out, iov);
            ssize_t n = be->conn_send(c, iov, cnt);
            if (n < 0) {
                weft__conn_close_now(c, (int)n);
                return;
            }
            c->flags |= CONN_SENDING;
        }
        return;
    }
    while (c->out.len > 0) {
        struct iovec iov[2];
        int cnt = weft__ring_iov(&c->out, iov);
        ssize_t n = be->conn_send(c, iov, cnt);
        if (!took(c, n))
            return;
        if (n == 0)
            break;
    }
    after_flush(c, had);
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

void weft__conn_sent(weft_conn *c, ssize_t n)
{
    c->loop->nio++;
    c->flags &= (uint16_t)~CONN_SENDING;
    if (c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING))
        return;
    weft__loop_enter(c->loop);
    if (took(c, n)) {
        if (c->out.len > 0)
            weft__conn_flush(c);
        else
            after_flush(c, n > 0);
    }
    weft__loop_leave(c->loop);
}

int weft__conn_send(weft_conn *c, const struct iovec *iov, int iovcnt)
{
    if (c->flags & CONN_DGRAM)
        return weft__dgram_send(c, iov, iovcnt, NULL, 0);
    if (c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING | CONN_CLOSING))
        return WEFT_ECLOSED;
    weft__loop *loop = c->loop;
    const weft_config *cfg = &loop->engine->cfg;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (total == 0)
        return 0;
    size_t sent = 0;
    /* Straight out when nothing waits, outside a callback or when large; a completion
     * backend sends from the queue only, since the caller's memory is not ours to keep. */
    if (c->out.len == 0 && !loop->be->completion &&
        (loop->depth == 0 || total >= DIRECT_WRITE_MIN)) {
        ssize_t n = loop->be->conn_send(c, iov, iovcnt);
        if (n < 0) {
            weft__conn_close_now(c, (int)n);
            return (int)n;
        }
        WEFT__STAT_ADD(loop->stats.bytes_out, n);
        if (n > 0)
            c->active_ms = loop->now_ms;
        sent = (size_t)n;
        if (sent == total)
            return 0;
    }
    if (total - sent > cfg->write_hard_cap || c->out.len > cfg->write_hard_cap - (total - sent)) {
        weft__log(loop->engine, WEFT_LOG_WARN,
                  "conn %u/%u: %zu bytes queued for a peer that does not read: over the hard "
                  "cap of %zu, closing",
                  loop->index, c->slot, (size_t)c->out.len + (total - sent), cfg->write_hard_cap);
        weft__conn_close_now(c, WEFT_EOUTCAP);
        return WEFT_EOUTCAP;
    }
    size_t skip = sent;
    for (int i = 0; i < iovcnt; i++) {
        const uint8_t *p = iov[i].iov_base;
        size_t l = iov[i].iov_len;
        if (skip >= l) {
            skip -= l;
            continue;
        }
        int rc = weft__ring_append(&c->out, loop->bufpool, p + skip, l - skip, cfg->write_hard_cap);
        skip = 0;
        if (rc != 0) {
            weft__conn_close_now(c, rc);
            return rc;
        }
    }
    mirror_out(c);
    if (loop->depth > 0) {
        if (!(c->flags & CONN_CORKED))
            if (!push_corked(loop, c))
                weft__conn_update_interest(c); /* the writable event drains it instead */
    } else if (loop->be->completion) {
        weft__conn_flush(c);
    } else {
        weft__conn_update_interest(c); /* the direct send above left a rest: wait for room */
    }
    check_backpressure(c);
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
    weft_engine *e = c->loop->engine;
    if (!e->has_codec)
        return WEFT_ENOCODEC;
    weft_encoding enc;
    memset(&enc, 0, sizeof(enc));
    int rc = weft_codec_encode(&e->codec, data, len, &enc);
    if (rc != 0)
        return rc;
    struct iovec iov[3] = {
        {enc.head, enc.head_len}, {(void *)data, len}, {(void *)enc.tail, enc.tail_len}};
    return weft__conn_send(c, iov, 3);
}
