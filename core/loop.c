/* weft — an event loop: one thread, one event_base, its connections and its inbox. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

static struct event_base *new_base(void)
{
    /* One thread per base and cross-thread work through our own queue: libevent's locks
     * would only cost time. */
    struct event_config *ec = event_config_new();
    if (ec == NULL)
        return NULL;
    event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
    event_config_set_flag(ec, EVENT_BASE_FLAG_IGNORE_ENV);
    struct event_base *b = event_base_new_with_config(ec);
    event_config_free(ec);
    return b;
}

struct event_base *weft__new_base(void)
{
    return new_base();
}

static void loop_wake_cb(evutil_socket_t fd, short what, void *arg);
static void loop_tick_cb(evutil_socket_t fd, short what, void *arg);

int weft__loop_init(weft_engine *e, weft__loop *loop, unsigned index)
{
    loop->engine = e;
    loop->index = index;
    loop->poll_ns = (uint64_t)e->cfg.busy_poll_us * 1000u;
    loop->free_head = WEFT__NO_SLOT;
    loop->pending_head = WEFT__NO_SLOT;
    loop->queue.efd = -1;
    loop->rbuf_size = e->cfg.read_buffer_size;
    loop->rbuf = malloc(loop->rbuf_size);
    if (loop->rbuf == NULL)
        return WEFT_ENOMEM;
    int rc = weft__bufpool_create(NULL, &loop->bufpool);
    if (rc != 0)
        return rc;
    rc = weft__queue_init(&loop->queue);
    if (rc != 0)
        return rc;
    loop->base = new_base();
    if (loop->base == NULL)
        return WEFT_ENOMEM;
    event_assign(&loop->wake_ev, loop->base, loop->queue.efd, EV_READ | EV_PERSIST, loop_wake_cb,
                 loop);
    if (event_add(&loop->wake_ev, NULL) != 0)
        return WEFT_ENOMEM;
    loop->wake_added = true;
    rc = weft__wheel_init(loop);
    if (rc != 0)
        return rc;
    if (e->cfg.tick_ms > 0 && e->cfg.handler.on_tick != NULL) {
        struct timeval tv = {(time_t)(e->cfg.tick_ms / 1000),
                             (suseconds_t)((e->cfg.tick_ms % 1000) * 1000)};
        event_assign(&loop->tick_ev, loop->base, -1, EV_PERSIST, loop_tick_cb, loop);
        if (event_add(&loop->tick_ev, &tv) != 0)
            return WEFT_ENOMEM;
        loop->tick_added = true;
    }
    for (size_t i = 0; i < loop->nlisteners; i++) {
        weft__listener *l = loop->listeners[i];
        if (l->type == SOCK_DGRAM) {
            l->dgram = weft__dgram_new(loop, l);
            if (l->dgram == NULL)
                return WEFT_ENOMEM;
            event_assign(&l->ev, loop->base, l->fd, EV_READ | EV_PERSIST, weft__dgram_event_cb, l);
        } else {
            event_assign(&l->ev, loop->base, l->fd, EV_READ | EV_PERSIST, weft__loop_accept_cb, l);
        }
        if (event_add(&l->ev, NULL) != 0)
            return WEFT_ENOMEM;
        l->ev_added = true;
    }
    return 0;
}

/* Stops watching this loop's own listeners (reuse_port, datagram, single-loop). */
static void listeners_off(weft__loop *loop)
{
    for (size_t i = 0; i < loop->nlisteners; i++) {
        weft__listener *l = loop->listeners[i];
        if (l->ev_added)
            event_del(&l->ev);
        if (l->resume_assigned)
            event_del(&l->resume_ev);
        l->ev_added = false;
    }
}

void weft__loop_drain_leftovers(weft__loop *loop)
{
    if (loop->queue.efd < 0)
        return;
    weft__task *tasks;
    size_t n;
    weft__queue_drain(&loop->queue, &tasks, &n);
    for (size_t i = 0; i < n; i++) {
        weft__task *t = &tasks[i];
        if (t->kind == WEFT__TASK_NEW_CONN || t->kind == WEFT__TASK_DIAL ||
            t->kind == WEFT__TASK_ENROLL) {
            if (t->kind != WEFT__TASK_NEW_CONN && loop->engine->cfg.handler.on_close != NULL) {
                /* The loop is gone: on_close runs here, on a stand-in connection that
                 * carries the caller's ctx, so what was promised is still kept. */
                weft_conn tmp;
                memset(&tmp, 0, sizeof(tmp));
                tmp.loop = loop;
                tmp.fd = t->fd;
                tmp.ctx = t->data;
                tmp.slot = WEFT__NO_SLOT;
                tmp.flags = CONN_CLOSED;
                loop->engine->cfg.handler.on_close(&tmp, WEFT_ESHUTDOWN);
            }
            close(t->fd);
            atomic_fetch_sub_explicit(&loop->stats.live, 1, memory_order_relaxed);
        } else if (t->kind == WEFT__TASK_WRITE) {
            if (t->free_cb != NULL)
                t->free_cb(t->data, t->free_ctx);
            else
                free(t->data);
        }
    }
}

