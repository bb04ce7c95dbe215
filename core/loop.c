/* weft — an event loop: one thread, one backend instance, its connections, timers and inbox.
 *
 * An iteration waits for I/O (as long as the earliest timer allows), runs what is due, and
 * ends with weft__loop_before_sleep: corked writes leave and requested closes happen once
 * per iteration, as Redis writes its replies in beforeSleep. The whole iteration is one
 * dispatch, so a connection that was read from and written to by a task in the same
 * iteration makes one send.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "tls.h"

/* Idle memory per connection is a product target (benchmarks/idle_mem.sh): what only some
 * programs use (groups, per-connection timeouts) lives outside the slot, in tables made when
 * first used. A slot is the struct and its backend's state: 240 bytes on epoll (libevent's
 * event is 128), 136 on io_uring (24 of its own; zero-copy sends keep their state in a
 * per-loop table, made only when uring_zc_min is set). */
/* A SOCKET (Windows) is 8 bytes where a descriptor is 4, and the slot's end is aligned to 8:
 * 120 bytes there. */
_Static_assert(sizeof(struct weft_conn) <= (sizeof(weft__sock) == sizeof(int) ? 112 : 120),
               "a connection outgrew its 112 bytes (120 with a Windows SOCKET)");

/* ---- clocks and timers ---- */

void weft__loop_clock_update(weft__loop *loop)
{
    loop->now64_ms = (weft__coarse_ns() - loop->clock0_ns) / 1000000u;
    loop->now_ms = (uint32_t)loop->now64_ms;
}

uint64_t weft__loop_timer_now(const weft__loop *loop)
{
    return (weft__mono_ns() - loop->mono0_ns) / 1000000u;
}

int weft__loop_timer_arm(weft__loop *loop, weft__timer_node *n, uint64_t ms)
{
    /* One millisecond more than asked: the clock is read in whole milliseconds, and a
     * timer must never fire before its time. */
    return weft__timer_heap_arm(&loop->timers, n, weft__loop_timer_now(loop) + ms + 1u);
}

/* Runs the timers that are due; returns how many ran. */
static unsigned run_timers(weft__loop *loop)
{
    if (weft__timer_heap_next(&loop->timers) == UINT64_MAX)
        return 0;
    uint64_t now = weft__loop_timer_now(loop);
    unsigned n = 0;
    weft__timer_node *t;
    while ((t = weft__timer_heap_pop_due(&loop->timers, now)) != NULL) {
        t->fn(t);
        n++;
    }
    return n;
}

/* How long the backend may wait: until the earliest timer, or without limit. */
static int wait_ms(weft__loop *loop)
{
    uint64_t next = weft__timer_heap_next(&loop->timers);
    if (next == UINT64_MAX)
        return -1;
    uint64_t now = weft__loop_timer_now(loop);
    if (next <= now)
        return 0;
    uint64_t ms = next - now;
    return ms > 60000u ? 60000 : (int)ms;
}

/* ---- dispatch depth and the end of an iteration ---- */

weft_conn *weft__slot_get(weft__loop *loop, uint32_t slot)
{
    uint32_t chunk = slot >> WEFT__CHUNK_SHIFT;
    if (chunk >= WEFT__CHUNK_MAX)
        return NULL;
    char *base = (char *)atomic_load_explicit(&loop->chunks[chunk], memory_order_acquire);
    if (base == NULL)
        return NULL;
    return (weft_conn *)(void *)(base + (size_t)(slot & (WEFT__CHUNK_SIZE - 1u)) * loop->slot_size);
}

void weft__loop_publish_buffers(weft__loop *loop)
{
    if (loop->bufpool == NULL)
        return;
    /* A spare mapping a large frame left goes back to the system once it sat unused for a
     * while (bufpool.h); this runs before every sleep, so at least every wheel tick. */
    weft__bufpool_trim(loop->bufpool, loop->now64_ms);
    weft__bufpool_stats bs;
    weft__bufpool_get_stats(loop->bufpool, &bs);
    atomic_store_explicit(&loop->stats.buffers_out, bs.outstanding, memory_order_relaxed);
    atomic_store_explicit(&loop->stats.buffer_bytes, bs.out_bytes, memory_order_relaxed);
    atomic_store_explicit(&loop->stats.cached_bytes, bs.cached_bytes, memory_order_relaxed);
    atomic_store_explicit(&loop->stats.resizes, bs.resizes, memory_order_relaxed);
    atomic_store_explicit(&loop->stats.copied_bytes, bs.copied_bytes, memory_order_relaxed);
}

