/* Logging what peers did: weft_conn_log writes at most WEFT_PEER_LOG_PER_SEC lines a second per
 * loop and sums up the rest in one line once the second is over, so a hostile peer cannot
 * flood the log; and weft_escape turns peer bytes into printable ASCII that cannot forge a
 * line or a terminal escape. The limit is driven through a real engine on loopback: a line
 * codec server whose requests say how many lines to log, with the log captured through
 * cfg.log_cb. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

/* ---- weft_escape ---- */

/* Undoes weft_escape; returns the byte count, or -1 on anything it never writes. */
static int unescape(const char *s, uint8_t *out)
{
    int n = 0;
    while (*s != '\0') {
        unsigned char ch = (unsigned char)*s;
        if (ch < 0x20 || ch > 0x7e)
            return -1;
        if (ch != '\\') {
            out[n++] = ch;
            s++;
        } else if (s[1] == '\\') {
            out[n++] = '\\';
            s += 2;
        } else if (s[1] == 'x' && s[2] != '\0' && s[3] != '\0') {
            unsigned v;
            char hex[3] = {s[2], s[3], 0};
            if (sscanf(hex, "%2x", &v) != 1)
                return -1;
            out[n++] = (uint8_t)v;
            s += 4;
        } else {
            return -1;
        }
    }
    return n;
}

static void test_escape_passes_printable_bytes_through(void **state)
{
    (void)state;
    const char *in = "GET /index.html HTTP/1.1 ~!@#$%^&*()_+{}|:\"<>?`-=[];',./";
    char out[128];

    size_t n = weft_escape(out, sizeof(out), in, strlen(in));

    assert_int_equal(n, strlen(in));
    assert_string_equal(out, in);
}

static void test_escape_writes_esc_and_controls_as_hex(void **state)
{
    (void)state;
    const char in[] = "\x1b[2J\r\nFAKE\tLINE\x00\x7f\x80\xff";
    char out[128];

    size_t n = weft_escape(out, sizeof(out), in, sizeof(in) - 1);

    assert_string_equal(out, "\\x1b[2J\\x0d\\x0aFAKE\\x09LINE\\x00\\x7f\\x80\\xff");
    assert_int_equal(n, strlen(out));
}

static void test_escape_doubles_the_backslash(void **state)
{
    (void)state;
    /* Otherwise a peer could send the four characters \x1b and be read as an ESC. */
    const char in[] = "a\\x1b\\";
    char out[64];

    size_t n = weft_escape(out, sizeof(out), in, sizeof(in) - 1);

    assert_string_equal(out, "a\\\\x1b\\\\");
    assert_int_equal(n, 8);
}

static void test_escape_of_every_byte_is_printable_and_reversible(void **state)
{
    (void)state;
    uint8_t in[256], back[256];
    char out[256 * 4 + 1];
    for (int i = 0; i < 256; i++)
        in[i] = (uint8_t)i;

    size_t n = weft_escape(out, sizeof(out), in, sizeof(in));

    assert_int_equal(n, strlen(out));
    for (size_t i = 0; i < n; i++)
        assert_true(out[i] >= 0x20 && out[i] <= 0x7e);
    assert_int_equal(unescape(out, back), 256);
    assert_memory_equal(back, in, sizeof(in));
}

/* For every capacity: NUL-terminated within cap, never past it, cut only between escapes
 * (the output is the whole escaping of a prefix of the input), and nothing after a cut. */
static void test_escape_truncates_between_escapes_only(void **state)
{
    (void)state;
    const char in[] = "ab\x1b\\c\r\ndef\xff";
    const size_t in_len = sizeof(in) - 1;
    char full[64];
    size_t full_len = weft_escape(full, sizeof(full), in, in_len);
    assert_int_equal(full_len, 2 + 4 + 2 + 1 + 4 + 4 + 3 + 4);

    for (size_t cap = 1; cap <= full_len + 1; cap++) {
        char out[80];
        memset(out, 'Z', sizeof(out));

        size_t n = weft_escape(out, cap, in, in_len);

        assert_true(n < cap);
        assert_int_equal(out[n], '\0');
        assert_int_equal(strlen(out), n);
        for (size_t i = cap; i < sizeof(out); i++)
            assert_int_equal(out[i], 'Z'); /* nothing written past cap */
        assert_memory_equal(out, full, n);
        /* A prefix of whole escapes: it decodes, and to a prefix of the input. */
        uint8_t back[64];
        int m = unescape(out, back);
        assert_true(m >= 0);
        assert_memory_equal(back, in, (size_t)m);
        char again[64];
        assert_int_equal(weft_escape(again, sizeof(again), in, (size_t)m), n);
        /* It stops at the first piece that does not fit: the bytes after it may not be
         * skipped over, or the line would silently misquote the peer. */
        if ((size_t)m < in_len) {
            char next[8];
            size_t piece = weft_escape(next, sizeof(next), in + m, 1);
            assert_true(n + piece >= cap);
        }
    }
    char exact[64];
    assert_int_equal(weft_escape(exact, full_len + 1, in, in_len), full_len);
    assert_string_equal(exact, full);
}

