/* weft under hostile load: what a peer can make the server hold and write.
 *
 * - A client that pipelines requests whose replies are far larger than the requests, and never
 *   reads: the engine stops handing it frames at write_high_water, so its queue stops at the
 *   mark plus one reply (and, when write_hard_cap is below that, it is closed with
 *   WEFT_EOUTCAP instead); another client is served meanwhile.
 * - A burst: every connection sends a small request at the same moment and gets a small
 *   reply; once they sit idle no connection holds a buffer.
 * - A log flood: noise that makes the line codec report errors on 20 connections yields about
 *   WEFT_PEER_LOG_PER_SEC lines a second per loop, and the summaries account for every error.
 * - Peer bytes quoted in a log line come out escaped.
 *
 * Handlers run on loop threads and record into atomics; the test thread asserts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

/* ---- a line server: "GET" is answered with a big reply, "get" with a small one, "PING" with
 * "PONG" ---- */

#define BIG_BODY   (64u * 1024u)
#define BIG_HEAD   "BULK\n"
#define BIG_REPLY  (sizeof(BIG_HEAD) - 1 + BIG_BODY) /* 16,385x the 4-byte "GET\n" */
#define SMALL_BODY 4096u                             /* 1,024x the 4-byte "get\n" */

static uint8_t big_body[BIG_BODY];
static uint8_t small_body[SMALL_BODY];

static _Atomic long served;      /* requests handed to the application */
static _Atomic long max_pending; /* the most weft_conn_get_pending_out seen after a reply */
static _Atomic long closed;
static _Atomic long close_err;
static _Atomic long write_err; /* the first failing write's result */

static void reset_counters(void)
{
    atomic_store(&served, 0);
    atomic_store(&max_pending, 0);
    atomic_store(&closed, 0);
    atomic_store(&close_err, 1);
    atomic_store(&write_err, 0);
}

static void note_pending(weft_conn *c)
{
    long p = (long)weft_conn_get_pending_out(c);
    long seen = atomic_load(&max_pending);
    while (p > seen && !atomic_compare_exchange_weak(&max_pending, &seen, p))
        ;
}

static bool note_write(int rc)
{
    if (rc != 0) {
        long zero = 0;
        atomic_compare_exchange_strong(&write_err, &zero, (long)rc);
        return false;
    }
    return true;
}

static weft_action serve_lines(weft_conn *c)
{
    const uint8_t *f;
    size_t len;
    while (weft_conn_next_frame(c, &f, &len) == WEFT_FRAME) {
        if (len == 3 && memcmp(f, "GET", 3) == 0) {
            atomic_fetch_add(&served, 1);
            /* A header and a body, as a protocol writes a bulk reply: two writes. */
            if (!note_write(weft_conn_write(c, BIG_HEAD, sizeof(BIG_HEAD) - 1)) ||
                !note_write(weft_conn_write(c, big_body, sizeof(big_body))))
                break;
            note_pending(c);
        } else if (len == 3 && memcmp(f, "get", 3) == 0) {
            atomic_fetch_add(&served, 1);
            if (!note_write(weft_conn_write(c, small_body, sizeof(small_body))))
                break;
            note_pending(c);
        } else if (len == 4 && memcmp(f, "PING", 4) == 0) {
            (void)weft_conn_write(c, "PONG\n", 5);
        }
    }
    return WEFT_ACTION_NONE;
}

static void record_close(weft_conn *c, int err)
{
    (void)c;
    atomic_store(&close_err, err);
    atomic_fetch_add(&closed, 1);
}

static void line_server_config(weft_config *cfg)
{
    wt_fill(big_body, sizeof(big_body), 13);
    wt_fill(small_body, sizeof(small_body), 14);
    wt_config(cfg, serve_lines, 1);
    cfg->codec.kind = WEFT_CODEC_LINE;
    cfg->handler.on_close = record_close;
}

/* A client whose own buffers are small, so what it does not read stays with the server. */
static int small_buffer_client(int port)
{
    int fd = wt_connect_tcp(port);
    assert_true(fd >= 0);
    assert_int_equal(wt_setsockopt_int(fd, SOL_SOCKET, SO_RCVBUF, 64 * 1024), 0);
    return fd;
}

