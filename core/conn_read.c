/* weft — a connection's inbound side: where bytes land, on_traffic dispatch, borrowed spans
 * and the read API. */
#include <errno.h>
#include <string.h>

#include "internal.h"
#include "tls.h"

/* ---- inbound ---- */

/* The unread bytes of c as one span. */
static const uint8_t *in_view(weft_conn *c, size_t *len)
{
    weft__loop *loop = c->loop;
    if (loop->cur == c) {
        *len = loop->view_len - loop->view_used;
        /* A wake with nothing buffered has no view at all: NULL + 0 is undefined. */
        return loop->view != NULL ? loop->view + loop->view_used : NULL;
    }
    *len = c->in.len;
    return weft__ring_linearize(&c->in);
}

static void in_consume(weft_conn *c, size_t n)
{
    weft__loop *loop = c->loop;
    if (loop->cur == c)
        loop->view_used += n;
    else /* keep the buffer: a span handed out must outlive this call */
        weft__ring_consume(&c->in, loop->bufpool, n, 1);
}

static void handle_action(weft_conn *c, weft_action a)
{
    if (a == WEFT_ACTION_CLOSE)
        weft__conn_close_graceful(c, 0);
    else if (a == WEFT_ACTION_SHUTDOWN)
        weft__loop_request_stop(c->loop->engine);
}

/* c's input waits while reading is paused (the high-water mark, weft_conn_pause_read). */
static bool input_held(const weft_conn *c)
{
    return c->in.len > 0 && !(c->flags & CONN_CLOSING) &&
           (c->flags & (CONN_READING | CONN_PAUSED)) != CONN_READING;
}

void weft__conn_dispatch(weft_conn *c, const uint8_t *fresh, size_t fresh_len)
{
    weft__loop *loop = c->loop;
    weft_engine *e = loop->engine;
    if (c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING))
        return;
    weft__loop_enter(loop);
    bool in_ring = fresh == NULL;
    loop->cur = c;
    if (in_ring) {
        loop->view = weft__ring_linearize(&c->in);
        loop->view_len = c->in.len;
    } else {
        loop->view = fresh;
        loop->view_len = fresh_len;
    }
    loop->view_used = 0;
    loop->view_need = 0;
    loop->view_in_ring = in_ring;
    weft_action a = e->cfg.handler.on_traffic(c);
    size_t used = loop->view_used;
    size_t len = loop->view_len;
    size_t need = loop->view_need;
    loop->cur = NULL;
    loop->view = NULL;
    loop->view_len = loop->view_used = 0;

    if (c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING | CONN_DECODE_FAILED)) {
        /* Nobody will read what is left. */
        weft__ring_release(&c->in, loop->bufpool);
    } else if (in_ring) {
        weft__ring_consume(&c->in, loop->bufpool, used, 0);
    } else if (used < len) {
        int rc =
            weft__ring_append(&c->in, loop->bufpool, fresh + used, len - used, e->cfg.max_inbound);
        if (rc != 0) {
            weft__log_peer(loop, WEFT_LOG_WARN,
                           "conn %u/%u: %zu unread bytes: over max_inbound, closing", loop->index,
                           c->slot, len - used);
            weft__conn_close_now(c, rc == WEFT_EOUTCAP ? WEFT_EINCAP : rc);
        }
    }
    /* After the peer's end, what is left can only be a frame nobody will finish, unless it
     * was held back (the high-water mark, weft_conn_pause_read): that is offered again when
     * reading resumes, and c closes then. */
    bool ended = (c->flags & CONN_PEER_EOF) && !(c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING)) &&
                 !input_held(c);
    if (ended)
        weft__ring_release(&c->in, loop->bufpool);
    /* What the codec said the frame still needs steers how the buffer grows (its last step
     * lands on the frame's end); nothing is reserved for it, so a length field cannot make
     * us take memory its bytes have not brought. A buffer that the frame it holds leaves
     * mostly unused (a big frame was consumed, or it was handed a big spare) shrinks; one
     * the frame will fill does not, so it is never shrunk and grown back, copying the frame
     * again read after read, as the old rule did. */
    if (c->in.len > 0) {
        weft__ring_set_goal(&c->in, need > 0 ? c->in.len + need : 0);
        weft__ring_shrink(&c->in, loop->bufpool);
    }
    if (!(c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING | CONN_CLOSING))) {
        if (c->in.len == 0) {
            c->flags &= (uint16_t)~CONN_PARTIAL;
        } else if (!(c->flags & CONN_PARTIAL) || used > 0) {
            /* The read timeout runs from the last progress, so a fast stream that always
             * ends mid-frame is not mistaken for a slow one. */
            weft__conn_read_clock_start(c);
            if (!(c->flags & CONN_PARTIAL)) {
                c->flags |= CONN_PARTIAL;
                weft__wheel_schedule(c);
            }
        }
    }
    if (c->flags & CONN_DECODE_FAILED)
        weft__conn_close_graceful(c, c->close_err);
    else if (ended)
        weft__conn_close_graceful(c, 0);
    handle_action(c, a);
    weft__loop_leave(loop);
}

