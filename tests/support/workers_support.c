/* The worker-pool tests' server, drainer thread, call records and messages: see
 * workers_support.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "workers_support.h"

/* ---- the server ---- */

static pthread_mutex_t refs_mu = PTHREAD_MUTEX_INITIALIZER;
static weft_conn_ref refs[WK_MAX_CONNS];
_Atomic long wk_registered;
_Atomic long wk_closed_count;
_Atomic int wk_last_close_err;
_Atomic int wk_job_sleep_ms;
_Atomic long wk_jobs_refused;

static void reset_server_state(void)
{
    pthread_mutex_lock(&refs_mu);
    memset(refs, 0, sizeof(refs));
    pthread_mutex_unlock(&refs_mu);
    atomic_store(&wk_registered, 0);
    atomic_store(&wk_closed_count, 0);
    atomic_store(&wk_last_close_err, 0);
    atomic_store(&wk_job_sleep_ms, 0);
    atomic_store(&wk_jobs_refused, 0);
}

weft_conn_ref wk_ref_of(unsigned id)
{
    pthread_mutex_lock(&refs_mu);
    weft_conn_ref r = refs[id];
    pthread_mutex_unlock(&refs_mu);
    return r;
}

typedef struct job {
    weft_engine *engine;
    weft_conn_ref ref;
} job;

/* A blocking task: sleeps, then answers through the loop. */
static void sleeping_job(void *arg, int status)
{
    job *j = arg;
    if (status == 0) {
        wt_sleep_ms(atomic_load(&wk_job_sleep_ms));
        (void)weft_async_write(j->engine, j->ref, "s", 1);
    }
    free(j);
}

static weft_action on_traffic(weft_conn *c)
{
    if (weft_conn_get_context(c) == NULL) {
        uint32_t id;
        if (weft_conn_get_buffered(c) < sizeof(id))
            return WEFT_ACTION_NONE;
        weft_conn_read(c, &id, sizeof(id));
        if (id >= WK_MAX_CONNS)
            return WEFT_ACTION_CLOSE;
        pthread_mutex_lock(&refs_mu);
        refs[id] = weft_conn_get_ref(c);
        pthread_mutex_unlock(&refs_mu);
        weft_conn_set_context(c, (void *)(intptr_t)(id + 1));
        atomic_fetch_add(&wk_registered, 1);
    }
    uint8_t cmd;
    while (weft_conn_read(c, &cmd, 1) == 1) {
        if (cmd == 'P') {
            weft_conn_write(c, "p", 1);
        } else if (cmd == 'Q') {
            weft_conn_close(c);
            return WEFT_ACTION_NONE;
        } else if (cmd == 'S') {
            job *j = malloc(sizeof(*j));
            if (j == NULL)
                return WEFT_ACTION_CLOSE;
            j->engine = weft_conn_get_engine(c);
            j->ref = weft_conn_get_ref(c);
            if (weft_pool_submit(weft_engine_get_pool(j->engine), sleeping_job, j) != 0) {
                free(j); /* a failed submit never runs the task */
                atomic_fetch_add(&wk_jobs_refused, 1);
                weft_conn_write(c, "B", 1);
            }
        }
    }
    return WEFT_ACTION_NONE;
}

static void on_close(weft_conn *c, int err)
{
    (void)c;
    atomic_store(&wk_last_close_err, err);
    atomic_fetch_add(&wk_closed_count, 1);
}

void wk_start_server(wt_server *s, weft_config *cfg)
{
    assert_int_equal(wt_server_start(s, cfg), 0);
    assert_non_null(weft_engine_get_pool(s->engine));
}

void wk_base_config(weft_config *cfg)
{
    reset_server_state();
    wt_config(cfg, on_traffic, WK_LOOPS);
    cfg->handler.on_close = on_close;
    cfg->workers = WK_WORKERS;
}

void wk_connect_clients(const wt_server *s, int *fds, unsigned n)
{
    for (uint32_t id = 0; id < n; id++) {
        fds[id] = wt_connect_tcp(s->port);
        assert_true(fds[id] >= 0);
        assert_int_equal(wt_send_all(fds[id], &id, sizeof(id), WT_TIMEOUT_MS), 0);
    }
    assert_true(wt_wait_count(&wk_registered, (long)n, WT_TIMEOUT_MS));
}

/* ---- a client thread that reads many sockets at once ---- */