/* n copies of req ("GET\n"), sent in one write: the server reads them all at once. */
static void pipeline(int fd, const char *req, int n)
{
    size_t l = strlen(req);
    char *buf = malloc(l * (size_t)n);
    assert_non_null(buf);
    for (int i = 0; i < n; i++)
        memcpy(buf + (size_t)i * l, req, l);
    assert_int_equal(wt_send_all(fd, buf, l * (size_t)n, WT_TIMEOUT_MS), 0);
    free(buf);
}

/* Waits until the server has stopped making progress for the client: it paused on the mark,
 * and nothing was served or sent for 300 ms. Returns the largest buffer_bytes seen meanwhile. */
static uint64_t wait_until_stuck(weft_engine *e)
{
    uint64_t max_buf = 0;
    long last_served = -1;
    uint64_t last_out = UINT64_MAX;
    int64_t still_since = wt_now_ms();
    int64_t end = wt_now_ms() + 2 * WT_TIMEOUT_MS;
    for (;;) {
        assert_true(wt_now_ms() < end);
        weft_loop_stats t = wt_stats(e);
        if (t.buffer_bytes > max_buf)
            max_buf = t.buffer_bytes;
        long s = atomic_load(&served);
        if (s != last_served || t.bytes_out != last_out) {
            last_served = s;
            last_out = t.bytes_out;
            still_since = wt_now_ms();
        } else if (t.backpressure_pauses > 0 && wt_now_ms() - still_since > 300) {
            return max_buf;
        }
        wt_sleep_ms(2);
    }
}

static void bystander_round_trip(int port)
{
    int fd = wt_connect_tcp(port);
    assert_true(fd >= 0);
    char pong[5];
    assert_int_equal(wt_exchange(fd, "PING\n", 5, pong, 5, WT_TIMEOUT_MS), 0);
    assert_memory_equal(pong, "PONG\n", 5);
    wt_close(fd);
}

/* What the pool may hold beyond the queued bytes: the partly sent first chunk and the last
 * one, chunk headers, and the inbound buffer with the pipeline not yet served. */
#define HOLD_SLACK (64u * 1024u)

#define HOG_REQUESTS 600 /* 600 x 64 KiB = 37.5 MiB of replies, far over every buffer */

static void test_pipelining_non_reader_stops_at_the_mark(void **state)
{
    (void)state;
    reset_counters();
    weft_config cfg;
    line_server_config(&cfg);
    cfg.write_high_water = 256 * 1024; /* the hard cap stays at its 64 MiB default */
    const size_t hw = cfg.write_high_water;
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), 0);
    int hog = small_buffer_client(s.port);

    pipeline(hog, "GET\n", HOG_REQUESTS);
    uint64_t max_buf = wait_until_stuck(s.engine);

    /* Held at the mark: the queue stopped within one reply above it, the rest of the
     * pipeline waits unread, and the client was not closed. */
    weft_loop_stats t = wt_stats(s.engine);
    assert_true(t.backpressure_pauses > 0);
    assert_true(atomic_load(&served) < HOG_REQUESTS);
    assert_true((size_t)atomic_load(&max_pending) >= hw);
    assert_true((size_t)atomic_load(&max_pending) < hw + BIG_REPLY);
    assert_true(max_buf <= hw + BIG_REPLY + HOLD_SLACK);
    assert_int_equal(atomic_load(&closed), 0);
    assert_int_equal(atomic_load(&write_err), 0);

    /* Another client is served meanwhile. */
    bystander_round_trip(s.port);
    assert_true(wt_wait_count(&closed, 1, WT_TIMEOUT_MS));
    assert_int_equal(atomic_load(&close_err), 0);

    /* The hog reads at last: every reply arrives, whole and in order, and the queue never
     * went over the mark plus one reply on the way. */
    static uint8_t reply[BIG_REPLY];
    for (int i = 0; i < HOG_REQUESTS; i++) {
        assert_int_equal(wt_recv_exact(hog, reply, sizeof(reply), WT_TIMEOUT_MS), 0);
        assert_memory_equal(reply, BIG_HEAD, sizeof(BIG_HEAD) - 1);
        assert_memory_equal(reply + sizeof(BIG_HEAD) - 1, big_body, BIG_BODY);
    }
    assert_int_equal(atomic_load(&served), HOG_REQUESTS);
    assert_true((size_t)atomic_load(&max_pending) < hw + BIG_REPLY);
    assert_int_equal(atomic_load(&closed), 1);

    wt_close(hog);
    assert_true(wt_wait_count(&closed, 2, WT_TIMEOUT_MS));
    assert_int_equal(atomic_load(&close_err), 0);
    wt_server_stop(&s);
}