void weft__loop_destroy(weft__loop *loop)
{
    listeners_off(loop);
    for (size_t i = 0; i < loop->nlisteners; i++) {
        free(loop->listeners[i]->dgram);
        loop->listeners[i]->dgram = NULL;
    }
    weft__dgram_batch_free(loop);
    if (loop->wake_added)
        event_del(&loop->wake_ev);
    if (loop->tick_added)
        event_del(&loop->tick_ev);
    if (loop->stop_added)
        event_del(&loop->stop_ev);
    weft__wheel_destroy(loop);
    weft__loop_free_timers(loop);
    loop->wake_added = loop->tick_added = loop->stop_added = false;
    weft__loop_drain_leftovers(loop);
    if (loop->queue.efd >= 0)
        weft__queue_destroy(&loop->queue);
    for (uint32_t i = 0; i < loop->nchunks; i++)
        free(atomic_load_explicit(&loop->chunks[i], memory_order_relaxed));
    loop->nchunks = 0;
    if (loop->base != NULL)
        event_base_free(loop->base);
    loop->base = NULL;
    weft__bufpool_destroy(loop->bufpool);
    loop->bufpool = NULL;
    free(loop->rbuf);
    loop->rbuf = NULL;
    free(loop->listeners);
    loop->listeners = NULL;
    free(loop->corked);
    loop->corked = NULL;
}

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
        weft_conn *chunk = calloc(WEFT__CHUNK_SIZE, sizeof(*chunk));
        if (chunk == NULL)
            return NULL;
        for (uint32_t i = 0; i < WEFT__CHUNK_SIZE; i++) {
            chunk[i].slot = loop->nchunks * WEFT__CHUNK_SIZE + i;
            chunk[i].fd = -1;
            chunk[i].tw_prev = chunk[i].tw_next = WEFT__NO_SLOT;
            atomic_init(&chunk[i].gen, 0u); /* even: free */
        }
        atomic_store_explicit(&loop->chunks[loop->nchunks], chunk, memory_order_release);
        loop->nchunks++;
    }
    return weft__slot_get(loop, loop->high_slot++);
}

/* Makes fd a connection of this loop (not yet registered), or closes it and returns NULL. */
static weft_conn *conn_setup(weft__loop *loop, int fd, int family, void *ctx, bool tune)
{
    weft_engine *e = loop->engine;
    weft_conn *c = slot_alloc(loop);
    if (c == NULL) {
        weft__log(e, WEFT_LOG_ERROR, "loop %u: no memory for a connection; refusing it",
                  loop->index);
        close(fd);
        atomic_fetch_sub_explicit(&loop->stats.live, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&e->rejected, 1, memory_order_relaxed);
        return NULL;
    }
    /* Odd generations are live, even ones free: a ref can only ever match a live slot. */
    atomic_store_explicit(&c->gen, atomic_load_explicit(&c->gen, memory_order_relaxed) + 1u,
                          memory_order_release);
    c->loop = loop;
    c->fd = fd;
    c->ctx = ctx;
    c->flags = CONN_LIVE | CONN_READING;
    c->close_err = 0;
    c->tw_prev = c->tw_next = WEFT__NO_SLOT;
    c->active_ms = loop->now_ms;
    c->since_ms = 0;
    memset(&c->in, 0, sizeof(c->in));
    memset(&c->out, 0, sizeof(c->out));
    atomic_store_explicit(&c->out_len, 0, memory_order_relaxed);
    weft_codec_state_init(&c->cstate);
    loop->nconns++;
    WEFT__STAT_ADD(loop->stats.accepted, 1);
    if (tune)
        weft__socket_tune(&e->cfg, fd, family);
    return c;
}

