/* weft — per-loop timer wheel for connection timeouts.
 *
 * Three timeouts share it: idle (no bytes either way for idle_timeout_ms), read (unread
 * bytes, i.e. a partial frame, waiting for read_timeout_ms without progress: slowloris)
 * and close (a graceful close whose output the peer does not take within stop_timeout_ms;
 * a lingering close is also looked at every tick, to close once the peer took it all).
 * Activity only stamps the connection; it stays in the bucket it was filed in, and when the
 * wheel reaches that bucket it computes the real deadline and closes or re-files it. So a
 * tick costs the connections due around then, and each connection is visited about once
 * per timeout period, whatever the number of connections.
 */
#include <stddef.h>

#include "internal.h"
#include "tls.h"

#define MASK (WEFT__TW_SLOTS - 1u)

/* a is before b on the wrapping 32-bit millisecond clock. */
static bool before(uint32_t a, uint32_t b)
{
    return (int32_t)(a - b) < 0;
}

/* The earliest deadline of c and the error it closes with; false if none. */
static bool deadline(const weft_conn *c, uint32_t *when, int *why)
{
    const weft_config *cfg = &c->loop->engine->cfg;
    bool any = false;
    if (c->flags & CONN_CONNECTING) {
        *when = c->active_ms; /* the connect deadline */
        *why = WEFT_ETIMEDOUT;
        return true;
    }
    if (c->flags & CONN_LINGER) {
        /* Is everything acknowledged yet? Asked again every tick. */
        *when = c->loop->now_ms + WEFT__TW_TICK_MS;
        *why = WEFT_ETIMEDOUT;
        return true;
    }
    if (c->flags & CONN_CLOSING) {
        if (cfg->stop_timeout_ms > 0) {
            *when = c->since_ms + cfg->stop_timeout_ms;
            *why = WEFT_ETIMEDOUT;
            return true;
        }
        return false;
    }
    if (c->loop->tls != NULL && weft__tls_deadline(c, when, why))
        return true; /* a TLS handshake: it must finish in time, bytes or not */
    const uint32_t *own_t = c->loop->timeouts[c->slot >> WEFT__CHUNK_SHIFT];
    uint32_t own =
        own_t != NULL ? own_t[c->slot & (WEFT__CHUNK_SIZE - 1u)] : WEFT__TIMEOUTS_DEFAULT;
    uint32_t idle_ticks = own >> 16, read_ticks = own & 0xffffu;
    uint32_t idle =
        idle_ticks != WEFT__TIMEOUT_DEFAULT ? idle_ticks * WEFT__TW_TICK_MS : cfg->idle_timeout_ms;
    uint32_t read =
        read_ticks != WEFT__TIMEOUT_DEFAULT ? read_ticks * WEFT__TW_TICK_MS : cfg->read_timeout_ms;
    if (idle > 0) {
        *when = c->active_ms + idle;
        *why = WEFT_EIDLE;
        any = true;
    }
    /* A partial frame counts against the peer only while we read: not while paused by the
     * high-water mark or by weft_conn_pause_read (the clock holds; see conn.c), and not
     * once the bytes were taken outside on_traffic. */
    if ((c->flags & (CONN_PARTIAL | CONN_READING | CONN_PAUSED)) == (CONN_PARTIAL | CONN_READING) &&
        c->in.len > 0 && read > 0) {
        uint32_t w = c->since_ms + read;
        if (!any || before(w, *when)) {
            *when = w;
            *why = WEFT_EREADTIMEOUT;
            any = true;
        }
    }
    return any;
}

void weft__wheel_remove(weft_conn *c)
{
    if (c->tw_prev == WEFT__NO_SLOT)
        return;
    weft__loop *loop = c->loop;
    if (c->tw_next != WEFT__NO_SLOT)
        weft__slot_get(loop, c->tw_next)->tw_prev = c->tw_prev;
    if (c->tw_prev & WEFT__TW_HEAD)
        loop->wheel[c->tw_prev & ~WEFT__TW_HEAD] = c->tw_next;
    else
        weft__slot_get(loop, c->tw_prev)->tw_next = c->tw_next;
    c->tw_prev = c->tw_next = WEFT__NO_SLOT;
}

static void file_in(weft_conn *c, uint32_t bucket)
{
    weft__loop *loop = c->loop;
    uint32_t head = loop->wheel[bucket];
    c->tw_prev = WEFT__TW_HEAD | bucket;
    c->tw_next = head;
    if (head != WEFT__NO_SLOT)
        weft__slot_get(loop, head)->tw_prev = c->slot;
    loop->wheel[bucket] = c->slot;
}