void weft__loop_enter(weft__loop *loop)
{
    loop->nruns++;
    /* Each callback the iteration runs reads the (coarse, cheap) clock, so a long batch
     * does not date what follows it. */
    if (loop->depth++ <= 1) {
        weft__loop_clock_update(loop);
        if (loop->poll_ns != 0 && loop->woke_ns == 0) /* the first callback after a sleep */
            loop->woke_ns = weft__mono_ns();
    }
}

void weft__loop_leave(weft__loop *loop)
{
    if (loop->depth > 1) {
        loop->depth--;
        return;
    }
    weft__loop_before_sleep(loop);
    loop->depth = 0;
}

void weft__loop_before_sleep(weft__loop *loop)
{
    /* Flush what the iteration corked, then run the closes it asked for. Both may add to
     * either list (on_close may write to other connections), so go on until both are
     * empty. */
    for (;;) {
        if (loop->tls != NULL && weft__tls_seal_pending(loop))
            continue; /* TLS records of the gathered writes: they join the corked output */
        if (loop->ncorked > 0) {
            loop->ncorked--;
            weft__conn_flush_corked(loop, loop->ncorked);
            continue;
        }
        if (loop->pending_head != WEFT__NO_SLOT) {
            weft_conn *c = weft__slot_get(loop, loop->pending_head);
            loop->pending_head = c->tw_next;
            if (c->flags & CONN_CLOSE_PENDING)
                weft__conn_finish(c);
            continue;
        }
        break;
    }
    weft__loop_stage_reset(loop);
    weft__loop_publish_buffers(loop);
    if (loop->stopping && loop->nconns == 0)
        loop->quit = true;
}

/* ---- slots ---- */

/* Finds the live connection a ref names, or NULL. */
static weft_conn *ref_lookup(weft__loop *loop, weft_conn_ref ref)
{
    weft_conn *c = weft__slot_get(loop, ref.slot);
    if (c == NULL || atomic_load_explicit(&c->gen, memory_order_relaxed) != ref.gen ||
        !(c->flags & CONN_LIVE) || (c->flags & CONN_CLOSED))
        return NULL;
    return c;
}

static weft_conn *slot_alloc(weft__loop *loop)
{
    weft_conn *c;
    if (loop->free_head != WEFT__NO_SLOT) {
        c = weft__slot_get(loop, loop->free_head);
        loop->free_head = c->tw_next;
        return c;
    }
    if (loop->high_slot == loop->nchunks * WEFT__CHUNK_SIZE) {
        if (loop->nchunks == WEFT__CHUNK_MAX)
            return NULL;
        char *chunk = calloc(WEFT__CHUNK_SIZE, loop->slot_size);
        if (chunk == NULL)
            return NULL;
        for (uint32_t i = 0; i < WEFT__CHUNK_SIZE; i++) {
            weft_conn *s = (weft_conn *)(void *)(chunk + (size_t)i * loop->slot_size);
            s->slot = loop->nchunks * WEFT__CHUNK_SIZE + i;
            s->fd = WEFT__SOCK_NONE;
            s->tw_prev = s->tw_next = WEFT__NO_SLOT;
            atomic_init(&s->gen, 0u); /* even: free */
        }
        atomic_store_explicit(&loop->chunks[loop->nchunks], (weft_conn *)(void *)chunk,
                              memory_order_release);
        loop->nchunks++;
    }
    return weft__slot_get(loop, loop->high_slot++);
}

/* Refuses fd: no connection could be made for it. */
static void refuse_fd(weft__loop *loop, weft__sock fd, const char *why)
{
    weft_engine *e = loop->engine;
    weft__log(e, WEFT_LOG_ERROR, "loop %u: %s; refusing a connection", loop->index, why);
    weft__sock_close(fd);
    atomic_fetch_sub_explicit(&loop->stats.live, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&e->rejected, 1, memory_order_relaxed);
}