static void test_escape_small_capacities(void **state)
{
    (void)state;
    char out[4] = {'Z', 'Z', 'Z', 'Z'};

    /* cap 0: nothing at all is written, not even the NUL. */
    assert_int_equal(weft_escape(out, 0, "abc", 3), 0);
    assert_int_equal(out[0], 'Z');
    /* cap 1: the NUL only. */
    assert_int_equal(weft_escape(out, 1, "abc", 3), 0);
    assert_int_equal(out[0], '\0');
    assert_int_equal(out[1], 'Z');
    /* cap 2: one plain byte fits, an escape does not. */
    assert_int_equal(weft_escape(out, 2, "abc", 3), 1);
    assert_string_equal(out, "a");
    assert_int_equal(weft_escape(out, 2, "\x1b", 1), 0);
    assert_string_equal(out, "");
    /* Nothing to escape. */
    assert_int_equal(weft_escape(out, sizeof(out), "abc", 0), 0);
    assert_string_equal(out, "");
}

/* ---- the peer log limit, through a real engine ---- */

#define CAP_LINES 512

typedef struct capture {
    pthread_mutex_t mu;
    char lines[CAP_LINES][512];
    weft_log_level levels[CAP_LINES];
    int n;
} capture;

static capture cap = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void capture_reset(void)
{
    pthread_mutex_lock(&cap.mu);
    cap.n = 0;
    pthread_mutex_unlock(&cap.mu);
}

/* On whichever loop thread logs: keep the line. */
static void capture_log(void *ctx, weft_log_level level, const char *msg)
{
    (void)ctx;
    pthread_mutex_lock(&cap.mu);
    if (cap.n < CAP_LINES) {
        snprintf(cap.lines[cap.n], sizeof(cap.lines[0]), "%s", msg);
        cap.levels[cap.n] = level;
    }
    cap.n++;
    pthread_mutex_unlock(&cap.mu);
}

typedef struct counts {
    int total;
    int peer[2];       /* "conn L/...:" lines of loop L */
    int summaries[2];  /* "loop L: ... and K more in the last second" lines */
    long dropped[2];   /* the Ks added up */
    int first_summary; /* index of the first summary line, or -1 */
    int other;
} counts;

static counts count_lines(void)
{
    counts c;
    memset(&c, 0, sizeof(c));
    c.first_summary = -1;
    pthread_mutex_lock(&cap.mu);
    c.total = cap.n;
    for (int i = 0; i < cap.n && i < CAP_LINES; i++) {
        unsigned loop, slot;
        unsigned long long more;
        int used = 0;
        const char *l = cap.lines[i];
        if (sscanf(l, "conn %u/%u: %n", &loop, &slot, &used) == 2 && used > 0 && loop < 2) {
            c.peer[loop]++;
        } else if (sscanf(l, "loop %u: ... and %llu more in the last second", &loop, &more) == 2 &&
                   loop < 2) {
            c.summaries[loop]++;
            c.dropped[loop] += (long)more;
            if (c.first_summary < 0)
                c.first_summary = i;
        } else {
            c.other++;
        }
    }
    pthread_mutex_unlock(&cap.mu);
    return c;
}

typedef struct want_summaries {
    int loop;
    int n;
} want_summaries;

static bool has_summaries(void *arg)
{
    const want_summaries *w = arg;
    return count_lines().summaries[w->loop] >= w->n;
}

static _Atomic long conn_loop[2]; /* the loop of each test connection, by its order */
static _Atomic long order;        /* places handed out in conn_loop */
static _Atomic long opened;       /* counted only once the place is written */

static weft_action note_loop(weft_conn *c)
{
    long i = atomic_fetch_add(&order, 1);
    if (i < 2)
        atomic_store(&conn_loop[i], (long)weft_conn_get_loop(c));
    atomic_fetch_add(&opened, 1); /* after the store: a waiter on opened sees it */
    return WEFT_ACTION_NONE;
}