static void test_pipelining_non_reader_closed_at_a_lower_hard_cap(void **state)
{
    (void)state;
    WT_SKIP_IF(wt_missing_reset());
    reset_counters();
    weft_config cfg;
    line_server_config(&cfg);
    /* Two replies fit under the mark, and the cap is half a reply above it: the third reply
     * crosses the mark and would end over the cap. */
    cfg.write_high_water = 2 * BIG_REPLY + 1;
    cfg.write_hard_cap = cfg.write_high_water + BIG_REPLY / 2;
    const size_t cap = cfg.write_hard_cap;
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), 0);
    int hog = small_buffer_client(s.port);

    pipeline(hog, "GET\n", HOG_REQUESTS);

    /* Closed with the reason, having never queued more than the cap. */
    assert_true(wt_wait_count(&closed, 1, WT_TIMEOUT_MS));
    assert_int_equal(atomic_load(&close_err), WEFT_EOUTCAP);
    assert_int_equal(atomic_load(&write_err), WEFT_EOUTCAP);
    assert_true((size_t)atomic_load(&max_pending) <= cap);
    assert_true(atomic_load(&served) < HOG_REQUESTS);
    /* What was queued is dropped: the peer sees a reset, not a clean end. */
    static uint8_t sink[64 * 1024];
    ssize_t r;
    int64_t end = wt_now_ms() + WT_TIMEOUT_MS;
    while ((r = recv(hog, (void *)sink, sizeof(sink), 0)) > 0)
        assert_true(wt_now_ms() < end);
    assert_int_equal(r, -1);
    assert_int_equal(wt_sock_errno(), ECONNRESET);

    /* The server goes on serving others. */
    bystander_round_trip(s.port);
    assert_true(wt_wait_count(&closed, 2, WT_TIMEOUT_MS));
    assert_int_equal(atomic_load(&close_err), 0);
    assert_true(wt_wait_for(wt_buffers_back, s.engine, WT_TIMEOUT_MS));
    weft_loop_stats t = wt_stats(s.engine);
    assert_int_equal(t.buffers_out, 0);

    wt_close(hog);
    wt_server_stop(&s);
}

/* The same pipelining client, with replies small enough to be corked (under 16 KiB): they are
 * staged in the loop's area instead of the connection's queue, so the mark must count them
 * too, or the whole pipeline is served into the queue in one callback. */
static void test_pipelining_non_reader_with_small_replies(void **state)
{
    (void)state;
    /* Small replies are staged per loop, not queued per connection: the mark counts them
     * too, or one callback would stage far past write_high_water for one connection. */
    reset_counters();
    weft_config cfg;
    line_server_config(&cfg);
    cfg.write_high_water = 64 * 1024;
    const size_t hw = cfg.write_high_water;
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), 0);
    int hog = small_buffer_client(s.port);

    pipeline(hog, "get\n", 4000); /* 4000 x 4 KiB = 15.6 MiB of replies */
    uint64_t max_buf = wait_until_stuck(s.engine);
    print_message("served %ld of 4000, most queued %ld, pool bytes out %llu (mark %lu)\n",
                  atomic_load(&served), atomic_load(&max_pending), (unsigned long long)max_buf,
                  (unsigned long)hw);

    assert_true(atomic_load(&served) < 4000);
    assert_true((size_t)atomic_load(&max_pending) < hw + SMALL_BODY);
    assert_true(max_buf <= hw + SMALL_BODY + HOLD_SLACK);
    assert_int_equal(atomic_load(&closed), 0);
    bystander_round_trip(s.port);

    wt_close(hog);
    wt_server_stop(&s);
}

/* ---- a burst of small requests, then idle ---- */

#define BURST_CONNS 2000
#define BURST_MSG   64

static bool no_buffers_out(void *arg)
{
    weft_loop_stats t = wt_stats(arg);
    return t.buffers_out == 0 && t.buffer_bytes == 0;
}