weft_conn *weft__conn_setup(weft__loop *loop, weft__sock fd, int family, void *ctx, bool tune)
{
    weft_engine *e = loop->engine;
    weft_conn *c = slot_alloc(loop);
    if (c == NULL) {
        refuse_fd(loop, fd, "no memory for a connection");
        return NULL;
    }
    c->loop = loop;
    c->fd = fd;
    if (loop->be->conn_open(c) != 0) {
        /* The slot was never live: straight back on the free list, same generation. */
        c->fd = WEFT__SOCK_NONE;
        c->tw_next = loop->free_head;
        loop->free_head = c->slot;
        refuse_fd(loop, fd, "the backend cannot take a connection");
        return NULL;
    }
    /* Odd generations are live, even ones free: a ref can only ever match a live slot. */
    atomic_store_explicit(&c->gen, atomic_load_explicit(&c->gen, memory_order_relaxed) + 1u,
                          memory_order_release);
    c->ctx = ctx;
    c->flags = CONN_LIVE | CONN_READING;
    c->close_err = 0;
    c->tw_prev = c->tw_next = WEFT__NO_SLOT;
    c->active_ms = loop->now_ms;
    c->since_ms = 0;
    uint32_t *own = loop->timeouts[c->slot >> WEFT__CHUNK_SHIFT];
    if (own != NULL)
        own[c->slot & (WEFT__CHUNK_SIZE - 1u)] = WEFT__TIMEOUTS_DEFAULT;
    memset(&c->in, 0, sizeof(c->in));
    memset(&c->out, 0, sizeof(c->out));
    atomic_store_explicit(&c->out.published, 0, memory_order_relaxed);
    weft_codec_state_init(&c->cstate);
    loop->nconns++;
    WEFT__STAT_ADD(loop->stats.accepted, 1);
    if (tune)
        weft__socket_tune(&e->cfg, fd, family);
    return c;
}

void weft__loop_adopt(weft__loop *loop, weft__sock fd, int family, void *ctx, bool tune,
                      struct weft__tls_server *tls)
{
    weft_conn *c = weft__conn_setup(loop, fd, family, ctx, tune);
    if (c == NULL)
        return;
    if (tls != NULL)
        weft__tls_accept(c, tls); /* opened once its handshake is done */
    else
        weft__conn_opened(c);
}

void weft__loop_promise_close(weft__loop *loop, weft__sock fd, void *ctx, int err)
{
    if (loop->engine->cfg.handler.on_close == NULL)
        return;
    /* A stand-in connection that carries the caller's ctx: it was never opened. */
    weft_conn tmp;
    memset(&tmp, 0, sizeof(tmp));
    tmp.loop = loop;
    tmp.fd = fd;
    tmp.ctx = ctx;
    tmp.slot = WEFT__NO_SLOT;
    tmp.flags = CONN_CLOSED;
    loop->engine->cfg.handler.on_close(&tmp, err);
}

/* ---- stopping ---- */

/* Graceful shutdown of this loop: no more accepting; every connection flushes and closes;
 * the loop ends when the last one is gone or stop_timeout_ms passes. */
static void close_every_conn(weft__loop *loop, void (*how)(weft_conn *, int), int err)
{
    weft__loop_enter(loop);
    for (uint32_t s = 0; s < loop->high_slot; s++) {
        weft_conn *c = weft__slot_get(loop, s);
        if ((c->flags & CONN_LIVE) && !(c->flags & CONN_CLOSED))
            how(c, err);
    }
    weft__loop_leave(loop);
}

static void stop_timeout(weft__timer_node *n)
{
    weft__loop *loop = WEFT__CONTAINER_OF(n, weft__loop, stop_timer);
    close_every_conn(loop, weft__conn_close_now, WEFT_ETIMEDOUT);
    loop->quit = true;
}

static void begin_stop(weft__loop *loop)
{
    weft_engine *e = loop->engine;
    if (loop->stopping)
        return;
    loop->stopping = true;
    weft__listeners_stop(loop);
    weft__timer_heap_cancel(&loop->timers, &loop->tick_timer);
    close_every_conn(loop, weft__conn_close_graceful, WEFT_ESHUTDOWN);
    if (loop->nconns == 0) {
        loop->quit = true;
        return;
    }
    weft__timer_node_init(&loop->stop_timer, stop_timeout);
    if (weft__loop_timer_arm(loop, &loop->stop_timer, e->cfg.stop_timeout_ms) != 0)
        stop_timeout(&loop->stop_timer); /* no memory to wait: close them now */
}

void weft__loop_refuse_promised(weft__loop *loop, weft__task *t)
{
    weft_conn *c = weft__conn_setup(loop, t->fd, t->family, t->data, false);
    if (c == NULL) {
        weft__loop_promise_close(loop, WEFT__SOCK_NONE, t->data, WEFT_ESHUTDOWN);
        return;
    }
    c->flags |= CONN_CONNECTING; /* never opened: the balancer hears nothing */
    weft__conn_close_now(c, WEFT_ESHUTDOWN);
}

/* ---- the inbox ---- */