/* Reading is what c wants now: not while paused, closing or closed, nor after the peer's
 * end. */
static bool wants_input(const weft_conn *c)
{
    return (c->flags & (CONN_READING | CONN_PAUSED | CONN_CLOSING | CONN_CLOSED |
                        CONN_CLOSE_PENDING | CONN_PEER_EOF)) == CONN_READING;
}

void weft__conn_peer_ended(weft_conn *c)
{
    c->flags |= CONN_PEER_EOF;
    weft__conn_update_interest(c);
    if (c->in.len == 0 || (c->flags & (CONN_DECODE_FAILED | CONN_CLOSING))) {
        weft__conn_close_graceful(c, 0);
        return;
    }
    /* The requests that came before the end are answered before the close: now (on_traffic
     * sees what is buffered once more, knowing nothing follows), or when reading resumes if
     * they are held back. The dispatch closes c once nothing is held. */
    if (!input_held(c))
        weft__conn_dispatch(c, NULL, 0);
}

uint8_t *weft__conn_recv_buf(weft_conn *c, size_t *room)
{
    weft__loop *loop = c->loop;
    if (c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING))
        return NULL;
    if (c->flags & CONN_LINGER) { /* dropped anyway: any place will do */
        *room = loop->rbuf_size;
        return loop->rbuf;
    }
    if (!wants_input(c))
        return NULL;
    if (loop->tls != NULL && weft__tls_of(c) != NULL) { /* ciphertext: decrypted from there */
        *room = loop->rbuf_size;
        return loop->rbuf;
    }
    if (c->in.len == 0) {
        if (c->in.buf != NULL)
            weft__ring_release(&c->in, loop->bufpool);
        *room = loop->rbuf_size;
        return loop->rbuf;
    }
    /* A partial frame waits: read straight behind it, so the frame ends up in one span
     * without copying what was read before. */
    weft_engine *e = loop->engine;
    size_t want = c->in.len < loop->rbuf_size ? c->in.len : loop->rbuf_size;
    if (want < 4096)
        want = 4096;
    /* The last read of a frame of known size needs only its missing bytes: asking for more
     * would grow the buffer past the frame's end. */
    if (c->in.goal > c->in.len && c->in.goal - c->in.len < want)
        want = c->in.goal - c->in.len;
    uint8_t *p = weft__ring_reserve(&c->in, loop->bufpool, want, e->cfg.max_inbound, room);
    if (p == NULL) {
        weft__log_peer(loop, WEFT_LOG_WARN,
                       "conn %u/%u: %u unread bytes buffered: max_inbound reached, closing",
                       loop->index, c->slot, c->in.len);
        weft__conn_close_now(c, WEFT_EINCAP);
    }
    return p;
}

/* A large frame that keeps arriving is progress, though no frame completes: each time what
 * waits doubles (from 64 KiB on) the read timeout starts again. A legitimate upload gets a
 * full read timeout per doubling, while a slowloris would have to send exponentially more
 * for each extension. */
static void large_frame_progress(weft_conn *c, size_t n)
{
    size_t before = c->in.len, after = before + n;
    if (after >= 64u * 1024u && __builtin_clzll(after) < __builtin_clzll(before))
        weft__conn_read_clock_start(c);
}

/* Joins a span that is not c's own buffer to what c has waiting, under max_inbound. Returns
 * false when c closed (WEFT_EINCAP, or no memory). */