static void test_burst_then_idle_holds_no_buffers(void **state)
{
    (void)state;
    /* Both ends of every connection live in this process. */
    unsigned long have = wt_fd_limit_raise(2 * BURST_CONNS + 128);
    int n = BURST_CONNS;
    if (have < 2 * (unsigned long)n + 128)
        n = have > 328 ? (int)(have - 128) / 2 : 0;
    if (n < 100) {
        print_message("fd limit %lu: too low for a burst, skipped\n", have);
        skip();
    }
    if (n < BURST_CONNS)
        print_message("fd limit %lu: a burst of %d connections\n", have, n);
    reset_counters();
    weft_config cfg;
    wt_config(&cfg, wt_echo_on_traffic, 1);
    cfg.handler.on_close = record_close;
    cfg.backlog = n; /* connect all first: the listener must hold them */
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), 0);
    int *fds = malloc((size_t)n * sizeof(*fds));
    uint8_t(*msg)[BURST_MSG] = malloc((size_t)n * BURST_MSG);
    assert_non_null(fds);
    assert_non_null(msg);

    /* Connect all, then send on all, then read all. */
    for (int i = 0; i < n; i++) {
        fds[i] = wt_connect_tcp(s.port);
        assert_true(fds[i] >= 0);
        wt_fill(msg[i], BURST_MSG, (uint32_t)i + 100u);
    }
    int64_t end = wt_now_ms() + WT_TIMEOUT_MS;
    while (wt_stats(s.engine).accepted < (uint64_t)n) {
        assert_true(wt_now_ms() < end);
        wt_sleep_ms(1);
    }
    for (int i = 0; i < n; i++)
        assert_int_equal(send(fds[i], (const void *)msg[i], BURST_MSG, MSG_NOSIGNAL), BURST_MSG);
    for (int i = 0; i < n; i++) {
        uint8_t got[BURST_MSG];
        assert_int_equal(wt_recv_exact(fds[i], got, BURST_MSG, WT_TIMEOUT_MS), 0);
        assert_memory_equal(got, msg[i], BURST_MSG); /* each its own reply, intact */
    }

    /* Idle now: no connection holds a buffer of any kind. */
    assert_true(wt_wait_for(no_buffers_out, s.engine, WT_TIMEOUT_MS));
    wt_sleep_ms(200);
    weft_loop_stats t = wt_stats(s.engine);
    assert_int_equal(t.buffers_out, 0);
    assert_int_equal(t.buffer_bytes, 0);
    assert_int_equal(t.live, (uint64_t)n);
    assert_int_equal(t.bytes_out, (uint64_t)n * BURST_MSG);
    assert_int_equal(atomic_load(&closed), 0);

    for (int i = 0; i < n; i++)
        wt_close(fds[i]);
    assert_true(wt_wait_count(&closed, n, WT_TIMEOUT_MS));
    wt_server_stop(&s);
    free(fds);
    free(msg);
}

/* ---- log capture, shared by the flood and the escaping test ---- */

typedef struct loop_log {
    long peer;          /* "conn L/S: ..." lines */
    long summaries;     /* "loop L: ... and K more in the last second" */
    long dropped;       /* the Ks added up */
    long since_summary; /* peer lines since the last summary */
    long before_first;  /* peer lines before the first summary */
    long max_between;   /* most peer lines between two summaries */
    long decode_lines;  /* peer lines that are the line codec's decode errors */
} loop_log;

static struct {
    pthread_mutex_t mu;
    loop_log loops[2];
    long other;       /* lines neither kind */
    long unprintable; /* lines with a byte outside 0x20..0x7e */
    char last[512];
} logs = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void logs_reset(void)
{
    pthread_mutex_lock(&logs.mu);
    memset(logs.loops, 0, sizeof(logs.loops));
    logs.other = logs.unprintable = 0;
    logs.last[0] = '\0';
    pthread_mutex_unlock(&logs.mu);
}

static void capture_log(void *ctx, weft_log_level level, const char *msg)
{
    (void)ctx;
    (void)level;
    unsigned loop, slot;
    unsigned long long more;
    int used = 0;
    pthread_mutex_lock(&logs.mu);
    snprintf(logs.last, sizeof(logs.last), "%s", msg);
    for (const char *p = msg; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) {
            logs.unprintable++;
            break;
        }
    }
    if (sscanf(msg, "conn %u/%u: %n", &loop, &slot, &used) == 2 && used > 0 && loop < 2) {
        loop_log *l = &logs.loops[loop];
        l->peer++;
        l->since_summary++;
        if (l->summaries == 0)
            l->before_first++;
        if (strncmp(msg + used, "line codec: ", 12) == 0)
            l->decode_lines++;
    } else if (sscanf(msg, "loop %u: ... and %llu more in the last second", &loop, &more) == 2 &&
               loop < 2) {
        loop_log *l = &logs.loops[loop];
        if (l->summaries > 0 && l->since_summary > l->max_between)
            l->max_between = l->since_summary;
        l->summaries++;
        l->dropped += (long)more;
        l->since_summary = 0;
    } else if (strncmp(msg, "backend: ", 9) != 0) { /* the engine's start-up line */
        logs.other++;
    }
    pthread_mutex_unlock(&logs.mu);
}

