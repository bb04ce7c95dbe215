/* weft — closing a connection: now, gracefully after its output, lingering until the peer
 * has every byte, and the real close at the end of the iteration. */
#include <errno.h>

#include "internal.h"
#include "tls.h"

static void push_pending(weft__loop *loop, weft_conn *c)
{
    weft__wheel_remove(c); /* tw_next now chains the pending list */
    c->tw_next = loop->pending_head;
    loop->pending_head = c->slot;
}

void weft__conn_close_now(weft_conn *c, int err)
{
    if (c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING))
        return;
    weft__loop *loop = c->loop;
    c->flags |= CONN_CLOSE_PENDING;
    c->close_err = (int16_t)err;
    /* Outside any callback (a stop, a refused dial), the close happens right here. */
    weft__loop_enter(loop);
    push_pending(loop, c);
    weft__loop_leave(loop);
}

void weft__conn_finish(weft_conn *c)
{
    weft__loop *loop = c->loop;
    weft_engine *e = loop->engine;
    int err = c->close_err;
    c->flags |= CONN_CLOSED;
    c->flags &= (uint16_t)~CONN_CLOSE_PENDING;
    bool in_flight = loop->be->conn_close(c);
    if (c->flags & CONN_HAS_TIMERS)
        weft__conn_cancel_timers(c);
    /* Refs die before anyone can see the connection closing. */
    atomic_store_explicit(&c->gen, atomic_load_explicit(&c->gen, memory_order_relaxed) + 1u,
                          memory_order_release);
    /* It leaves its groups before on_close. The fence pairs with weft_group_add's: either
     * the adder sees the generation just bumped, or this sees the loop's group table and,
     * in group_leave, the membership in it. */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&loop->groups, memory_order_acquire) != NULL)
        e->group_leave(c);
    if (err < 0 && (err == WEFT_ECANCELED || err == WEFT_EOUTCAP)) {
        /* Dropping queued bytes: reset rather than let the peer think all arrived. */
        struct linger lg = {1, 0};
        (void)setsockopt(c->fd, SOL_SOCKET, SO_LINGER, (const void *)&lg, sizeof(lg));
    }
    weft__ring_release(&c->in, loop->bufpool);
    if (!in_flight) /* else a send may still read it: released with the slot */
        weft__outq_release(&c->out, loop->bufpool);
    atomic_store_explicit(&c->out.published, 0, memory_order_relaxed);
    /* Published before on_close, so whoever learns of the close sees the buffers back. */
    weft__loop_publish_buffers(loop);
    if (e->cfg.handler.on_close != NULL)
        e->cfg.handler.on_close(c, err);
    if (loop->tls != NULL)
        weft__tls_conn_free(c); /* after on_close, which may ask weft_conn_tls_error */
    /* Closed only now, so on_close still sees this connection's own addresses, and not a
     * socket another thread just got the same number for. */
    if (loop->be->conn_close_fd == NULL || !loop->be->conn_close_fd(c))
        weft__sock_close(c->fd);
    if (e->has_codec)
        weft_codec_state_destroy(&e->codec, &c->cstate);
    /* A dial that never connected was never opened in the balancer's books either. */
    if (e->balancer != NULL && !(c->flags & CONN_CONNECTING))
        weft_balancer_on_close(e->balancer, loop->index);
    WEFT__STAT_ADD(loop->stats.closed, 1);
    atomic_fetch_sub_explicit(&loop->stats.live, 1, memory_order_relaxed);
    loop->nconns--;
    c->fd = WEFT__SOCK_NONE;
    c->flags = 0;
    c->ctx = NULL;
    if (!in_flight)
        weft__conn_released(c);
}

void weft__conn_released(weft_conn *c)
{
    weft__loop *loop = c->loop;
    bool held = c->out.head != NULL; /* a completion backend's send still held it */
    weft__outq_release(&c->out, loop->bufpool);
    if (held) /* after the loop's last word (a stop), nobody else would publish it */
        weft__loop_publish_buffers(loop);
    /* Back on the free list; the next owner of the slot gets the next (odd) generation. */
    c->tw_next = loop->free_head;
    loop->free_head = c->slot;
}