bool weft__engine_at_max_conns(weft_engine *e)
{
    unsigned max = e->cfg.max_connections;
    if (max == 0)
        return false;
    uint64_t live = 0;
    for (unsigned i = 0; i < e->nloops; i++)
        live += atomic_load_explicit(&e->loops[i].stats.live, memory_order_relaxed);
    return live >= max;
}

void weft__loop_request_stop(weft_engine *e)
{
    atomic_store(&e->stop_requested, 1);
    /* The acceptor's wakeup: one write(2), which is async-signal-safe. */
    weft__queue_kick(&e->acceptor.queue);
}

int weft__loop_post_wake(weft__loop *loop, weft_conn_ref ref)
{
    weft__task t;
    memset(&t, 0, sizeof(t));
    t.kind = WEFT__TASK_WAKE;
    t.ref = ref;
    return weft__queue_push(&loop->queue, &t);
}

static void run_task(weft__loop *loop, weft__task *t)
{
    weft_conn *c;
    switch (t->kind) {
    case WEFT__TASK_NEW_CONN:
        if (loop->stopping) {
            weft__sock_close(t->fd);
            atomic_fetch_sub_explicit(&loop->stats.live, 1, memory_order_relaxed);
        } else {
            weft__loop_adopt(loop, t->fd, t->family, NULL, false, t->data);
        }
        break;
    case WEFT__TASK_ENROLL:
        if (loop->stopping) {
            weft__loop_refuse_promised(loop, t);
        } else {
            weft_conn *nc = weft__conn_setup(loop, t->fd, t->family, t->data, true);
            if (nc != NULL)
                weft__conn_opened(nc);
            else /* refused for want of memory: the caller was promised on_close */
                weft__loop_promise_close(loop, WEFT__SOCK_NONE, t->data, WEFT_ENOMEM);
        }
        break;
    case WEFT__TASK_WRITE: {
        c = ref_lookup(loop, t->ref);
        if (c != NULL) {
            /* Ownership of the bytes passes to the connection: queued without a copy. */
            (void)weft__conn_send_ref(c, t->data, t->len, t->free_cb, t->free_ctx);
            t->data = NULL;
        }
        /* The slot's count goes down whether or not the connection lived on: the push
         * raised it on the same slot, maybe just before the slot was reused. Only now, once
         * the bytes are in out.published: lowered before, a writer checking the hard cap would
         * count them in neither and could push the queue past the cap, which closes the
         * connection instead of telling that writer. Release pairs with push_write. */
        weft_conn *slot = weft__slot_get(loop, t->ref.slot);
        if (slot != NULL)
            atomic_fetch_sub_explicit(&slot->async_pending, (uint32_t)t->len, memory_order_release);
        if (t->data != NULL) {
            if (t->free_cb != NULL)
                t->free_cb(t->data, t->free_ctx);
            else
                free(t->data);
        }
        break;
    }
    case WEFT__TASK_CLOSE:
        c = ref_lookup(loop, t->ref);
        if (c != NULL)
            weft__conn_close_graceful(c, 0);
        break;
    case WEFT__TASK_ABORT:
        c = ref_lookup(loop, t->ref);
        if (c != NULL) {
            if (t->err == WEFT_EOUTCAP)
                weft__log_peer(loop, WEFT_LOG_WARN,
                               "conn %u/%u: an async write would pass the hard cap of %zu; "
                               "closing",
                               loop->index, c->slot, loop->engine->cfg.write_hard_cap);
            weft__conn_close_now(c, t->err);
        }
        break;
    case WEFT__TASK_CALL:
        c = ref_lookup(loop, t->ref);
        if (c != NULL && (c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING)))
            c = NULL;
        t->conn_fn(c, t->data);
        break;
    case WEFT__TASK_LOOP_CALL:
        t->loop_fn(loop->engine, loop->index, t->data, 0);
        break;
    case WEFT__TASK_WAKE:
        c = ref_lookup(loop, t->ref);
        /* Over the high-water mark its buffered input waits: leaving the mark offers it. */
        if (c != NULL && !(c->flags & CONN_CLOSING) && !((c->flags & CONN_PAUSED) && c->in.len > 0))
            weft__conn_dispatch(c, NULL, 0);
        break;
    case WEFT__TASK_DIAL:
        t->run(loop, t);
        break;
    case WEFT__TASK_STOP:
        begin_stop(loop);
        break;
    }
}