/* Each request line is "COUNT LEVEL" (LEVEL: d, i, w or e): log that many lines about the
 * peer, then answer "ok", so the client knows they were all written (or held back). */
static weft_action log_on_request(weft_conn *c)
{
    const uint8_t *f;
    size_t len;
    while (weft_conn_next_frame(c, &f, &len) == WEFT_FRAME) {
        char req[64];
        if (len >= sizeof(req))
            len = sizeof(req) - 1;
        memcpy(req, f, len);
        req[len] = '\0';
        int count = 0;
        char lv = 'w';
        if (sscanf(req, "%d %c", &count, &lv) < 1)
            continue;
        weft_log_level level = lv == 'd'   ? WEFT_LOG_DEBUG
                               : lv == 'i' ? WEFT_LOG_INFO
                               : lv == 'e' ? WEFT_LOG_ERROR
                                           : WEFT_LOG_WARN;
        for (int i = 0; i < count; i++)
            weft_conn_log(c, level, "peer line %d", i);
        (void)weft_conn_write(c, "ok\n", 3);
    }
    return WEFT_ACTION_NONE;
}

static void start_log_server(wt_server *s, unsigned loops, weft_log_level level)
{
    capture_reset();
    atomic_store(&opened, 0);
    atomic_store(&order, 0);
    atomic_store(&conn_loop[0], -1);
    atomic_store(&conn_loop[1], -1);
    weft_config cfg;
    wt_config(&cfg, log_on_request, loops);
    cfg.handler.on_open = note_loop;
    cfg.codec.kind = WEFT_CODEC_LINE;
    cfg.log_cb = capture_log;
    cfg.log_level = level;
    assert_int_equal(wt_server_start(s, &cfg), 0);
}

/* Sends one request and waits for its "ok". */
static void request(int fd, const char *req)
{
    char line[64], ok[3];
    snprintf(line, sizeof(line), "%s\n", req);
    assert_int_equal(wt_send_all(fd, line, strlen(line), WT_TIMEOUT_MS), 0);
    assert_int_equal(wt_recv_exact(fd, ok, 3, WT_TIMEOUT_MS), 0);
    assert_memory_equal(ok, "ok\n", 3);
}

static void test_thousand_lines_give_twenty_and_a_summary(void **state)
{
    (void)state;
    wt_server s;
    start_log_server(&s, 1, WEFT_LOG_WARN);
    int fd = wt_connect_tcp(s.port);
    assert_true(fd >= 0);

    request(fd, "1000 w");
    /* Twenty are written at once; the count of the rest comes once the second is over. */
    counts c = count_lines();
    assert_int_equal(c.peer[0], WEFT_PEER_LOG_PER_SEC);
    want_summaries w = {0, 1};
    assert_true(wt_wait_for(has_summaries, &w, WT_TIMEOUT_MS));

    c = count_lines();
    assert_int_equal(c.peer[0], WEFT_PEER_LOG_PER_SEC);
    assert_int_equal(c.summaries[0], 1);
    assert_int_equal(c.dropped[0], 1000 - WEFT_PEER_LOG_PER_SEC);
    assert_int_equal(c.first_summary, WEFT_PEER_LOG_PER_SEC); /* after the lines it sums up */
    assert_int_equal(c.other, 0);
    pthread_mutex_lock(&cap.mu);
    assert_string_equal(cap.lines[0] + strcspn(cap.lines[0], ":"), ": peer line 0");
    assert_string_equal(cap.lines[19] + strcspn(cap.lines[19], ":"), ": peer line 19");
    assert_int_equal(cap.levels[0], WEFT_LOG_WARN);
    pthread_mutex_unlock(&cap.mu);
    /* And nothing more: the summary is written once. */
    wt_sleep_ms(300);
    assert_int_equal(count_lines().total, WEFT_PEER_LOG_PER_SEC + 1);

    wt_close(fd);
    wt_server_stop(&s);
}

static void test_the_limit_starts_again_each_second(void **state)
{
    (void)state;
    wt_server s;
    start_log_server(&s, 1, WEFT_LOG_WARN);
    int fd = wt_connect_tcp(s.port);
    assert_true(fd >= 0);

    request(fd, "500 w");
    want_summaries w = {0, 1};
    assert_true(wt_wait_for(has_summaries, &w, WT_TIMEOUT_MS));
    request(fd, "500 w"); /* a later second: twenty more */
    w.n = 2;
    assert_true(wt_wait_for(has_summaries, &w, WT_TIMEOUT_MS));

    counts c = count_lines();
    assert_int_equal(c.peer[0], 2 * WEFT_PEER_LOG_PER_SEC);
    assert_int_equal(c.summaries[0], 2);
    assert_int_equal(c.dropped[0], 2 * (500 - WEFT_PEER_LOG_PER_SEC));
    assert_int_equal(c.first_summary, WEFT_PEER_LOG_PER_SEC); /* between the two bursts */
    assert_int_equal(c.other, 0);

    wt_close(fd);
    wt_server_stop(&s);
}

