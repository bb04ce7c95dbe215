/* weft-proxy's core; see proxy.h.
 *
 * Why both ends on one loop: the backend is dialled with loop = weft_conn_get_loop(client), so
 * every callback of a pair runs on one thread. The ends then hold plain pointers to each
 * other (cleared in on_close, on that same thread), forward with weft_conn_write (no copy
 * into a cross-thread task, no queue hop) and read each other's queue length directly,
 * which is what backpressure needs. The price is that backend connections are spread over
 * the loops exactly as the accepted ones are, which for a proxy is what one wants anyway.
 *
 * Backpressure: after forwarding, if the receiving end holds more than high_mark queued
 * bytes, the sending end stops reading (weft_conn_pause_read): its bytes then wait in the
 * kernel and TCP's window holds its peer back, so the proxy holds at most high_mark plus
 * one read per direction. When the receiving end's queue has all gone to the kernel, the
 * engine calls on_drain for it, and the paused end reads again: no polling.
 */
#include "proxy.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct pair {
    weft_conn *end[2]; /* 0: the accepted client, 1: the backend; NULL when closed or, for
                          the backend, not connected yet */
    bool paused[2];    /* end i stopped reading because end !i has too much queued */
    int refs;          /* one per connection whose on_close is still to come */
    proxy_state *ps;
} pair;

void proxy_options_init(proxy_options *o)
{
    memset(o, 0, sizeof(*o));
    o->connect_timeout_ms = 5000;
    o->high_mark = 256u * 1024u;
}

static proxy_state *state_of(weft_conn *c)
{
    return weft_engine_get_user_data(weft_conn_get_engine(c));
}

/* Which end of p is c. The client end is set first and kept until it closes, so anything
 * else is the backend, connected or not. */
static int end_of(const pair *p, const weft_conn *c)
{
    return p->end[0] == c ? 0 : 1;
}

static void release(pair *p)
{
    if (--p->refs == 0) {
        atomic_fetch_sub_explicit(&p->ps->live_pairs, 1, memory_order_relaxed);
        free(p);
    }
}

/* Stops reading end i of p until end !i drains (on_drain). */
static void pause_end(pair *p, int i)
{
    weft_conn *c = p->end[i];
    if (p->paused[i] || c == NULL)
        return;
    if (weft_conn_pause_read(c) != 0)
        return;
    p->paused[i] = true;
    atomic_fetch_add_explicit(&p->ps->pauses, 1, memory_order_relaxed);
}

/* Everything queued for c went to the kernel: the end that feeds c may read again. */
static void on_drain(weft_conn *c)
{
    pair *p = weft_conn_get_context(c);
    if (p == NULL)
        return;
    int i = end_of(p, c);
    weft_conn *feeder = p->end[!i];
    if (feeder != NULL && p->paused[!i]) {
        p->paused[!i] = false;
        (void)weft_conn_resume_read(feeder); /* also offers bytes left buffered to it */
    }
}

static weft_action on_open(weft_conn *c)
{
    proxy_state *ps = state_of(c);
    pair *p = weft_conn_get_context(c);
    if (p != NULL) {
        /* The backend connected. */
        if (p->end[0] == NULL)
            return WEFT_ACTION_CLOSE; /* its client left meanwhile */
        p->end[1] = c;
        p->paused[0] = false;
        (void)weft_conn_resume_read(p->end[0]);
        return WEFT_ACTION_NONE;
    }
    /* A client: pair it and dial its backend onto this loop. */
    atomic_fetch_add_explicit(&ps->pairs, 1, memory_order_relaxed);
    p = calloc(1, sizeof(*p));
    if (p == NULL)
        return WEFT_ACTION_CLOSE;
    p->ps = ps;
    p->end[0] = c;
    p->refs = 1;
    atomic_fetch_add_explicit(&ps->live_pairs, 1, memory_order_relaxed);
    weft_conn_set_context(c, p);
    int rc = weft_engine_dial(weft_conn_get_engine(c), ps->opt.backend, (int)weft_conn_get_loop(c),
                              ps->opt.connect_timeout_ms, p);
    if (rc != 0) {
        atomic_fetch_add_explicit(&ps->dial_failures, 1, memory_order_relaxed);
        weft_engine_log(weft_conn_get_engine(c), WEFT_LOG_WARN, "dial %s: %s", ps->opt.backend,
                        weft_strerror(rc));
        return WEFT_ACTION_CLOSE;
    }
    p->refs++;
    /* Nothing to forward to yet: let the client's bytes wait in the kernel. */
    if (weft_conn_pause_read(c) == 0)
        p->paused[0] = true;
    return WEFT_ACTION_NONE;
}