static void run_inbox(weft__loop *loop)
{
    weft__task *tasks;
    size_t n;
    weft__queue_drain(&loop->queue, &tasks, &n);
    WEFT__STAT_ADD(loop->stats.wakeups, 1);
    WEFT__STAT_ADD(loop->stats.tasks, n);
    /* One dispatch for the whole batch: writes to one connection leave in one syscall. */
    weft__loop_enter(loop);
    for (size_t i = 0; i < n; i++)
        run_task(loop, &tasks[i]);
    weft__loop_leave(loop);
}

void weft__loop_woken(weft__loop *loop)
{
    loop->nio++;
    loop->woken(loop);
}

void weft__loop_drain_leftovers(weft__loop *loop)
{
    if (!loop->queue.waker.ready)
        return;
    weft__task *tasks;
    size_t n;
    weft__queue_drain(&loop->queue, &tasks, &n);
    for (size_t i = 0; i < n; i++) {
        weft__task *t = &tasks[i];
        if (t->kind == WEFT__TASK_NEW_CONN || t->kind == WEFT__TASK_DIAL ||
            t->kind == WEFT__TASK_ENROLL) {
            /* The loop is gone: on_close runs here, so what was promised is kept. */
            if (t->kind != WEFT__TASK_NEW_CONN)
                weft__loop_promise_close(loop, t->fd, t->data, WEFT_ESHUTDOWN);
            if (t->kind == WEFT__TASK_DIAL && t->free_cb != NULL) /* a tls:// dial's name */
                t->free_cb(t->free_ctx, NULL);
            free(t->dest);
            weft__sock_close(t->fd);
            atomic_fetch_sub_explicit(&loop->stats.live, 1, memory_order_relaxed);
        } else if (t->kind == WEFT__TASK_CALL) {
            t->conn_fn(NULL, t->data);
        } else if (t->kind == WEFT__TASK_LOOP_CALL) {
            t->loop_fn(loop->engine, loop->index, t->data, WEFT_ESHUTDOWN);
        } else if (t->kind == WEFT__TASK_WRITE) {
            if (t->free_cb != NULL)
                t->free_cb(t->data, t->free_ctx);
            else
                free(t->data);
        }
    }
}

/* ---- setup and teardown ---- */

static void tick_fire(weft__timer_node *n)
{
    weft__loop *loop = WEFT__CONTAINER_OF(n, weft__loop, tick_timer);
    weft_engine *e = loop->engine;
    (void)weft__loop_timer_arm(loop, &loop->tick_timer, e->cfg.tick_ms); /* its place is free */
    weft__loop_enter(loop);
    weft_action a = e->cfg.handler.on_tick(e, loop->index);
    weft__loop_leave(loop);
    if (a == WEFT_ACTION_SHUTDOWN)
        weft__loop_request_stop(e);
}

/* What every loop has, the acceptor's included: a backend instance, an inbox, timers. */
static int init_common(weft_engine *e, weft__loop *loop, unsigned index)
{
    loop->engine = e;
    loop->index = index;
    loop->be = e->be;
    loop->slot_size = sizeof(weft_conn) + ((e->be->conn_bytes + 7u) & ~(size_t)7u);
    loop->free_head = WEFT__NO_SLOT;
    loop->pending_head = WEFT__NO_SLOT;
    loop->woken = run_inbox;
    loop->mono0_ns = weft__mono_ns();
    loop->clock0_ns = weft__coarse_ns();
    weft__timer_node_init(&loop->tick_timer, tick_fire);
    weft__timer_node_init(&loop->stop_timer, stop_timeout);
    int rc = weft__queue_init(&loop->queue);
    if (rc != 0)
        return rc;
    return loop->be->loop_init(loop);
}

int weft__loop_init_acceptor(weft_engine *e, weft__loop *loop)
{
    return init_common(e, loop, e->nloops);
}

int weft__loop_init(weft_engine *e, weft__loop *loop, unsigned index)
{
    loop->poll_ns = (uint64_t)e->cfg.busy_poll_us * 1000u;
    loop->send_cap = e->send_cap;
    loop->rbuf_size = e->cfg.read_buffer_size;
    loop->rbuf = malloc(loop->rbuf_size);
    if (loop->rbuf == NULL)
        return WEFT_ENOMEM;
    /* A large inbound buffer reserves room to grow to max_inbound in place. */
    weft__bufpool_config pc;
    weft__bufpool_config_init(&pc);
    pc.reserve_size = e->cfg.max_inbound;
    int rc = weft__bufpool_create(&pc, &loop->bufpool);
    if (rc != 0)
        return rc;
    rc = init_common(e, loop, index);
    if (rc != 0)
        return rc;
    rc = weft__wheel_init(loop);
    if (rc != 0)
        return rc;
    if (e->cfg.tick_ms > 0 && e->cfg.handler.on_tick != NULL) {
        rc = weft__loop_timer_arm(loop, &loop->tick_timer, e->cfg.tick_ms);
        if (rc != 0)
            return rc;
    }
    for (size_t i = 0; i < loop->nlisteners; i++) {
        weft__listener *l = loop->listeners[i];
        if (l->type == SOCK_DGRAM) {
            l->dgram = weft__dgram_new(loop, l);
            if (l->dgram == NULL)
                return WEFT_ENOMEM;
        }
    }
    return weft__listeners_start(loop);
}

