/* weft-redis: a Redis-protocol server on weft. Real Redis clients (redis-cli,
 * redis-benchmark, client libraries) talk to it.
 *
 *   weft-redis [--port 6380] [--bind 127.0.0.1] [--loops N] [--lb rr|lc|ch|random] [--busy-poll US]
 *
 * The RESP codec (resp.c) turns bytes into requests; this file only glues the engine to the
 * executor (commands.c): each batch of pipelined requests is executed in order and its
 * replies leave with one write. SIGINT/SIGTERM stop it cleanly.
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <weft/weft.h>

#include "commands.h"
#include "example.h"
#include "reply.h"
#include "resp.h"

/* Flush a batch's replies early once they pass this, so that a long pipeline of big
 * replies does not grow the loop's buffer without bound. */
#define FLUSH_AT (256 * 1024)
/* Reply buffers above this are given back after a batch. */
#define KEEP_BUF (1024 * 1024)

typedef struct loop_state {
    _Alignas(64) reply_buf out;
} loop_state;

static redis_server *g_srv;
static loop_state *g_loops;
static _Atomic(weft_engine *) g_engine;

static void stats_cb(void *arg, unsigned nloops, redis_loop_info *per_loop)
{
    weft_engine *e = atomic_load(&g_engine);
    weft_loop_stats *ls;
    weft_stats st;

    (void)arg;
    if (e == NULL)
        return;
    ls = calloc(weft_engine_get_loop_count(e), sizeof(*ls));
    if (ls == NULL)
        return;
    if (weft_engine_get_stats(e, &st, ls) == 0) {
        for (unsigned i = 0; i < nloops && i < st.nloops; i++) {
            per_loop[i].clients = ls[i].live;
            per_loop[i].accepted = ls[i].accepted;
            per_loop[i].bytes_in = ls[i].bytes_in;
            per_loop[i].bytes_out = ls[i].bytes_out;
        }
    }
    free(ls);
}

static weft_action on_boot(weft_engine *e)
{
    atomic_store(&g_engine, e);
    printf("weft-redis ready on port %d with %u loop(s)\n", weft_engine_get_listen_port(e, 0),
           weft_engine_get_loop_count(e));
    fflush(stdout);
    return WEFT_ACTION_NONE;
}

static weft_action on_open(weft_conn *conn)
{
    redis_client *cl = malloc(sizeof(*cl));
    if (cl == NULL)
        return WEFT_ACTION_CLOSE;
    redis_client_init(g_srv, cl, weft_conn_get_loop(conn));
    weft_conn_set_context(conn, cl);
    return WEFT_ACTION_NONE;
}

static void on_close(weft_conn *conn, int err)
{
    redis_client *cl = weft_conn_get_context(conn);
    (void)err;
    if (cl != NULL) {
        redis_client_free(cl);
        free(cl);
        weft_conn_set_context(conn, NULL);
    }
}

/* Sends what the batch produced. false when the connection cannot take it. */
static bool flush(weft_conn *conn, reply_buf *rb)
{
    int rc = 0;
    if (rb->oom) {
        reply_reset(rb, 0);
        return false;
    }
    if (rb->len > 0)
        rc = weft_conn_write(conn, rb->data, rb->len);
    reply_reset(rb, KEEP_BUF);
    return rc == 0;
}

static weft_action on_traffic(weft_conn *conn)
{
    redis_client *cl = weft_conn_get_context(conn);
    reply_buf *rb = &g_loops[weft_conn_get_loop(conn)].out;
    const uint8_t *frame;
    const void *msg;
    size_t len;
    int rc;

    if (cl == NULL)
        return WEFT_ACTION_CLOSE;
    /* The requests that arrived together share one clock reading, as in Redis. */
    redis_batch_begin(cl);
    while ((rc = weft_conn_next_message(conn, &frame, &len, &msg)) > 0) {
        /* The codec parsed the request already; msg is its argument vector. */
        const resp_request *req = msg;
        int done = redis_exec(g_srv, cl, req->argc, req->argv, req->lens, rb);
        /* A huge request grew the parser: it shrinks back now, not on the next request. */
        resp_request_done(req);
        if (done == REDIS_EXEC_CLOSE) {
            redis_batch_end(cl);
            flush(conn, rb);
            return WEFT_ACTION_CLOSE;
        }
        if (rb->len >= FLUSH_AT && !flush(conn, rb)) {
            redis_batch_end(cl);
            return WEFT_ACTION_CLOSE;
        }
    }
    redis_batch_end(cl);
    if (rc == WEFT_EPROTO) {
        /* As Redis: tell the client what was wrong, then close; the others go on. */
        const char *why = weft_conn_get_decode_error(conn);
        reply_errorf(rb, "ERR %s", why != NULL ? why : "Protocol error: malformed request");
        flush(conn, rb);
        return WEFT_ACTION_CLOSE;
    }
    if (!flush(conn, rb) || rc < 0)
        return WEFT_ACTION_CLOSE;
    return WEFT_ACTION_NONE;
}

