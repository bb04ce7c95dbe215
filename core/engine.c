/* weft — the engine: configuration, start, stop and statistics. */
#include <errno.h>
#include <signal.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "send_cap.h"
#include "tls.h"

void weft_config_init(weft_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->loops = 0;
    cfg->reuse_port = false;
    cfg->tcp_nodelay = true;
    cfg->tcp_keepalive_s = 0;
    cfg->backlog = 1024;
    cfg->read_buffer_size = 64u * 1024u;
    cfg->write_high_water = 1u << 20;
    cfg->write_hard_cap = 64u << 20;
    cfg->max_inbound = 4u << 20;
    cfg->tick_ms = 0;
    cfg->stop_timeout_ms = 5000;
    cfg->idle_timeout_ms = 300000;
    cfg->read_timeout_ms = 30000;
    cfg->max_connections = 100000;
    cfg->log_level = WEFT_LOG_WARN;
    weft_codec_config_init(&cfg->codec);
    weft_lb_config_init(&cfg->lb);
    cfg->workers = 0;
    cfg->worker_queue = 1024;
    cfg->backend = WEFT_BACKEND_AUTO;
    cfg->uring_buffers = 64;
    cfg->uring_zc_min = 0; /* off: slower than a copy on loopback (README, io_uring) */
    weft_tls_config_init(&cfg->tls);
    weft_tls_config_init(&cfg->tls_client);
    cfg->tls_handshake_timeout_ms = 10000;
}

/* ---- the I/O backend ---- */

const char *weft_backend_name(weft_backend b)
{
    switch (b) {
    case WEFT_BACKEND_EPOLL:
        return "epoll";
    case WEFT_BACKEND_IO_URING:
        return "io_uring";
    case WEFT_BACKEND_IOCP:
        return "iocp";
    default:
        return "auto";
    }
}

bool weft_backend_is_supported(weft_backend b, const char **why)
{
    const char *dummy;
    if (why == NULL)
        why = &dummy;
    *why = NULL;
    switch (b) {
    case WEFT_BACKEND_AUTO:
        return true;
    case WEFT_BACKEND_EPOLL:
#ifdef WEFT_HAVE_EPOLL
        return true;
#else
        *why = "epoll is Linux's; this build of weft runs on Windows's I/O completion ports "
               "(WEFT_BACKEND_IOCP)";
        return false;
#endif
    case WEFT_BACKEND_IO_URING:
#ifdef WEFT_HAVE_IO_URING
        return weft__uring_supported(why);
#elif defined(WEFT_HAVE_IOCP)
        *why = "io_uring is Linux's; this build of weft runs on Windows's I/O completion ports "
               "(WEFT_BACKEND_IOCP)";
        return false;
#else
        *why = "this build of weft has no io_uring backend (built without liburing)";
        return false;
#endif
    case WEFT_BACKEND_IOCP:
#ifdef WEFT_HAVE_IOCP
        return true;
#else
        *why = "I/O completion ports are Windows's; this build of weft runs on epoll or io_uring";
        return false;
#endif
    default:
        *why = "no such backend";
        return false;
    }
}

/* The backends this build has, in the order AUTO prefers them. */
static const struct {
    weft_backend id;
    const weft__backend *be;
} backends[] = {
#ifdef WEFT_HAVE_IO_URING
    {WEFT_BACKEND_IO_URING, &weft__backend_uring},
#endif
#ifdef WEFT_HAVE_EPOLL
    {WEFT_BACKEND_EPOLL, &weft__backend_event},
#endif
#ifdef WEFT_HAVE_IOCP
    {WEFT_BACKEND_IOCP, &weft__backend_iocp},
#endif
};
#define NBACKENDS (sizeof(backends) / sizeof(backends[0]))

/* What cfg->backend (or WEFT_BACKEND in the environment, which overrides AUTO) asks for,
 * and whether it can run: with AUTO the first of backends[] that can (on Linux io_uring
 * when the kernel has it, epoll otherwise). */