/* ---- a log flood ---- */

#define FLOOD_CLIENTS 20
#define FLOOD_MS      2000
#define FLOOD_LINE    100 /* bytes of noise per line, over the codec's max_length */

static bool logs_account_for(void *arg)
{
    weft_engine *e = arg;
    weft_loop_stats t = wt_stats(e);
    pthread_mutex_lock(&logs.mu);
    long logged = 0;
    for (int l = 0; l < 2; l++)
        logged += logs.loops[l].peer + logs.loops[l].dropped;
    pthread_mutex_unlock(&logs.mu);
    return (uint64_t)logged == t.decode_errors;
}

static weft_action skip_frames(weft_conn *c)
{
    const uint8_t *f;
    size_t len;
    while (weft_conn_next_frame(c, &f, &len) == WEFT_FRAME)
        ;
    return WEFT_ACTION_NONE;
}

static void test_log_flood_is_limited_and_accounted(void **state)
{
    (void)state;
    reset_counters();
    logs_reset();
    weft_config cfg;
    wt_config(&cfg, skip_frames, 2);
    cfg.handler.on_close = record_close;
    cfg.codec.kind = WEFT_CODEC_LINE;
    cfg.codec.line.max_length = 64;
    cfg.codec.line.close_on_error = false; /* every too-long line is logged and skipped */
    cfg.log_cb = capture_log;
    cfg.log_level = WEFT_LOG_INFO; /* skipped lines are logged at INFO */
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), 0);

    /* Noise: lines of random bytes (ESC, CR, NUL and high bytes among them, no LF), each
     * one too long. */
    static uint8_t noise[20 * (FLOOD_LINE + 1)];
    wt_fill(noise, sizeof(noise), 21);
    for (size_t i = 0; i < sizeof(noise); i++) {
        if (i % (FLOOD_LINE + 1) == FLOOD_LINE)
            noise[i] = '\n';
        else if (noise[i] == '\n')
            noise[i] = 0x1b;
    }
    int fds[FLOOD_CLIENTS];
    size_t off[FLOOD_CLIENTS];
    for (int i = 0; i < FLOOD_CLIENTS; i++) {
        fds[i] = wt_connect_tcp(s.port);
        assert_true(fds[i] >= 0);
        off[i] = 0;
    }

    /* Everyone sends noise for FLOOD_MS, as fast as the server takes it. */
    uint64_t sent = 0;
    int64_t t0 = wt_now_ms();
    while (wt_now_ms() - t0 < FLOOD_MS) {
        bool any = false;
        for (int i = 0; i < FLOOD_CLIENTS; i++) {
            ssize_t r = wt_send_now(fds[i], noise + off[i], sizeof(noise) - off[i]);
            if (r > 0) {
                sent += (uint64_t)r;
                off[i] = (off[i] + (size_t)r) % sizeof(noise);
                any = true;
            } else {
                assert_true(wt_sock_errno() == EAGAIN || wt_sock_errno() == EWOULDBLOCK);
            }
        }
        if (!any)
            wt_sleep_ms(1);
    }
    int64_t flood_ms = wt_now_ms() - t0;

    /* The server reads it all, and once the last second is over its summaries account for
     * every error it counted. */
    int64_t end = wt_now_ms() + 3 * WT_TIMEOUT_MS;
    while (wt_stats(s.engine).bytes_in < sent) {
        assert_true(wt_now_ms() < end);
        wt_sleep_ms(1);
    }
    assert_true(wt_wait_for(logs_account_for, s.engine, WT_TIMEOUT_MS));
    wt_sleep_ms(1200); /* and nothing more comes after that */
    assert_true(logs_account_for(s.engine));

    weft_loop_stats t = wt_stats(s.engine);
    pthread_mutex_lock(&logs.mu);
    print_message("%llu decode errors in %lld ms; loop 0: %ld lines, %ld summaries; loop 1: %ld "
                  "lines, %ld summaries\n",
                  (unsigned long long)t.decode_errors, (long long)flood_ms, logs.loops[0].peer,
                  logs.loops[0].summaries, logs.loops[1].peer, logs.loops[1].summaries);
    long seconds = (long)(wt_now_ms() - t0) / 1000 + 2;
    for (int l = 0; l < 2; l++) {
        const loop_log *ll = &logs.loops[l];
        /* At most the budget per second on each loop: 20 between two summaries, 40 before
         * the first (the flood may have begun late in a second that was not full). Under a
         * heavy slowdown a starved loop may see a second without a drop, and so without a
         * summary: 40 then. */
        assert_true(ll->peer > 0);
        assert_true(ll->peer <= (long)WEFT_PEER_LOG_PER_SEC * seconds);
        assert_true(ll->max_between <= (wt_slow() ? 2 : 1) * WEFT_PEER_LOG_PER_SEC);
        assert_true(ll->before_first <= 2 * WEFT_PEER_LOG_PER_SEC);
        /* The limit did its work: far more errors than lines. */
        assert_true(ll->summaries >= 1);
        assert_true(ll->dropped > ll->peer);
        assert_int_equal(ll->decode_lines, ll->peer);
    }
    /* No peer byte reached the log raw: the reasons are the codec's own words. */
    assert_int_equal(logs.unprintable, 0);
    assert_int_equal(logs.other, 0);
    pthread_mutex_unlock(&logs.mu);
    assert_true(t.decode_errors > (uint64_t)(4 * WEFT_PEER_LOG_PER_SEC));
    assert_true(flood_ms >= FLOOD_MS);
    assert_int_equal(atomic_load(&closed), 0); /* skipped, not closed */

    for (int i = 0; i < FLOOD_CLIENTS; i++)
        wt_close(fds[i]);
    assert_true(wt_wait_count(&closed, FLOOD_CLIENTS, WT_TIMEOUT_MS));
    wt_server_stop(&s);
}

