/* weft-redis: a Redis-protocol server on weft. Real Redis clients (redis-cli,
 * redis-benchmark, client libraries) talk to it.
 *
 *   weft-redis [--port 6380] [--bind 127.0.0.1] [--loops N] [--lb rr|lc|ch|random] [--busy-poll US]
 *              [--client-output-limit HARD SOFT SECONDS]
 *              [--tls-port N --tls-cert-file F --tls-key-file F [--tls-ca-cert-file F]
 *               [--tls-auth-clients no|yes|optional]]
 *
 * The RESP codec (resp.c) turns bytes into requests; this file only glues the engine to the
 * executor (commands.c): each batch of pipelined requests is executed in order and its
 * replies leave with one write. SIGINT/SIGTERM stop it cleanly (on Windows Ctrl+C, Ctrl+Break
 * or the console closing: examples/common does the waiting). On Windows, where weft has no
 * TLS, --tls-port is refused with a message saying so.
 *
 * A client's output is bounded twice. At the engine's high-water mark weft_conn_next_message
 * hands out no more requests, so a pipeline stops executing until the client reads and the
 * queue drains below half; nothing here runs requests from a buffer of its own. And Redis's
 * client-output-buffer-limit (obuf.h) closes a client whose queued replies reach the hard
 * limit, or stay above the soft one too long.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <weft/weft.h>

#include "system.h"
#include "commands.h"
#include "example.h"
#include "obuf.h"
#include "reply.h"
#include "resp.h"

/* Flush a batch's replies early once they pass this, so that a long pipeline of big
 * replies does not grow the loop's buffer without bound. */
#define FLUSH_AT (256 * 1024)
/* Reply buffers above this are given back after a batch. */
#define KEEP_BUF (1024 * 1024)
/* The most the engine queues for one connection (its write_hard_cap bound). */
#define ENGINE_CAP_MAX ((size_t)1 << 31)

/* One connection: the executor's client plus what the output limits need. */
typedef struct client {
    redis_client rc;
    weft_conn *conn;
    int64_t soft_since_ms;                /* when its output reached the soft limit; 0 = under */
    bool closed;                          /* closed for the limits: on_close follows */
    struct client *over_prev, *over_next; /* on its loop's over_soft list while soft_since_ms */
} client;

typedef struct loop_state {
    _Alignas(64) reply_buf out;
    obuf_peak peak;
    client *over_soft; /* clients at or above the soft limit, looked at on every tick */
} loop_state;