static int pick_backend(weft_engine *e, const weft_config *cfg)
{
    weft_backend want = cfg->backend;
    const char *env = getenv("WEFT_BACKEND");
    if (want == WEFT_BACKEND_AUTO && env != NULL && *env != '\0') {
        if (strcmp(env, "epoll") == 0) {
            want = WEFT_BACKEND_EPOLL;
        } else if (strcmp(env, "io_uring") == 0) {
            want = WEFT_BACKEND_IO_URING;
        } else if (strcmp(env, "iocp") == 0) {
            want = WEFT_BACKEND_IOCP;
        } else if (strcmp(env, "auto") != 0) {
            weft__log(e, WEFT_LOG_ERROR, "WEFT_BACKEND=%s: not epoll, io_uring, iocp or auto", env);
            return WEFT_EINVAL;
        }
    }
    const char *why = NULL, *skipped = NULL, *skipped_why = NULL;
    if (want != WEFT_BACKEND_AUTO && !weft_backend_is_supported(want, &why)) {
        weft__log(e, WEFT_LOG_ERROR, "the %s backend cannot run here: %s", weft_backend_name(want),
                  why);
        return WEFT_ENOBACKEND;
    }
    for (size_t i = 0; i < NBACKENDS && e->be == NULL; i++) {
        if (want != WEFT_BACKEND_AUTO && backends[i].id != want)
            continue;
        if (want == WEFT_BACKEND_AUTO && !weft_backend_is_supported(backends[i].id, &why)) {
            if (skipped == NULL) {
                skipped = weft_backend_name(backends[i].id);
                skipped_why = why;
            }
            continue;
        }
        e->be = backends[i].be;
        e->backend = backends[i].id;
    }
    if (e->be == NULL) {
        weft__log(e, WEFT_LOG_ERROR, "no I/O backend of this build can run here");
        return WEFT_ENOBACKEND;
    }
    if (skipped != NULL)
        weft__log(e, WEFT_LOG_INFO, "backend: %s (%s cannot run here: %s)",
                  weft_backend_name(e->backend), skipped, skipped_why);
    else
        weft__log(e, WEFT_LOG_INFO, "backend: %s", weft_backend_name(e->backend));
    return 0;
}

weft_backend weft_engine_get_backend(const weft_engine *e)
{
    return e != NULL ? e->backend : WEFT_BACKEND_AUTO;
}

static int validate(const weft_config *cfg)
{
    if (cfg->handler.on_traffic == NULL)
        return WEFT_EINVAL;
    if (cfg->read_buffer_size < 1024 || cfg->read_buffer_size > WEFT__RING_MAX)
        return WEFT_EINVAL;
    if (cfg->write_hard_cap == 0 || cfg->write_hard_cap > WEFT__RING_MAX ||
        cfg->write_high_water > cfg->write_hard_cap)
        return WEFT_EINVAL;
    if (cfg->max_inbound == 0 || cfg->max_inbound > WEFT__RING_MAX)
        return WEFT_EINVAL;
    if (cfg->loops > 1024)
        return WEFT_EINVAL;
    if (cfg->backend > WEFT_BACKEND_IO_URING || cfg->uring_buffers > 32768 ||
        (cfg->uring_buffers & (cfg->uring_buffers - 1)) != 0)
        return WEFT_EINVAL;
    return 0;
}

/* Frees whatever start made, in reverse; safe on a half-built engine. */
static void engine_free(weft_engine *e)
{
    if (e->pool != NULL)
        weft_pool_shutdown(e->pool, WEFT_POOL_CANCEL);
    e->pool = NULL;
    weft__acceptor_teardown(e);
    if (e->loops != NULL) {
        for (unsigned i = 0; i < e->nloops; i++) {
            weft__loop_destroy(&e->loops[i]);
            weft__group_slots_free(&e->loops[i]); /* after: a last finish may still look */
        }
        free(e->loops);
    }
    for (size_t i = 0; i < e->nlisteners; i++)
        weft__listener_close(&e->listeners[i]);
    free(e->listeners);
    if (e->balancer != NULL)
        weft_balancer_destroy(e->balancer);
    if (e->has_codec)
        weft_codec_destroy(&e->codec);
    free(e->live_snapshot);
    weft__tls_engine_free(e);
    pthread_cond_destroy(&e->gate_cv);
    pthread_mutex_destroy(&e->gate_mu);
    free(e);
}

/* A socket per loop (SO_REUSEPORT, the kernel spreads the load): TCP, plain or TLS, in
 * reuse_port mode, and UDP always, since datagrams cannot be handed off. A TLS connection's
 * handshake then runs on the loop that accepted it; every loop's listener serves the
 * engine's one certificate set (tls.c), so a reload and session tickets span the loops.
 * Where the system has no SO_REUSEPORT (Windows) a UDP port is one socket, served by loop 0
 * as a Unix datagram socket is. */