static bool join_input(weft_conn *c, const uint8_t *data, size_t n)
{
    weft__loop *loop = c->loop;
    int rc = weft__ring_append(&c->in, loop->bufpool, data, n, loop->engine->cfg.max_inbound);
    if (rc != 0)
        weft__conn_close_now(c, rc == WEFT_EOUTCAP ? WEFT_EINCAP : rc);
    return rc == 0;
}

void weft__conn_deliver(weft_conn *c, const uint8_t *data, size_t n)
{
    if (c->in.len > 0)
        large_frame_progress(c, n);
    if (c->in.len > 0 && data == c->in.buf + c->in.head + c->in.len) {
        /* Read behind the partial frame, where weft__conn_recv_buf pointed. */
        weft__ring_commit(&c->in, n);
        weft__conn_dispatch(c, NULL, 0);
    } else if (c->in.len > 0) {
        /* A span of the backend's own (or plaintext): join it to what waits. */
        if (join_input(c, data, n))
            weft__conn_dispatch(c, NULL, 0);
    } else {
        weft__conn_dispatch(c, data, n);
    }
}

/* Bytes a completion backend had under way when c stopped wanting input (paused, or
 * closing): kept for when reading resumes, as a readiness backend leaves them in the socket,
 * or dropped if c is closing (its input would be dropped by the lingering close anyway). An
 * end of input is left alone: reading, once resumed, meets it again. */
static void held_input(weft_conn *c, const uint8_t *data, ssize_t n)
{
    if (n == 0 || (c->flags & CONN_CLOSING))
        return;
    WEFT__STAT_ADD(c->loop->stats.bytes_in, n);
    (void)join_input(c, data, (size_t)n);
}

void weft__conn_recv_done(weft_conn *c, const uint8_t *data, ssize_t n)
{
    weft__loop *loop = c->loop;
    loop->nio++;
    if (c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING))
        return;
    if (c->flags & CONN_LINGER) {
        weft__conn_linger_input(c, n);
        return;
    }
    if (loop->tls != NULL && weft__tls_recv(c, data, n))
        return; /* ciphertext: TLS delivers (or holds) the plaintext */
    if (n >= 0 && !wants_input(c)) {
        held_input(c, data, n);
        return;
    }
    if (n > 0) {
        WEFT__STAT_ADD(loop->stats.bytes_in, n);
        c->active_ms = loop->now_ms;
        weft__conn_deliver(c, data, (size_t)n);
        return;
    }
    if (n == 0) {
        /* The peer finished sending (maybe only half-closed): answer what is buffered and
         * queued, then close. */
        weft__conn_peer_ended(c);
        return;
    }
    weft__conn_close_now(c, (int)n);
}

/* ---- public connection API (owning loop's thread) ---- */

size_t weft_conn_get_buffered(const weft_conn *c)
{
    const weft__loop *loop = c->loop;
    if (loop->cur == c)
        return loop->view_len - loop->view_used;
    return c->in.len;
}

int weft_conn_peek(weft_conn *c, size_t n, const uint8_t **out)
{
    size_t len;
    const uint8_t *p = in_view(c, &len);
    if (n == 0 || n > len)
        n = len;
    if (n > INT32_MAX)
        n = INT32_MAX;
    *out = p;
    return (int)n;
}

int weft_conn_discard(weft_conn *c, size_t n)
{
    size_t len;
    (void)in_view(c, &len);
    if (n > len)
        n = len;
    if (n > INT32_MAX)
        n = INT32_MAX;
    in_consume(c, n);
    return (int)n;
}

int weft_conn_read(weft_conn *c, void *buf, size_t n)
{
    size_t len;
    const uint8_t *p = in_view(c, &len);
    if (n > len)
        n = len;
    if (n > INT32_MAX)
        n = INT32_MAX;
    if (n > 0)
        memcpy(buf, p, n);
    in_consume(c, n);
    return (int)n;
}