/* ---- peer bytes quoted in a log line ---- */

/* The decode-error lines name only the codec's reason; a protocol that quotes what the peer
 * sent does it through weft_escape, as this server does. */
static weft_action quote_request(weft_conn *c)
{
    const uint8_t *p;
    int n = weft_conn_peek(c, 0, &p);
    char esc[256];
    weft_escape(esc, sizeof(esc), p, (size_t)n);
    weft_conn_log(c, WEFT_LOG_WARN, "bad request: \"%s\"", esc);
    weft_conn_discard(c, (size_t)n);
    (void)weft_conn_write(c, "ERR\n", 4);
    return WEFT_ACTION_NONE;
}

static void test_peer_bytes_in_a_log_line_are_escaped(void **state)
{
    (void)state;
    reset_counters();
    logs_reset();
    weft_config cfg;
    wt_config(&cfg, quote_request, 1);
    cfg.log_cb = capture_log;
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), 0);
    int fd = wt_connect_tcp(s.port);
    assert_true(fd >= 0);

    /* A terminal escape, a forged second log line, a NUL, a backslash and a high byte. */
    static const char evil[] = "\x1b[2J\r\nweft: error: forged\x00\\\xff";
    char err[4];
    assert_int_equal(wt_exchange(fd, evil, sizeof(evil) - 1, err, 4, WT_TIMEOUT_MS), 0);
    assert_memory_equal(err, "ERR\n", 4);

    pthread_mutex_lock(&logs.mu);
    assert_int_equal(logs.loops[0].peer, 1);
    assert_int_equal(logs.unprintable, 0);
    const char *quoted = strchr(logs.last, ':');
    assert_non_null(quoted);
    assert_string_equal(quoted,
                        ": bad request: \"\\x1b[2J\\x0d\\x0aweft: error: forged\\x00\\\\\\xff\"");
    pthread_mutex_unlock(&logs.mu);

    wt_close(fd);
    wt_server_stop(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipelining_non_reader_stops_at_the_mark),
        cmocka_unit_test(test_pipelining_non_reader_closed_at_a_lower_hard_cap),
        cmocka_unit_test(test_pipelining_non_reader_with_small_replies),
        cmocka_unit_test(test_burst_then_idle_holds_no_buffers),
        cmocka_unit_test(test_log_flood_is_limited_and_accounted),
        cmocka_unit_test(test_peer_bytes_in_a_log_line_are_escaped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