static bool listener_per_loop(const weft_config *cfg, const char *url)
{
    if (strncmp(url, "udp://", 6) == 0)
        return weft__sock_missing_reuse_port() == NULL;
    return cfg->reuse_port && (strncmp(url, "tcp://", 6) == 0 || strncmp(url, "tls://", 6) == 0);
}

static int open_listeners(weft_engine *e, const weft_config *cfg)
{
    size_t n = 0;
    for (size_t i = 0; i < WEFT_LISTEN_MAX; i++) {
        if (cfg->listen[i] == NULL)
            continue;
        bool per_loop = listener_per_loop(cfg, cfg->listen[i]);
        n += per_loop ? e->nloops : 1;
    }
    if (n == 0)
        return 0;
    e->listeners = calloc(n, sizeof(*e->listeners));
    if (e->listeners == NULL)
        return WEFT_ENOMEM;
    for (size_t i = 0; i < WEFT_LISTEN_MAX; i++) {
        const char *url = cfg->listen[i];
        if (url == NULL)
            continue;
        bool per_loop = listener_per_loop(cfg, url);
        int port = -1;
        for (unsigned k = 0; k < (per_loop ? e->nloops : 1u); k++) {
            weft__listener *l = &e->listeners[e->nlisteners];
            int rc = weft__listener_open(e, url, l, per_loop, port);
            if (rc != 0)
                return rc;
            e->nlisteners++;
            if (per_loop) {
                /* Port 0 picks a port once; the other loops' sockets join that one. */
                struct sockaddr_storage ss;
                socklen_t sl = sizeof(ss);
                if (port < 0 && getsockname(l->fd, (struct sockaddr *)&ss, &sl) == 0)
                    port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                          : ((struct sockaddr_in *)&ss)->sin_port);
                l->owner = &e->loops[k];
            } else if (e->nloops == 1 || l->type == SOCK_DGRAM) {
                /* One loop: it accepts for itself; a hand-off would only add a thread
                 * switch per connection. A datagram socket that is not one per loop (Unix,
                 * or UDP without SO_REUSEPORT) is served by loop 0. */
                l->owner = &e->loops[0];
            }
        }
    }
    return 0;
}

static int assign_loop_listeners(weft_engine *e)
{
    for (size_t i = 0; i < e->nlisteners; i++) {
        weft__loop *loop = e->listeners[i].owner != NULL ? e->listeners[i].owner : &e->acceptor;
        weft__listener **nl =
            realloc(loop->listeners, (loop->nlisteners + 1) * sizeof(*loop->listeners));
        if (nl == NULL)
            return WEFT_ENOMEM;
        loop->listeners = nl;
        loop->listeners[loop->nlisteners++] = &e->listeners[i];
    }
    return 0;
}

/* The start gate: threads wait for 1 (run) or -1 (exit at once). */
static void open_gate(weft_engine *e, int how)
{
    pthread_mutex_lock(&e->gate_mu);
    e->gate = how;
    pthread_cond_broadcast(&e->gate_cv);
    pthread_mutex_unlock(&e->gate_mu);
}

bool weft__wait_gate(weft_engine *e)
{
    pthread_mutex_lock(&e->gate_mu);
    while (e->gate == 0)
        pthread_cond_wait(&e->gate_cv, &e->gate_mu);
    int g = e->gate;
    pthread_mutex_unlock(&e->gate_mu);
    return g > 0;
}

/* Every engine thread: named, its side of the backend set up (the start waits for that),
 * held at the start gate, then its loop. */
static void *thread_main(void *arg)
{
    weft__loop *loop = arg;
    char name[16];
    if (loop == &loop->engine->acceptor)
        snprintf(name, sizeof(name), "weft-accept");
    else
        snprintf(name, sizeof(name), "weft-loop-%u", loop->index);
    pthread_setname_np(pthread_self(), name);
    weft_engine *e = loop->engine;
    int rc = loop->be->thread_init != NULL ? loop->be->thread_init(loop) : 0;
    pthread_mutex_lock(&e->gate_mu);
    e->threads_ready++;
    if (rc != 0 && e->thread_err == 0)
        e->thread_err = rc;
    pthread_cond_broadcast(&e->gate_cv);
    pthread_mutex_unlock(&e->gate_mu);
    if (weft__wait_gate(loop->engine))
        weft__loop_run(loop); /* ends with the backend's loop_quit */
    else if (rc == 0 && loop->be->loop_quit != NULL)
        loop->be->loop_quit(loop); /* the start failed: what thread_init made goes here */
    return NULL;
}