/* Everything queued is with the kernel. A close() now could still lose it: closing a
 * socket with unread input sends a reset, and the kernel drops the output it has not sent
 * yet (the peer gets a truncated answer and we would report a clean close). So unless the
 * peer already finished sending, or the kernel already delivered everything, send our FIN
 * with shutdown(), drop what the peer still sends, and close once the peer acknowledged
 * every byte, ended its side, or stop_timeout_ms passed (WEFT_ETIMEDOUT): a lingering
 * close, as nginx's lingering_close. Where the system cannot say what it still holds
 * (weft__sock_outq is -1: Windows), there is nothing to wait for: with no unread input the
 * socket closes now, and the system's graceful close delivers what it holds; a linger for
 * unread input ends once that input was read. Waiting for a peer's end instead would report
 * a timeout for every peer that keeps its side open, as most clients do. */
void weft__conn_closing_drained(weft_conn *c)
{
    if ((c->flags & CONN_PEER_EOF) || (weft__sock_inq(c->fd) == 0 && weft__sock_outq(c->fd) <= 0) ||
        weft__sock_shutdown_wr(c->fd) != 0) {
        weft__conn_close_now(c, c->close_err);
        return;
    }
    c->flags |= CONN_LINGER;
    weft__conn_update_interest(c);
    weft__wheel_schedule(c);
}

bool weft__conn_linger_check(weft_conn *c, bool timed_out)
{
    if (weft__sock_outq(c->fd) <= 0) {
        weft__conn_close_now(c, c->close_err);
        return true;
    }
    if (timed_out) {
        weft__conn_close_now(c, WEFT_ETIMEDOUT);
        return true;
    }
    return false;
}

void weft__conn_linger_input(weft_conn *c, ssize_t n)
{
    if (n == 0) { /* the peer ended its side: it has taken what it will take */
        weft__conn_close_now(c, c->close_err);
        return;
    }
    if (n < 0) { /* a reset also drops whatever the peer had not acknowledged */
        weft__conn_close_now(c, weft__sock_outq(c->fd) <= 0 ? c->close_err : (int)n);
        return;
    }
    (void)weft__conn_linger_check(c, false);
}

void weft__conn_close_graceful(weft_conn *c, int err)
{
    if (c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING | CONN_LINGER))
        return;
    if (c->loop->tls != NULL && !(c->flags & CONN_CLOSING))
        weft__tls_close_notify(c); /* behind the queued output, before the FIN */
    if (!(c->flags & CONN_CLOSING)) {
        c->flags |= CONN_CLOSING;
        c->flags &= (uint16_t) ~(CONN_READING | CONN_PARTIAL);
        c->close_err = (int16_t)err;
        c->since_ms = c->loop->now_ms;
        if (c->out.len > 0) /* a peer that never takes the rest must not keep us */
            weft__wheel_schedule(c);
    }
    if (c->out.len == 0 && !(c->flags & CONN_STAGED)) /* staged: the corked flush goes on */
        weft__conn_closing_drained(c);
    else
        weft__conn_update_interest(c);
}

/* ---- public connection API (owning loop's thread) ---- */

int weft_conn_close(weft_conn *c)
{
    if (c->flags & CONN_DGRAM)
        return WEFT_EINVAL;
    if (c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING | CONN_CLOSING))
        return WEFT_ECLOSED;
    weft__conn_close_graceful(c, 0);
    return 0;
}

int weft_conn_abort(weft_conn *c)
{
    if (c->flags & CONN_DGRAM)
        return WEFT_EINVAL;
    if (c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING))
        return WEFT_ECLOSED;
    weft__conn_close_now(c, WEFT_ECANCELED);
    return 0;
}