/* The connection is open: watch it and tell the user. */
static void conn_opened(weft_conn *c)
{
    weft__loop *loop = c->loop;
    weft_engine *e = loop->engine;
    weft__conn_update_events(c);
    weft__wheel_schedule(c);
    if (e->balancer != NULL)
        weft_balancer_on_open(e->balancer, loop->index);
    if (e->cfg.handler.on_open != NULL) {
        weft__loop_enter(loop);
        weft_action a = e->cfg.handler.on_open(c);
        if (a == WEFT_ACTION_CLOSE)
            weft__conn_close_graceful(c, 0);
        else if (a == WEFT_ACTION_SHUTDOWN)
            weft_engine_stop(e);
        weft__loop_leave(loop);
    }
}

void weft__loop_adopt(weft__loop *loop, int fd, int family, void *ctx, bool tune)
{
    weft_conn *c = conn_setup(loop, fd, family, ctx, tune);
    if (c != NULL)
        conn_opened(c);
}

void weft__loop_adopt_dialled(weft__loop *loop, int fd, int family, void *ctx, unsigned timeout_ms)
{
    weft_conn *c = conn_setup(loop, fd, family, ctx, true);
    if (c == NULL)
        return;
    c->flags |= CONN_CONNECTING;
    c->active_ms = loop->now_ms + timeout_ms; /* the connect deadline, for the wheel */
    weft__conn_update_events(c);
    weft__wheel_schedule(c);
}

void weft__conn_finish_connect(weft_conn *c)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err == EINPROGRESS || err == EALREADY)
        return;
    if (err != 0) {
        weft__conn_close_now(c, -err);
        return;
    }
    c->flags &= (uint16_t)~CONN_CONNECTING;
    c->active_ms = c->loop->now_ms;
    conn_opened(c);
}

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

static void loop_stop_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    weft__loop *loop = arg;
    close_every_conn(loop, weft__conn_close_now, WEFT_ETIMEDOUT);
    event_base_loopbreak(loop->base);
}

static void loop_begin_stop(weft__loop *loop)
{
    weft_engine *e = loop->engine;
    if (loop->stopping)
        return;
    loop->stopping = true;
    listeners_off(loop);
    if (loop->tick_added)
        event_del(&loop->tick_ev);
    loop->tick_added = false;
    close_every_conn(loop, weft__conn_close_graceful, WEFT_ESHUTDOWN);
    if (loop->nconns == 0) {
        event_base_loopbreak(loop->base);
        return;
    }
    unsigned ms = e->cfg.stop_timeout_ms;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_assign(&loop->stop_ev, loop->base, loop_stop_timeout_cb, loop);
    if (evtimer_add(&loop->stop_ev, &tv) == 0)
        loop->stop_added = true;
}

/* A dial or enroll the caller was told succeeded owes it on_close, even when the engine
 * stops first: the connection is made and closed at once with WEFT_ESHUTDOWN. */
static void refuse_promised(weft__loop *loop, weft__task *t)
{
    weft_conn *c = conn_setup(loop, t->fd, t->family, t->data, false);
    if (c == NULL)
        return;
    c->flags |= CONN_CONNECTING; /* never opened: the balancer hears nothing */
    weft__conn_close_now(c, WEFT_ESHUTDOWN);
}

static void run_task(weft__loop *loop, weft__task *t)
{
    weft_conn *c;
    switch (t->kind) {
    case WEFT__TASK_NEW_CONN:
        if (loop->stopping) {
            close(t->fd);
            atomic_fetch_sub_explicit(&loop->stats.live, 1, memory_order_relaxed);
        } else {
            weft__loop_adopt(loop, t->fd, t->family, t->data, false);
        }
        break;
    case WEFT__TASK_ENROLL:
        if (loop->stopping)
            refuse_promised(loop, t);
        else
            weft__loop_adopt(loop, t->fd, t->family, t->data, true);
        break;
    case WEFT__TASK_WRITE: {
        c = ref_lookup(loop, t->ref);
        if (c != NULL) {
            struct iovec iov = {t->data, t->len};
            (void)weft__conn_send(c, &iov, 1);
        }
        /* The slot's count goes down whether or not the connection lived on: the push
         * raised it on the same slot, maybe just before the slot was reused. Only now, once
         * the bytes are in out_len: lowered before, a writer checking the hard cap would
         * count them in neither and could push the queue past the cap, which closes the
         * connection instead of telling that writer. Release pairs with push_write. */
        weft_conn *slot = weft__slot_get(loop, t->ref.slot);
        if (slot != NULL)
            atomic_fetch_sub_explicit(&slot->async_pending, (uint32_t)t->len, memory_order_release);
        if (t->free_cb != NULL)
            t->free_cb(t->data, t->free_ctx);
        else
            free(t->data);
        break;
    }
    case WEFT__TASK_CLOSE:
        c = ref_lookup(loop, t->ref);
        if (c != NULL)
            weft__conn_close_graceful(c, 0);
        break;
    case WEFT__TASK_WAKE:
        c = ref_lookup(loop, t->ref);
        if (c != NULL && !(c->flags & CONN_CLOSING))
            weft__conn_dispatch(c, NULL, 0);
        break;
    case WEFT__TASK_DIAL:
        if (loop->stopping) {
            refuse_promised(loop, t);
        } else {
            weft__loop_adopt_dialled(loop, t->fd, t->family, t->data, (unsigned)t->len);
        }
        break;
    case WEFT__TASK_STOP:
        loop_begin_stop(loop);
        break;
    }
}