static void *drainer_main(void *arg)
{
    wk_drainer *d = arg;
    struct pollfd *p = calloc(d->n, sizeof(*p));
    size_t *cap = calloc(d->n, sizeof(*cap));
    uint8_t *scratch = malloc(65536);
    bool acted = false;
    int64_t end = wt_now_ms() + WT_TIMEOUT_MS;
    for (;;) {
        if (!acted && d->peer_plan != NULL && atomic_load(&d->act)) {
            acted = true;
            for (unsigned i = 0; i < d->n; i++) {
                if (d->done[i])
                    continue;
                if (d->peer_plan[i] == WK_PEER_RESET) {
                    struct linger lg = {1, 0};
                    (void)setsockopt(d->fds[i], SOL_SOCKET, SO_LINGER, (const void *)&lg,
                                     sizeof(lg));
                }
                if (d->peer_plan[i] == WK_PEER_CLOSE || d->peer_plan[i] == WK_PEER_RESET) {
                    wt_close(d->fds[i]);
                    d->done[i] = true;
                    d->closed_here[i] = true;
                } else if (d->peer_plan[i] == WK_PEER_ASK_CLOSE) {
                    (void)send(d->fds[i], "Q", 1, MSG_NOSIGNAL);
                }
            }
        }
        unsigned np = 0;
        for (unsigned i = 0; i < d->n; i++) {
            if (d->done[i])
                continue;
            p[np].fd = d->fds[i];
            p[np].events = POLLIN;
            p[np].revents = 0;
            np++;
        }
        if (np == 0)
            break;
        if (wt_now_ms() > end) {
            d->timed_out = true;
            break;
        }
        int rc = wt_poll(p, (wt_nfds)np, 5);
        if (rc <= 0)
            continue;
        unsigned k = 0;
        for (unsigned i = 0; i < d->n; i++) {
            if (d->done[i])
                continue;
            struct pollfd *q = &p[k++];
            if (q->revents == 0)
                continue;
            for (;;) {
                size_t room = 65536;
                if (d->want != NULL && d->want[i] - d->len[i] < room)
                    room = d->want[i] - d->len[i];
                uint8_t *dst = scratch;
                if (d->keep) {
                    if (cap[i] - d->len[i] < room) {
                        size_t ncap = cap[i] ? cap[i] * 2 : 65536;
                        while (ncap - d->len[i] < room)
                            ncap *= 2;
                        d->data[i] = realloc(d->data[i], ncap);
                        cap[i] = ncap;
                    }
                    dst = d->data[i] + d->len[i];
                }
                ssize_t r = room > 0 ? wt_recv_now(d->fds[i], dst, room) : 0;
                if (r > 0) {
                    d->len[i] += (size_t)r;
                    if (d->want != NULL && d->len[i] == d->want[i]) {
                        d->done[i] = true;
                        break;
                    }
                    continue;
                }
                if (r == 0 || (wt_sock_errno() != EAGAIN && wt_sock_errno() != EINTR))
                    d->done[i] = true; /* EOF, or a reset after the server closed */
                break;
            }
        }
    }
    free(scratch);
    free(cap);
    free(p);
    return NULL;
}

wk_drainer *wk_drainer_start(int *fds, unsigned n, bool keep, size_t *want, int *peer_plan)
{
    wk_drainer *d = calloc(1, sizeof(*d));
    assert_non_null(d);
    d->n = n;
    d->fds = fds;
    d->keep = keep;
    d->want = want;
    d->peer_plan = peer_plan;
    d->data = calloc(n, sizeof(*d->data));
    d->len = calloc(n, sizeof(*d->len));
    d->done = calloc(n, sizeof(*d->done));
    d->closed_here = calloc(n, sizeof(*d->closed_here));
    assert_non_null(d->data);
    assert_non_null(d->len);
    assert_non_null(d->done);
    assert_non_null(d->closed_here);
    assert_int_equal(pthread_create(&d->th, NULL, drainer_main, d), 0);
    return d;
}

void wk_drainer_finish(wk_drainer *d)
{
    pthread_join(d->th, NULL);
    for (unsigned i = 0; i < d->n; i++)
        if (!d->closed_here[i])
            wt_close(d->fds[i]);
}

void wk_drainer_free(wk_drainer *d)
{
    for (unsigned i = 0; i < d->n; i++)
        free(d->data[i]);
    free(d->data);
    free(d->len);
    free(d->done);
    free(d->closed_here);
    free(d);
}

/* ---- zero-copy bookkeeping: one record per call ---- */

void wk_rec_free(void *data, void *ctx)
{
    wk_call_rec *r = ctx;
    atomic_fetch_add(&r->frees, 1);
    free(data);
}

int wk_write_zc_copy(weft_engine *e, weft_conn_ref ref, const uint8_t *m, size_t n, wk_call_rec *r)
{
    uint8_t *b = malloc(n);
    memcpy(b, m, n);
    r->zc = true;
    int rc = weft_async_write_zc(e, ref, b, n, wk_rec_free, r);
    if (rc != 0)
        free(b);
    return rc;
}

/* ---- messages: a 16-byte header and a pattern, so a torn message shows ---- */

size_t wk_msg_len(unsigned w, unsigned conn, unsigned seq)
{
    return WK_MSG_HDR + (seq * 7u + w * 3u + conn) % 48u;
}

uint8_t wk_msg_byte(unsigned w, unsigned conn, unsigned seq, size_t j)
{
    return (uint8_t)(w * 31u + seq * 17u + (unsigned)j * 13u + conn);
}

size_t wk_msg_build(uint8_t *p, unsigned w, unsigned conn, unsigned seq)
{
    size_t n = wk_msg_len(w, conn, seq);
    uint32_t h[4] = {WK_MSG_MAGIC | w, conn, seq, (uint32_t)n};
    memcpy(p, h, sizeof(h));
    for (size_t j = WK_MSG_HDR; j < n; j++)
        p[j] = wk_msg_byte(w, conn, seq, j);
    return n;
}

unsigned wk_target_conn(unsigned w, unsigned i, unsigned nconns)
{
    return (i * 37u + w * 13u) % nconns;
}