void weft__loop_destroy(weft__loop *loop)
{
    if (loop->be_state != NULL)
        weft__listeners_stop(loop);
    for (size_t i = 0; i < loop->nlisteners; i++) {
        free(loop->listeners[i]->dgram);
        loop->listeners[i]->dgram = NULL;
    }
    weft__dgram_batch_free(loop);
    weft__loop_free_timers(loop);
    weft__timer_heap_destroy(&loop->timers);
    weft__loop_drain_leftovers(loop);
    for (uint32_t i = 0; i < loop->nchunks; i++) {
        free(atomic_load_explicit(&loop->chunks[i], memory_order_relaxed));
        free(loop->timeouts[i]);
        loop->timeouts[i] = NULL;
    }
    loop->nchunks = 0;
    if (loop->be != NULL)
        loop->be->loop_destroy(loop);
    if (loop->queue.waker.ready)
        weft__queue_destroy(&loop->queue);
    weft__bufpool_destroy(loop->bufpool);
    loop->bufpool = NULL;
    free(loop->rbuf);
    loop->rbuf = NULL;
    free(loop->listeners);
    loop->listeners = NULL;
    weft__loop_stage_free(loop);
    weft__tls_loop_free(loop);
}

/* ---- the iteration ---- */

/* One wait of the backend and the timers it made due; returns how many events and timers
 * ran, or a negative code when the backend failed. */
static int iterate(weft__loop *loop, int timeout_ms)
{
    int n = loop->be->poll(loop, timeout_ms);
    if (n < 0)
        return n;
    return n + (int)run_timers(loop);
}

/* Busy poll: non-blocking passes until one runs a callback (true) or the budget passes.
 * *rc is the last pass's answer; a failure or a quit ends the poll too. */
static bool busy_poll(weft__loop *loop, uint64_t t0, int *rc)
{
    do {
        uint64_t before = loop->nruns;
        *rc = iterate(loop, 0);
        if (*rc < 0 || loop->nruns != before || loop->quit)
            return true;
    } while (weft__mono_ns() - t0 < loop->poll_ns);
    return false;
}

/* With busy_poll_us the loop polls before it sleeps, but only while it is hot: after I/O
 * (a timer's wake-up is no reason), and while the last wait for I/O was shorter than the
 * budget. A poll that finds nothing, or a wait longer than the budget, cools it until a
 * wait ends within the budget again; so traffic that trickles costs at most one budget per
 * change of pace, and an idle loop costs nothing. */
void weft__loop_run(weft__loop *loop)
{
    uint64_t seen = loop->nio, idle_since = 0;
    bool hot = true;
    while (!loop->quit) {
        loop->depth = 1;
        int rc = 0;
        bool io = loop->nio != seen, polled = false;
        seen = loop->nio;
        if (loop->poll_ns != 0) {
            uint64_t t0 = weft__mono_ns();
            if (io)
                idle_since = t0;
            polled = io && hot && busy_poll(loop, t0, &rc);
        }
        if (!polled) {
            loop->woke_ns = 0;
            WEFT__STAT_ADD(loop->stats.sleeps, 1);
            rc = iterate(loop, wait_ms(loop));
            /* The gap between two I/O wake-ups; timers in between do not split it. */
            if (loop->poll_ns != 0 && loop->nio != seen)
                hot = loop->woke_ns >= idle_since && loop->woke_ns - idle_since < loop->poll_ns;
        }
        weft__loop_leave(loop);
        if (rc < 0) {
            weft__log(loop->engine, WEFT_LOG_ERROR, "loop %u: %s backend failed: %s", loop->index,
                      loop->be->name, weft_strerror(rc));
            break;
        }
    }
    if (loop->be->loop_quit != NULL)
        loop->be->loop_quit(loop);
}