static redis_server *g_srv;
static loop_state *g_loops;
static obuf_limit g_obuf;
static _Atomic(weft_engine *) g_engine;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void stats_cb(void *arg, unsigned nloops, redis_loop_info *per_loop)
{
    weft_engine *e = atomic_load(&g_engine);
    weft_loop_stats *ls;
    weft_stats st;

    (void)arg;
    for (unsigned i = 0; i < nloops; i++)
        per_loop[i].out_buffer_peak = obuf_peak_get(&g_loops[i].peak);
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

static bool g_tls; /* listener 1 is the TLS port */

static weft_action on_boot(weft_engine *e)
{
    atomic_store(&g_engine, e);
    printf("weft-redis ready on port %d with %u loop(s)", weft_engine_get_listen_port(e, 0),
           weft_engine_get_loop_count(e));
    if (g_tls)
        printf("; tls port %d", weft_engine_get_listen_port(e, 1));
    printf("\n");
    fflush(stdout);
    return WEFT_ACTION_NONE;
}

static weft_action on_open(weft_conn *conn)
{
    client *cl = calloc(1, sizeof(*cl));
    if (cl == NULL)
        return WEFT_ACTION_CLOSE;
    redis_client_init(g_srv, &cl->rc, weft_conn_get_loop(conn));
    cl->conn = conn;
    weft_conn_set_context(conn, cl);
    return WEFT_ACTION_NONE;
}

/* The soft limit's clock started or stopped for cl: it joins or leaves its loop's list. */
static void over_soft_update(client *cl, loop_state *ls, bool was_over)
{
    bool over = cl->soft_since_ms != 0;
    if (over == was_over)
        return;
    if (over) {
        cl->over_prev = NULL;
        cl->over_next = ls->over_soft;
        if (ls->over_soft != NULL)
            ls->over_soft->over_prev = cl;
        ls->over_soft = cl;
        return;
    }
    if (cl->over_prev != NULL)
        cl->over_prev->over_next = cl->over_next;
    else
        ls->over_soft = cl->over_next;
    if (cl->over_next != NULL)
        cl->over_next->over_prev = cl->over_prev;
    cl->over_prev = cl->over_next = NULL;
}

static void on_close(weft_conn *conn, int err)
{
    client *cl = weft_conn_get_context(conn);
    (void)err;
    if (cl != NULL) {
        bool was_over = cl->soft_since_ms != 0;
        cl->soft_since_ms = 0;
        over_soft_update(cl, &g_loops[weft_conn_get_loop(conn)], was_over);
        redis_client_free(&cl->rc);
        free(cl);
        weft_conn_set_context(conn, NULL);
    }
}

/* Checks cl's output against client-output-buffer-limit, counting extra bytes about to be
 * written. Over it, the client is closed at once, dropping what it was sent (as Redis's
 * freeClientAsync), with one rate-limited log line. false when it was closed. */
static bool within_limits(client *cl, size_t extra)
{
    weft_conn *conn = cl->conn;
    loop_state *ls = &g_loops[weft_conn_get_loop(conn)];
    uint64_t used = (uint64_t)weft_conn_get_pending_out(conn) + extra;
    bool was_over = cl->soft_since_ms != 0;
    /* The clock is read only when the soft limit is in play. */
    int64_t now = g_obuf.soft != 0 && used >= g_obuf.soft ? mono_ms() : 0;
    obuf_verdict v;
    char addr[80];

    if (cl->closed)
        return false;
    v = obuf_check(&g_obuf, &cl->soft_since_ms, used, now);
    obuf_peak_note(&ls->peak, used);
    over_soft_update(cl, ls, was_over);
    if (v == OBUF_OK)
        return true;
    example_peer_name(conn, addr, sizeof(addr));
    if (v == OBUF_HARD)
        weft_conn_log(conn, WEFT_LOG_WARN,
                      "client id=%llu addr=%s closed for overcoming of output buffer limits: "
                      "%llu bytes, client-output-buffer-limit normal hard limit %llu",
                      (unsigned long long)cl->rc.id, addr, (unsigned long long)used,
                      (unsigned long long)g_obuf.hard);
    else
        weft_conn_log(conn, WEFT_LOG_WARN,
                      "client id=%llu addr=%s closed for overcoming of output buffer limits: "
                      "%llu bytes, over the client-output-buffer-limit normal soft limit %llu "
                      "for more than %llu s",
                      (unsigned long long)cl->rc.id, addr, (unsigned long long)used,
                      (unsigned long long)g_obuf.soft, (unsigned long long)g_obuf.soft_seconds);
    cl->closed = true;
    weft_conn_abort(conn);
    return false;
}

/* Sends what the batch produced. false when the connection cannot take it. */
static bool flush(client *cl, reply_buf *rb)
{
    int rc = 0;
    if (rb->oom) {
        reply_reset(rb, 0);
        return false;
    }
    if (rb->len > 0) {
        if (!within_limits(cl, rb->len)) {
            reply_reset(rb, KEEP_BUF);
            return false;
        }
        rc = weft_conn_write(cl->conn, rb->data, rb->len);
    }
    reply_reset(rb, KEEP_BUF);
    return rc == 0;
}

static weft_action on_traffic(weft_conn *conn)
{
    client *cl = weft_conn_get_context(conn);
    reply_buf *rb = &g_loops[weft_conn_get_loop(conn)].out;
    const uint8_t *frame;
    const void *msg;
    size_t len;
    int rc;

    if (cl == NULL)
        return WEFT_ACTION_CLOSE;
    /* The requests that arrived together share one clock reading, as in Redis. */
    redis_batch_begin(&cl->rc);
    /* No request comes out while the connection's output is at the high-water mark: the
     * loop ends there, and the engine calls again once the client has read enough. */
    while ((rc = weft_conn_next_message(conn, &frame, &len, &msg)) > 0) {
        /* The codec parsed the request already; msg is its argument vector. */
        const resp_request *req = msg;
        int done = redis_exec(g_srv, &cl->rc, req->argc, req->argv, req->lens, rb);
        /* A huge request grew the parser: it shrinks back now, not on the next request. */
        resp_request_done(req);
        if (done == REDIS_EXEC_CLOSE) {
            redis_batch_end(&cl->rc);
            flush(cl, rb);
            return WEFT_ACTION_CLOSE;
        }
        if (rb->len >= FLUSH_AT && !flush(cl, rb)) {
            redis_batch_end(&cl->rc);
            return WEFT_ACTION_CLOSE;
        }
    }
    redis_batch_end(&cl->rc);
    if (rc == WEFT_EPROTO) {
        /* As Redis: tell the client what was wrong, then close; the others go on. The
         * engine logged the reason already, through its peer log limit. */
        const char *why = weft_conn_get_decode_error(conn);
        reply_errorf(rb, "ERR %s", why != NULL ? why : "Protocol error: malformed request");
        flush(cl, rb);
        return WEFT_ACTION_CLOSE;
    }
    if (!flush(cl, rb) || rc < 0)
        return WEFT_ACTION_CLOSE;
    return WEFT_ACTION_NONE;
}

static weft_action on_tick(weft_engine *e, unsigned loop)
{
    loop_state *ls = &g_loops[loop];
    int64_t now = mono_ms();

    (void)e;
    redis_tick(g_srv, loop);
    obuf_peak_advance(&ls->peak, now / 1000);
    /* A client over the soft limit may write nothing more (paused at the high-water mark,
     * or idle): its clock is checked here. Closing only marks it, so the list holds. */
    for (client *cl = ls->over_soft, *next; cl != NULL; cl = next) {
        next = cl->over_next;
        (void)within_limits(cl, 0);
    }
    return WEFT_ACTION_NONE;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: weft-redis [--port N] [--bind ADDR] [--loops N] [--lb rr|lc|ch|random]\n"
               "                 [--busy-poll US] [--client-output-limit HARD SOFT SECONDS]\n"
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
               "  --client-output-limit HARD SOFT SECONDS\n"
               "               as redis-server's client-output-buffer-limit normal: a client\n"
               "               whose unsent replies reach HARD bytes is closed at once, one\n"
               "               that stays at or above SOFT for more than SECONDS too; 0 = no\n"
               "               limit; units b, k, kb, m, mb, g, gb (default 64mb 0 0). The\n"
               "               engine never queues more than 2gb for a client\n"
               "  --tls-port N also serve TLS on this port (0 picks one and prints it), with\n"
               "               --tls-cert-file F and --tls-key-file F (PEM); clients are\n"
               "               verified against --tls-ca-cert-file F as --tls-auth-clients\n"
               "               says: no, yes (default, as redis-server) or optional; not in a\n"
               "               weft built without TLS (Windows): the start fails and says so\n"
               "  --help       this text\n"
               "SIGINT/SIGTERM (on Windows Ctrl+C or Ctrl+Break) stop it cleanly.\n");
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
    unsigned long port = 6380, loops = 1, busy_poll_us = 50, tls_u = 0;
    char url[128], tls_url[128];
    long tls_port = -1;
    const char *tls_cert = NULL, *tls_key = NULL, *tls_ca = NULL, *tls_auth = "yes";
    int rc;

    weft_config_init(&cfg);
    obuf_limit_init(&g_obuf);
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
        } else if (strcmp(a, "--client-output-limit") == 0 && i + 3 < argc &&
                   obuf_limit_parse(&g_obuf, argv[i + 1], argv[i + 2], argv[i + 3])) {
            i += 3;
        } else if (strcmp(a, "--tls-port") == 0 && parse_uint(v, 65535, &tls_u)) {
            tls_port = (long)tls_u;
            i++;
        } else if (strcmp(a, "--tls-cert-file") == 0 && v != NULL) {
            tls_cert = v;
            i++;
        } else if (strcmp(a, "--tls-key-file") == 0 && v != NULL) {
            tls_key = v;
            i++;
        } else if (strcmp(a, "--tls-ca-cert-file") == 0 && v != NULL) {
            tls_ca = v;
            i++;
        } else if (strcmp(a, "--tls-auth-clients") == 0 && v != NULL &&
                   (strcmp(v, "no") == 0 || strcmp(v, "yes") == 0 || strcmp(v, "optional") == 0)) {
            tls_auth = v;
            i++;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (loops == 0)
        loops = example_cpu_count();
    snprintf(url, sizeof(url), strchr(bind, ':') ? "tcp://[%s]:%lu" : "tcp://%s:%lu", bind, port);

    resp_limits_init(&limits);
    redis_config_init(&rcfg);
    rcfg.nloops = (unsigned)loops;
    rcfg.port = (int)port;
    rcfg.max_bulk = limits.max_bulk;
    rcfg.obuf = g_obuf;
    rcfg.stats_cb = stats_cb;
    g_srv = redis_server_create(&rcfg);
    /* Aligned, not calloc: each loop's state sits on its own cache line. */
    g_loops = redis_aligned_alloc(_Alignof(loop_state), loops * sizeof(*g_loops));
    if (g_loops != NULL) {
        memset(g_loops, 0, loops * sizeof(*g_loops));
        for (unsigned long i = 0; i < loops; i++)
            obuf_peak_init(&g_loops[i].peak, mono_ms() / 1000);
    }
    if (g_srv == NULL || g_loops == NULL) {
        fprintf(stderr, "weft-redis: out of memory\n");
        return 1;
    }

    cfg.listen[0] = url;
    if (tls_port >= 0) {
        if (tls_cert == NULL || tls_key == NULL) {
            fprintf(stderr, "weft-redis: --tls-port needs --tls-cert-file and --tls-key-file\n");
            return 2;
        }
        snprintf(tls_url, sizeof(tls_url), strchr(bind, ':') ? "tls://[%s]:%ld" : "tls://%s:%ld",
                 bind, tls_port);
        cfg.listen[1] = tls_url;
        cfg.tls.cert_file = tls_cert;
        cfg.tls.key_file = tls_key;
        cfg.tls.ca_file = tls_ca;
        /* redis-server's default is yes: a client certificate is required. */
        if (strcmp(tls_auth, "yes") == 0)
            cfg.tls.verify_peer = WEFT_TLS_VERIFY_REQUIRED;
        else if (strcmp(tls_auth, "optional") == 0)
            cfg.tls.verify_peer = WEFT_TLS_VERIFY_OPTIONAL;
        else
            cfg.tls.verify_peer = WEFT_TLS_VERIFY_NONE;
        g_tls = true;
    }
    cfg.loops = (unsigned)loops;
    cfg.tick_ms = 100; /* Redis's hz 10: the active expiry runs ten times a second */
    /* A client that sends its next request within 50 us (a pipelining benchmark, a busy
     * application) finds the loop awake instead of paying for a cross-CPU wake-up. */
    cfg.busy_poll_us = (unsigned)busy_poll_us;
    /* Room for one 512 MB bulk argument, as Redis allows. */
    cfg.max_inbound = (size_t)limits.max_bulk + 64 * 1024 * 1024;
    /* within_limits closes a client at the hard limit before the engine would; the
     * engine's cap is the same number, as a backstop. */
    cfg.write_hard_cap =
        g_obuf.hard != 0 && g_obuf.hard < ENGINE_CAP_MAX ? (size_t)g_obuf.hard : ENGINE_CAP_MAX;
    /* The engine's mark (1 MiB), unless the hard limit is lower. */
    if (cfg.write_high_water > cfg.write_hard_cap)
        cfg.write_high_water = cfg.write_hard_cap;
    cfg.codec.kind = WEFT_CODEC_CUSTOM;
    cfg.codec.custom.vtable = &resp_codec;
    cfg.codec.custom.ctx = &limits;
    cfg.handler.on_boot = on_boot;
    cfg.handler.on_open = on_open;
    cfg.handler.on_traffic = on_traffic;
    cfg.handler.on_close = on_close;
    cfg.handler.on_tick = on_tick;

    /* Until SIGINT or SIGTERM; then the engine is stopped and waited for. */
    char name[320];
    snprintf(name, sizeof(name), "weft-redis: cannot listen on %s%s%s", url, g_tls ? " and " : "",
             g_tls ? tls_url : "");
    rc = example_serve(&cfg, name, NULL, NULL);
    atomic_store(&g_engine, NULL);
    for (unsigned long i = 0; i < loops; i++)
        reply_free(&g_loops[i].out);
    redis_aligned_free(g_loops);
    redis_server_destroy(g_srv);
    return rc;
}