static weft_action on_traffic(weft_conn *c)
{
    pair *p = weft_conn_get_context(c);
    if (p == NULL)
        return WEFT_ACTION_CLOSE;
    int i = end_of(p, c);
    weft_conn *peer = p->end[!i];
    if (peer == NULL) {
        if (i == 0 && p->refs == 2) {
            /* A wake before the backend connected: keep the bytes for it. */
            pause_end(p, i);
            return WEFT_ACTION_NONE;
        }
        weft_conn_discard(c, weft_conn_get_buffered(c)); /* the other end is gone */
        return WEFT_ACTION_CLOSE;
    }
    const uint8_t *b;
    int n = weft_conn_peek(c, 0, &b);
    if (n > 0) {
        if (weft_conn_write(peer, b, (size_t)n) != 0) {
            weft_conn_discard(c, (size_t)n);
            return WEFT_ACTION_CLOSE;
        }
        weft_conn_discard(c, (size_t)n);
    }
    if (weft_conn_get_pending_out(peer) > p->ps->opt.high_mark)
        pause_end(p, i);
    return WEFT_ACTION_NONE;
}

static void on_close(weft_conn *c, int err)
{
    pair *p = weft_conn_get_context(c);
    if (p == NULL)
        return;
    int i = end_of(p, c);
    if (i == 1 && p->end[1] == NULL && err != 0) {
        atomic_fetch_add_explicit(&p->ps->dial_failures, 1, memory_order_relaxed);
        weft_engine_log(weft_conn_get_engine(c), WEFT_LOG_WARN, "backend %s: %s",
                        p->ps->opt.backend, weft_strerror(err));
    }
    p->end[i] = NULL;
    weft_conn *peer = p->end[!i];
    if (peer != NULL)
        (void)weft_conn_close(peer); /* after what is queued for it has gone out */
    release(p);
}

int proxy_configure(weft_config *cfg, proxy_state *ps)
{
    if (ps->opt.backend == NULL)
        return WEFT_EINVAL;
    if (ps->opt.high_mark == 0)
        ps->opt.high_mark = 256u * 1024u;
    atomic_init(&ps->pairs, 0);
    atomic_init(&ps->dial_failures, 0);
    atomic_init(&ps->pauses, 0);
    atomic_init(&ps->live_pairs, 0);
    cfg->handler.on_open = on_open;
    cfg->handler.on_traffic = on_traffic;
    cfg->handler.on_close = on_close;
    cfg->handler.on_drain = on_drain;
    cfg->user_data = ps;
    cfg->codec.kind = WEFT_CODEC_NONE;
    /* A pipe has no frames: bytes wait only while their end is paused on purpose. */
    cfg->read_timeout_ms = 0;
    /* The proxy's own marks bound each queue at high_mark plus one read; the engine's
     * high-water pause (which would stop the other direction) stays out of the way. */
    size_t need = ps->opt.high_mark + cfg->read_buffer_size;
    if (cfg->write_high_water < 2 * need)
        cfg->write_high_water = 2 * need;
    if (cfg->write_hard_cap < 2 * cfg->write_high_water)
        cfg->write_hard_cap = 2 * cfg->write_high_water;
    return 0;
}