static int start_threads(weft_engine *e)
{
    /* Our threads take no signals: they go to the program's own threads, whose handlers
     * may call weft_engine_stop. */
    int rc = 0;
    for (unsigned i = 0; i < e->nloops && rc == 0; i++) {
        rc = weft__thread_start(&e->loops[i].thread, thread_main, &e->loops[i]);
        if (rc == 0)
            e->loops[i].thread_started = true;
    }
    if (rc == 0) {
        rc = weft__thread_start(&e->acceptor.thread, thread_main, &e->acceptor);
        if (rc == 0)
            e->acceptor_started = true;
    }
    return rc;
}

static void join_threads(weft_engine *e)
{
    if (e->acceptor_started)
        pthread_join(e->acceptor.thread, NULL);
    e->acceptor_started = false;
    for (unsigned i = 0; i < e->nloops; i++) {
        if (e->loops[i].thread_started)
            pthread_join(e->loops[i].thread, NULL);
        e->loops[i].thread_started = false;
    }
}

int weft_engine_start(const weft_config *cfg, weft_engine **out)
{
    if (out != NULL)
        *out = NULL;
    if (cfg == NULL || out == NULL)
        return WEFT_EINVAL;
    int rc = validate(cfg);
    if (rc != 0)
        return rc;
    rc = weft__net_init(); /* Winsock, once */
    if (rc != 0)
        return rc;
    weft_engine *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return WEFT_ENOMEM;
    e->cfg = *cfg;
    pthread_mutex_init(&e->gate_mu, NULL);
    pthread_cond_init(&e->gate_cv, NULL);
    for (size_t i = 0; i < WEFT_LISTEN_MAX; i++)
        e->cfg.listen[i] = NULL; /* borrowed only until we return */
    if (cfg->loops == 0) {
        e->nloops = weft__cpu_count();
    } else {
        e->nloops = cfg->loops;
    }
    /* WEFT_CODEC_NONE makes a codec without a vtable: nothing to decode with. */
    rc = weft_codec_init(&e->codec, &cfg->codec);
    if (rc != 0) {
        weft__log(e, WEFT_LOG_ERROR, "codec config rejected: %s", weft_strerror(rc));
        goto fail;
    }
    e->has_codec = e->codec.vtable != NULL;
    if (e->has_codec) {
        weft_codec_traits traits;
        weft_codec_get_traits(&e->codec, &traits);
        if (traits.max_frame > cfg->max_inbound)
            weft__log(e, WEFT_LOG_WARN,
                      "the codec allows frames of %llu bytes but max_inbound is %zu: larger "
                      "frames close their connection (WEFT_EINCAP)",
                      (unsigned long long)traits.max_frame, cfg->max_inbound);
    }
    e->loops = calloc(e->nloops, sizeof(*e->loops));
    e->live_snapshot = calloc(e->nloops, sizeof(*e->live_snapshot));
    if (e->loops == NULL || e->live_snapshot == NULL) {
        rc = WEFT_ENOMEM;
        goto fail;
    }
    rc = pick_backend(e, cfg);
    if (rc != 0)
        goto fail;
    e->send_cap = weft__send_cap_env(e);
    e->connect_done = weft__dial_finish;
    rc = weft__tls_engine_init(e, cfg);
    if (rc != 0)
        goto fail;
    if (cfg->reuse_port && cfg->lb.kind != WEFT_LB_ROUND_ROBIN)
        weft__log(e, WEFT_LOG_INFO,
                  "reuse_port: the kernel spreads TCP and TLS connections over "
                  "the loops; the configured balancer serves only Unix listeners");
    rc = weft_balancer_create(&cfg->lb, e->nloops, &e->balancer);
    if (rc != 0) {
        weft__log(e, WEFT_LOG_ERROR, "balancer config rejected: %s", weft_strerror(rc));
        goto fail;
    }
    rc = open_listeners(e, cfg);
    if (rc != 0)
        goto fail;
    rc = assign_loop_listeners(e);
    if (rc != 0)
        goto fail;
    for (unsigned i = 0; i < e->nloops; i++) {
        rc = weft__loop_init(e, &e->loops[i], i);
        if (rc != 0)
            goto fail;
    }
    rc = weft__acceptor_setup(e);
    if (rc != 0)
        goto fail;
    if (cfg->workers > 0) {
        weft_pool_config pc;
        weft_pool_config_init(&pc);
        pc.threads = cfg->workers;
        pc.queue_capacity = cfg->worker_queue;
        rc = weft_pool_create(&pc, &e->pool);
        if (rc != 0)
            goto fail;
    }
    /* Every thread is created before anything runs: they wait at the gate, so a thread
     * that cannot be created fails the start with no callback run and nothing accepted. */
    rc = start_threads(e);
    if (rc == 0) { /* every thread set up its side of the backend (io_uring: its ring) */
        pthread_mutex_lock(&e->gate_mu);
        while (e->threads_ready < e->nloops + 1u)
            pthread_cond_wait(&e->gate_cv, &e->gate_mu);
        rc = e->thread_err;
        pthread_mutex_unlock(&e->gate_mu);
        if (rc != 0)
            weft__log(e, WEFT_LOG_ERROR, "the %s backend cannot start a loop: %s", e->be->name,
                      weft_strerror(rc));
    }
    if (rc != 0) {
        open_gate(e, -1);
        join_threads(e);
        goto fail;
    }
    if (cfg->handler.on_boot != NULL && cfg->handler.on_boot(e) == WEFT_ACTION_SHUTDOWN)
        atomic_store(&e->stop_requested, 1);
    open_gate(e, 1);
    if (atomic_load(&e->stop_requested))
        weft_engine_stop(e);
    *out = e;
    return 0;
fail:
    engine_free(e);
    return rc;
}