int weft_conn_next_message(weft_conn *c, const uint8_t **frame, size_t *flen, const void **message)
{
    weft__loop *loop = c->loop;
    weft_engine *e = loop->engine;
    if (!e->has_codec)
        return WEFT_ENOCODEC;
    if (c->flags & CONN_DECODE_FAILED)
        return c->close_err;
    if (c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING))
        return WEFT_ECLOSED;
    /* At the high-water mark no more requests are handed out, so buffered ones cannot turn
     * into unbounded replies; they are offered again once the queue drains below half. */
    if (c->flags & CONN_PAUSED)
        return WEFT_AGAIN;
    for (;;) {
        size_t len;
        const uint8_t *p = in_view(c, &len);
        if (len == 0)
            return WEFT_AGAIN;
        weft_frame fr;
        memset(&fr, 0, sizeof(fr));
        int rc = weft_codec_decode(&e->codec, &c->cstate, p, len, &fr);
        if (fr.consumed > len)
            rc = WEFT_ECORRUPT, fr.reason = "codec consumed more than it was given",
            fr.recoverable = false, fr.consumed = len;
        in_consume(c, fr.consumed);
        if (rc > WEFT_FRAME) {
            /* decode answers with a count of one frame at most. */
            rc = WEFT_ECORRUPT;
            fr.reason = "codec returned more than one frame";
            fr.recoverable = false;
        }
        if (rc == WEFT_FRAME) {
            if (fr.offset > len || fr.length > len - fr.offset) {
                rc = WEFT_ECORRUPT;
                fr.reason = "codec reported a frame outside its input";
                fr.recoverable = false;
            } else {
                WEFT__STAT_ADD(loop->stats.frames, 1);
                if (loop->err_reason != NULL && loop->err_slot == c->slot)
                    loop->err_reason = NULL; /* a good frame: the error is behind it */
                *frame = p + fr.offset;
                *flen = fr.length;
                if (message != NULL)
                    *message = fr.message;
                return WEFT_FRAME;
            }
        }
        if (rc == WEFT_AGAIN) {
            /* The codec knows how big the frame will be: make room once instead of
             * growing the buffer read by read. */
            if (loop->cur == c && fr.need > len - fr.consumed)
                loop->view_need = fr.need - (len - fr.consumed);
            return WEFT_AGAIN;
        }
        WEFT__STAT_ADD(loop->stats.decode_errors, 1);
        loop->err_slot = c->slot;
        loop->err_gen = atomic_load_explicit(&c->gen, memory_order_relaxed);
        loop->err_reason = fr.reason != NULL ? fr.reason : weft_strerror(rc);
        /* A "recoverable" error that skipped nothing would be met again forever. */
        bool can_skip = fr.recoverable && fr.consumed > 0;
        bool fatal;
        if (e->cfg.handler.on_decode_error != NULL) {
            /* The protocol answers for itself (an error reply), then says what to do. */
            weft_action a = e->cfg.handler.on_decode_error(c, rc, loop->err_reason);
            if (a == WEFT_ACTION_SHUTDOWN)
                weft__loop_request_stop(e);
            fatal = a != WEFT_ACTION_NONE || !can_skip;
            if (c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING | CONN_CLOSING))
                return rc; /* it closed the connection itself */
        } else {
            /* Asked here, on the error path, so the frame path stays a plain decode call. */
            weft_codec_traits traits;
            weft_codec_get_traits(&e->codec, &traits);
            fatal = !can_skip || traits.close_on_error;
            weft__log_peer(loop, WEFT_LOG_WARN, "conn %u/%u: %s codec: %s: %s%s", loop->index,
                           c->slot, e->codec.vtable->name, weft_strerror(rc), loop->err_reason,
                           fatal ? "; closing" : "; skipped");
        }
        if (!fatal)
            continue;
        c->flags |= CONN_DECODE_FAILED;
        c->flags &= (uint16_t)~CONN_READING;
        c->close_err = (int16_t)(rc < INT16_MIN ? WEFT_ECORRUPT : rc);
        if (loop->cur != c) /* outside its on_traffic: nothing else will close it */
            weft__conn_close_graceful(c, rc);
        return rc;
    }
}

int weft_conn_next_frame(weft_conn *c, const uint8_t **frame, size_t *flen)
{
    return weft_conn_next_message(c, frame, flen, NULL);
}

const char *weft_conn_get_decode_error(const weft_conn *c)
{
    const weft__loop *loop = c->loop;
    if (loop->err_reason == NULL || loop->err_slot != c->slot ||
        loop->err_gen != atomic_load_explicit(&c->gen, memory_order_relaxed))
        return NULL;
    return loop->err_reason;
}