static weft_action on_tick(weft_engine *e, unsigned loop)
{
    (void)e;
    redis_tick(g_srv, loop);
    return WEFT_ACTION_NONE;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: weft-redis [--port N] [--bind ADDR] [--loops N] [--lb rr|lc|ch|random]\n"
               "                 [--busy-poll US]\n"
               "  --port N     TCP port (default 6380; 0 picks a free one and prints it)\n"
               "  --bind ADDR  address to listen on (default 127.0.0.1)\n"
               "  --loops N    event loops; 0 = one per CPU (default 1)\n"
               "  --lb NAME    how connections are spread over loops: rr round-robin\n"
               "               (default), lc least-connections, ch consistent hash of the\n"
               "               client address, random\n"
               "  --busy-poll US  after serving, keep polling this many microseconds before\n"
               "               sleeping, so a client's next request does not have to wake\n"
               "               the loop; costs CPU while traffic trickles, none when idle;\n"
               "               0 = off (default 50)\n"
               "  --help       this text\n"
               "SIGINT/SIGTERM stop it cleanly.\n");
}

static bool parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    char *end;
    unsigned long v;
    if (s == NULL || *s == '\0' || *s == '-')
        return false;
    v = strtoul(s, &end, 10);
    if (*end != '\0' || v > max)
        return false;
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    weft_config cfg;
    redis_config rcfg;
    resp_limits limits;
    const char *bind = "127.0.0.1";
    unsigned long port = 6380, loops = 1, busy_poll_us = 50;
    char url[128];
    sigset_t set;
    weft_engine *e;
    int rc, sig;

    weft_config_init(&cfg);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--port") == 0 && parse_uint(v, 65535, &port)) {
            i++;
        } else if (strcmp(a, "--loops") == 0 && parse_uint(v, 1024, &loops)) {
            i++;
        } else if (strcmp(a, "--busy-poll") == 0 && parse_uint(v, 1000000, &busy_poll_us)) {
            i++;
        } else if (strcmp(a, "--bind") == 0 && v != NULL) {
            bind = v;
            i++;
        } else if (strcmp(a, "--lb") == 0 && v != NULL && example_parse_lb(v, &cfg.lb.kind) == 0) {
            i++;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (loops == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        loops = n > 0 ? (unsigned long)n : 1;
    }
    snprintf(url, sizeof(url), strchr(bind, ':') ? "tcp://[%s]:%lu" : "tcp://%s:%lu", bind, port);

    resp_limits_init(&limits);
    redis_config_init(&rcfg);
    rcfg.nloops = (unsigned)loops;
    rcfg.port = (int)port;
    rcfg.max_bulk = limits.max_bulk;
    rcfg.stats_cb = stats_cb;
    g_srv = redis_server_create(&rcfg);
    /* aligned_alloc, not calloc: each loop's state sits on its own cache line. */
    g_loops = aligned_alloc(_Alignof(loop_state), loops * sizeof(*g_loops));
    if (g_loops != NULL)
        memset(g_loops, 0, loops * sizeof(*g_loops));
    if (g_srv == NULL || g_loops == NULL) {
        fprintf(stderr, "weft-redis: out of memory\n");
        return 1;
    }

    cfg.listen[0] = url;
    cfg.loops = (unsigned)loops;
    cfg.tick_ms = 100; /* Redis's hz 10: the active expiry runs ten times a second */
    /* A client that sends its next request within 50 us (a pipelining benchmark, a busy
     * application) finds the loop awake instead of paying for a cross-CPU wake-up. */
    cfg.busy_poll_us = (unsigned)busy_poll_us;
    /* Room for one 512 MB bulk argument and for one such reply, as Redis allows. */
    cfg.max_inbound = (size_t)limits.max_bulk + 64 * 1024 * 1024;
    cfg.write_hard_cap = (size_t)limits.max_bulk + 64 * 1024 * 1024;
    cfg.codec.kind = WEFT_CODEC_CUSTOM;
    cfg.codec.custom.vtable = &resp_codec;
    cfg.codec.custom.ctx = &limits;
    cfg.handler.on_boot = on_boot;
    cfg.handler.on_open = on_open;
    cfg.handler.on_traffic = on_traffic;
    cfg.handler.on_close = on_close;
    cfg.handler.on_tick = on_tick;

    /* Signals are taken synchronously on this thread, so nothing runs in a handler. */
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    rc = weft_engine_start(&cfg, &e);
    if (rc != 0) {
        fprintf(stderr, "weft-redis: cannot listen on %s: %s\n", url, weft_strerror(rc));
        return 1;
    }
    while (sigwait(&set, &sig) != 0)
        ;
    weft_engine_stop(e);
    weft_engine_wait(e);
    atomic_store(&g_engine, NULL);
    for (unsigned long i = 0; i < loops; i++)
        reply_free(&g_loops[i].out);
    free(g_loops);
    redis_server_destroy(g_srv);
    return 0;
}