int weft_engine_stop(weft_engine *e)
{
    if (e == NULL)
        return WEFT_EINVAL;
    weft__loop_request_stop(e);
    return 0;
}

int weft_engine_wait(weft_engine *e)
{
    if (e == NULL)
        return WEFT_EINVAL;
    join_threads(e);
    /* The loops are gone, so no worker can reach a connection any more: cancel what is
     * queued (each task learns it) before anything is freed. */
    if (e->pool != NULL)
        weft_pool_shutdown(e->pool, WEFT_POOL_CANCEL);
    e->pool = NULL;
    /* What is still queued for the loops is settled before on_shutdown, so no free
     * callback or on_close comes after it. */
    for (unsigned i = 0; i < e->nloops; i++)
        weft__loop_drain_leftovers(&e->loops[i]);
    if (e->cfg.handler.on_shutdown != NULL)
        e->cfg.handler.on_shutdown(e);
    engine_free(e);
    return 0;
}

int weft_engine_wait_signals(weft_engine *e)
{
    if (e == NULL)
        return WEFT_EINVAL;
    /* The wait looks now and then whether the engine stopped by itself (on_tick, on_boot or
     * a handler asked for it): then nobody is going to send a signal. */
    int sig = weft__wait_stop_signal(&e->stop_requested);
    if (sig != 0)
        weft__log(e, WEFT_LOG_INFO, "%s: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    weft_engine_stop(e);
    int rc = weft_engine_wait(e);
    return rc != 0 ? rc : sig;
}

int weft_run(const weft_config *cfg)
{
    weft_engine *e;
    int rc = weft_engine_start(cfg, &e);
    if (rc != 0)
        return rc;
    if (cfg->stop_on_signals) {
        rc = weft_engine_wait_signals(e);
        return rc < 0 ? rc : 0;
    }
    return weft_engine_wait(e);
}

int weft_engine_get_listen_addr(weft_engine *e, size_t i, char *buf, size_t len)
{
    if (e == NULL || buf == NULL)
        return WEFT_EINVAL;
    /* Per-loop reuse_port sockets of one URL share an address: count URLs, not sockets. */
    size_t idx = 0;
    for (size_t k = 0; k < e->nlisteners; k++) {
        const weft__listener *l = &e->listeners[k];
        if (l->owner != NULL && l->owner->index != 0)
            continue;
        if (idx++ == i) {
            size_t n = strlen(l->url);
            if (n + 1 > len)
                return WEFT_ENOSPC;
            memcpy(buf, l->url, n + 1);
            return (int)n;
        }
    }
    return WEFT_EINVAL;
}

int weft_engine_get_listen_port(weft_engine *e, size_t i)
{
    char url[200];
    int rc = weft_engine_get_listen_addr(e, i, url, sizeof(url));
    if (rc < 0)
        return rc;
    if (strncmp(url, "tcp://", 6) != 0 && strncmp(url, "udp://", 6) != 0 &&
        strncmp(url, "tls://", 6) != 0)
        return WEFT_EINVAL;
    const char *colon = strrchr(url, ':');
    return colon != NULL ? atoi(colon + 1) : WEFT_EINVAL;
}

void *weft_engine_get_user_data(const weft_engine *e)
{
    return e->cfg.user_data;
}

unsigned weft_engine_get_loop_count(const weft_engine *e)
{
    return e->nloops;
}

weft_pool *weft_engine_get_pool(weft_engine *e)
{
    return e->pool;
}

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

int weft_engine_get_stats(weft_engine *e, weft_stats *out, weft_loop_stats *per_loop)
{
    if (e == NULL || out == NULL)
        return WEFT_EINVAL;
    memset(out, 0, sizeof(*out));
    out->nloops = e->nloops;
    for (unsigned i = 0; i < e->nloops; i++) {
        weft__loop_stats *s = &e->loops[i].stats;
        weft_loop_stats l;
        l.live = LOAD(s->live);
        l.accepted = LOAD(s->accepted);
        l.closed = LOAD(s->closed);
        l.bytes_in = LOAD(s->bytes_in);
        l.bytes_out = LOAD(s->bytes_out);
        l.frames = LOAD(s->frames);
        l.decode_errors = LOAD(s->decode_errors);
        l.backpressure_pauses = LOAD(s->pauses);
        l.buffers_out = LOAD(s->buffers_out);
        l.buffer_bytes = LOAD(s->buffer_bytes);
        l.buffers_cached_bytes = LOAD(s->cached_bytes);
        l.wakeups = LOAD(s->wakeups);
        l.datagrams_in = LOAD(s->dgrams_in);
        l.datagrams_out = LOAD(s->dgrams_out);
        l.datagrams_dropped = LOAD(s->dgrams_dropped);
        l.tasks = LOAD(s->tasks);
        l.sleeps = LOAD(s->sleeps);
        l.buffer_resizes = LOAD(s->resizes);
        l.buffer_copied_bytes = LOAD(s->copied_bytes);
        l.submissions = LOAD(s->submissions);
        l.completions = LOAD(s->completions);
        l.buffer_exhaustions = LOAD(s->exhaustions);
        l.zerocopy_sends = LOAD(s->zc_sends);
        l.zerocopy_copied = LOAD(s->zc_copied);
        l.zerocopy_held_bytes = LOAD(s->zc_held);
        if (per_loop != NULL)
            per_loop[i] = l;
        weft_loop_stats *t = &out->total;
        t->live += l.live;
        t->accepted += l.accepted;
        t->closed += l.closed;
        t->bytes_in += l.bytes_in;
        t->bytes_out += l.bytes_out;
        t->frames += l.frames;
        t->decode_errors += l.decode_errors;
        t->backpressure_pauses += l.backpressure_pauses;
        t->buffers_out += l.buffers_out;
        t->buffer_bytes += l.buffer_bytes;
        t->buffers_cached_bytes += l.buffers_cached_bytes;
        t->wakeups += l.wakeups;
        t->datagrams_in += l.datagrams_in;
        t->datagrams_out += l.datagrams_out;
        t->datagrams_dropped += l.datagrams_dropped;
        t->tasks += l.tasks;
        t->sleeps += l.sleeps;
        t->buffer_resizes += l.buffer_resizes;
        t->buffer_copied_bytes += l.buffer_copied_bytes;
        t->submissions += l.submissions;
        t->completions += l.completions;
        t->buffer_exhaustions += l.buffer_exhaustions;
        t->zerocopy_sends += l.zerocopy_sends;
        t->zerocopy_copied += l.zerocopy_copied;
        t->zerocopy_held_bytes += l.zerocopy_held_bytes;
    }
    out->rejected = LOAD(e->rejected);
    out->accept_errors = LOAD(e->accept_errors);
    return 0;
}