void weft__wheel_schedule(weft_conn *c)
{
    weft__loop *loop = c->loop;
    if (c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING))
        return; /* tw_next belongs to the pending or free list now */
    weft__wheel_remove(c);
    uint32_t when;
    int why;
    if (!deadline(c, &when, &why))
        return;
    /* Ticks from the last processed one; at least the next, at most a lap ahead (a later
     * deadline is looked at again when the lap comes round). */
    /* Connections stamp 32-bit milliseconds (deltas are all that matter); the wheel counts
     * 64-bit ticks, so neither wraps in the life of a process. */
    uint64_t when64 = loop->now64_ms + (uint64_t)(int64_t)(int32_t)(when - loop->now_ms);
    if ((int32_t)(when - loop->now_ms) < 0)
        when64 = loop->now64_ms;
    uint64_t due_tick = when64 / WEFT__TW_TICK_MS + 1u;
    uint64_t ahead = due_tick > loop->wheel_tick ? due_tick - loop->wheel_tick : 0u;
    if (ahead < 1u)
        ahead = 1u;
    if (ahead > WEFT__TW_SLOTS - 1u)
        ahead = WEFT__TW_SLOTS - 1u;
    file_in(c, (uint32_t)((loop->wheel_tick + ahead) & MASK));
}

/* c's deadline passed: close it, or ask the application first (on_idle). */
static void timed_out(weft_conn *c, int why)
{
    weft__loop *loop = c->loop;
    weft_engine *e = loop->engine;
    if (why == WEFT_EIDLE && e->cfg.handler.on_idle != NULL) {
        weft_action a = e->cfg.handler.on_idle(c);
        if (c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING | CONN_CLOSING))
            return; /* it closed the connection itself */
        if (a == WEFT_ACTION_NONE) {
            c->active_ms = loop->now_ms; /* kept: the idle clock starts again */
            weft__wheel_schedule(c);
            return;
        }
        if (a == WEFT_ACTION_SHUTDOWN)
            weft__loop_request_stop(e);
        weft__conn_close_graceful(c, WEFT_EIDLE); /* the goodbye goes first */
        return;
    }
    weft__log_peer(loop, WEFT_LOG_INFO, "conn %u/%u: %s, closing", loop->index, c->slot,
                   weft_strerror(why));
    weft__conn_close_now(c, why);
}

static void wheel_tick(weft__timer_node *n)
{
    weft__loop *loop = WEFT__CONTAINER_OF(n, weft__loop, wheel_timer);
    /* Re-armed first; it cannot fail, since popping it just freed its place in the heap. */
    (void)weft__loop_timer_arm(loop, &loop->wheel_timer, WEFT__TW_TICK_MS);
    weft__loop_enter(loop);
    weft__log_peer_tick(loop);
    uint64_t target = loop->now64_ms / WEFT__TW_TICK_MS;
    /* Never more than one lap per call, even after a long stall. */
    uint32_t laps = 0;
    while (loop->wheel_tick < target && laps++ < WEFT__TW_SLOTS) {
        loop->wheel_tick++;
        uint32_t b = (uint32_t)(loop->wheel_tick & MASK);
        uint32_t s = loop->wheel[b];
        loop->wheel[b] = WEFT__NO_SLOT;
        while (s != WEFT__NO_SLOT) {
            weft_conn *c = weft__slot_get(loop, s);
            s = c->tw_next;
            c->tw_prev = c->tw_next = WEFT__NO_SLOT;
            uint32_t when;
            int why;
            if (c->flags & CONN_LINGER) {
                const weft_config *cfg = &loop->engine->cfg;
                bool late = cfg->stop_timeout_ms > 0 &&
                            !before(loop->now_ms, c->since_ms + cfg->stop_timeout_ms);
                if (!weft__conn_linger_check(c, late))
                    weft__wheel_schedule(c);
                continue;
            }
            if (!deadline(c, &when, &why))
                continue;
            if (!before(loop->now_ms, when)) {
                timed_out(c, why);
            } else {
                weft__wheel_schedule(c);
            }
        }
    }
    weft__loop_leave(loop);
}

int weft__wheel_init(weft__loop *loop)
{
    loop->clock0_ns = weft__coarse_ns();
    loop->now_ms = 0;
    loop->now64_ms = 0;
    loop->wheel_tick = 0;
    for (uint32_t i = 0; i < WEFT__TW_SLOTS; i++)
        loop->wheel[i] = WEFT__NO_SLOT;
    /* Always running: connect timeouts need it even with every other timeout off. */
    weft__timer_node_init(&loop->wheel_timer, wheel_tick);
    return weft__loop_timer_arm(loop, &loop->wheel_timer, WEFT__TW_TICK_MS);
}