/* Two loops, two budgets: a flood on one loop does not silence the other. */
static void test_each_loop_has_its_own_budget(void **state)
{
    (void)state;
    wt_server s;
    start_log_server(&s, 2, WEFT_LOG_WARN);
    int a = wt_connect_tcp(s.port);
    int b = wt_connect_tcp(s.port);
    assert_true(a >= 0 && b >= 0);
    assert_true(wt_wait_count(&opened, 2, WT_TIMEOUT_MS));
    assert_true(atomic_load(&conn_loop[0]) != atomic_load(&conn_loop[1])); /* round-robin */

    request(a, "100 w");
    request(b, "100 w");
    want_summaries w0 = {0, 1}, w1 = {1, 1};
    assert_true(wt_wait_for(has_summaries, &w0, WT_TIMEOUT_MS));
    assert_true(wt_wait_for(has_summaries, &w1, WT_TIMEOUT_MS));

    counts c = count_lines();
    for (int l = 0; l < 2; l++) {
        assert_int_equal(c.peer[l], WEFT_PEER_LOG_PER_SEC);
        assert_int_equal(c.summaries[l], 1);
        assert_int_equal(c.dropped[l], 100 - WEFT_PEER_LOG_PER_SEC);
    }
    assert_int_equal(c.other, 0);

    wt_close(a);
    wt_close(b);
    wt_server_stop(&s);
}

/* Lines below cfg.log_level are not written and do not use up the budget. */
static void test_filtered_lines_cost_nothing(void **state)
{
    (void)state;
    wt_server s;
    start_log_server(&s, 1, WEFT_LOG_WARN);
    int fd = wt_connect_tcp(s.port);
    assert_true(fd >= 0);

    request(fd, "1000 i");
    request(fd, "5 e");
    wt_sleep_ms(1300); /* a second boundary and more: a summary would have come by now */

    counts c = count_lines();
    assert_int_equal(c.peer[0], 5);
    assert_int_equal(c.summaries[0], 0);
    assert_int_equal(c.other, 0);
    pthread_mutex_lock(&cap.mu);
    assert_int_equal(cap.levels[0], WEFT_LOG_ERROR);
    pthread_mutex_unlock(&cap.mu);

    wt_close(fd);
    wt_server_stop(&s);
}

/* With log_level above WARN the lines held back are still summed up: the summary is written
 * at a level that passes the filter the lines it counts passed. */
static void test_summary_passes_a_strict_filter(void **state)
{
    (void)state;
    wt_server s;
    start_log_server(&s, 1, WEFT_LOG_ERROR);
    int fd = wt_connect_tcp(s.port);
    assert_true(fd >= 0);

    request(fd, "100 e");
    want_summaries w = {0, 1};
    assert_true(wt_wait_for(has_summaries, &w, WT_TIMEOUT_MS));

    counts c = count_lines();
    assert_int_equal(c.peer[0], WEFT_PEER_LOG_PER_SEC);
    assert_int_equal(c.dropped[0], 100 - WEFT_PEER_LOG_PER_SEC);
    pthread_mutex_lock(&cap.mu);
    assert_true(cap.levels[c.first_summary] >= WEFT_LOG_ERROR);
    pthread_mutex_unlock(&cap.mu);

    wt_close(fd);
    wt_server_stop(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape_passes_printable_bytes_through),
        cmocka_unit_test(test_escape_writes_esc_and_controls_as_hex),
        cmocka_unit_test(test_escape_doubles_the_backslash),
        cmocka_unit_test(test_escape_of_every_byte_is_printable_and_reversible),
        cmocka_unit_test(test_escape_truncates_between_escapes_only),
        cmocka_unit_test(test_escape_small_capacities),
        cmocka_unit_test(test_thousand_lines_give_twenty_and_a_summary),
        cmocka_unit_test(test_the_limit_starts_again_each_second),
        cmocka_unit_test(test_each_loop_has_its_own_budget),
        cmocka_unit_test(test_filtered_lines_cost_nothing),
        cmocka_unit_test(test_summary_passes_a_strict_filter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