static void loop_wake_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    weft__loop *loop = arg;
    weft__task *tasks;
    size_t n;
    weft__queue_drain(&loop->queue, &tasks, &n);
    WEFT__STAT_ADD(loop->stats.wakeups, 1);
    WEFT__STAT_ADD(loop->stats.tasks, n);
    loop->nio++;
    /* One dispatch for the whole batch: writes to one connection leave in one syscall. */
    weft__loop_enter(loop);
    for (size_t i = 0; i < n; i++)
        run_task(loop, &tasks[i]);
    weft__loop_leave(loop);
}

static void loop_tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    weft__loop *loop = arg;
    weft_engine *e = loop->engine;
    weft__loop_enter(loop);
    weft_action a = e->cfg.handler.on_tick(e, loop->index);
    weft__loop_leave(loop);
    if (a == WEFT_ACTION_SHUTDOWN)
        weft_engine_stop(e);
}

/* One libevent iteration at a time, all of it one dispatch (as Redis flushes replies in
 * beforeSleep): what the ready events wrote leaves together just before the loop sleeps,
 * so a connection that was read from and written to by a task in the same iteration makes
 * one send, and peers see their answers in one burst. */
/* Busy poll: non-blocking passes until one runs a callback (true) or the budget passes.
 * *rc is event_base_loop's answer; a break or an error ends the poll too. */
static bool busy_poll(weft__loop *loop, uint64_t t0, int *rc)
{
    do {
        uint64_t before = loop->nruns;
        *rc = event_base_loop(loop->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        if (*rc != 0 || loop->nruns != before || event_base_got_break(loop->base))
            return true;
    } while (weft__mono_ns() - t0 < loop->poll_ns);
    return false;
}

/* One libevent iteration at a time, all of it one dispatch (as Redis writes its replies
 * before it sleeps): what the ready events wrote leaves together at the end of the
 * iteration, so a connection that was read from and written to by a task in the same
 * iteration makes one send.
 *
 * With busy_poll_us the loop polls before it sleeps, but only while it is hot: after I/O
 * (a timer's wake-up is no reason), and while the last wait for I/O was shorter than the
 * budget. A poll that finds nothing, or a wait longer than the budget, cools it until a
 * wait ends within the budget again; so traffic that trickles costs at most one budget per
 * change of pace, and an idle loop costs nothing. */
static void loop_run(weft__loop *loop)
{
    uint64_t seen = loop->nio, idle_since = 0;
    bool hot = true;
    for (;;) {
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
            rc = event_base_loop(loop->base, EVLOOP_ONCE);
            /* The gap between two I/O wake-ups; timers in between do not split it. */
            if (loop->poll_ns != 0 && loop->nio != seen)
                hot = loop->woke_ns >= idle_since && loop->woke_ns - idle_since < loop->poll_ns;
        }
        weft__loop_leave(loop);
        /* A loopbreak may also come from that leave (the last connection of a stop); it
         * would be forgotten by the next event_base_loop. */
        if (rc != 0 || event_base_got_break(loop->base))
            break;
    }
}

void *weft__loop_main(void *arg)
{
    weft__loop *loop = arg;
    char name[16];
    snprintf(name, sizeof(name), "weft-loop-%u", loop->index);
    pthread_setname_np(pthread_self(), name);
    if (weft__wait_gate(loop->engine))
        loop_run(loop);
    return NULL;
}
