/* weft-redis against real clients: the binary runs as a child on a free 127.0.0.1 port and
 * redis-cli, redis-benchmark and raw sockets talk to it. Every wait is bounded. */
#include <errno.h>
#include <stdbool.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"
#include "spawn.h"

#ifndef WEFT_REDIS_BIN
#error "WEFT_REDIS_BIN must name the weft-redis binary"
#endif

typedef struct server {
    wt_child *child;
    int port;
} server;

/* The running child, killed by the teardown if a failed assertion skipped server_stop. */
static wt_child live = WT_CHILD_NONE;

static int teardown(void **state)
{
    (void)state;
    wt_child_kill(&live);
    return 0;
}

/* Starts weft-redis on port 0 with extra arguments (NULL-terminated, may be NULL) and reads
 * the port it printed. With capture_log its stderr goes to an unnamed file read back by
 * server_log. */
static server server_start_with(int loops, const char *const *extra, bool capture_log)
{
    server s = {.child = &live};
    char loops_s[16], line[256];
    const char *args[32] = {"weft-redis", "--port", "0", "--loops", loops_s};
    size_t na = 5;

    snprintf(loops_s, sizeof(loops_s), "%d", loops);
    for (; extra != NULL && *extra != NULL && na < 31; extra++)
        args[na++] = *extra;
    args[na] = NULL;
    int rc = wt_child_start(&live, WEFT_REDIS_BIN, args, capture_log, line, sizeof(line), 10000);
    if (rc != 0)
        fail_msg("weft-redis did not say it was ready: '%s'", line);
    assert_int_equal(sscanf(line, "weft-redis ready on port %d", &s.port), 1);
    return s;
}

static server server_start(int loops)
{
    return server_start_with(loops, NULL, false);
}

/* What the server wrote to stderr so far (captured servers only); the caller frees it. */
static char *server_log(const server *s)
{
    char *log = wt_child_log(s->child);
    assert_non_null(log);
    return log;
}

/* Waits up to ms for text to appear in the server's log. */
static bool server_log_wait(const server *s, const char *text, int ms)
{
    for (int waited = 0;; waited += 20) {
        char *log = server_log(s);
        bool found = strstr(log, text) != NULL;
        free(log);
        if (found || waited >= ms)
            return found;
        wt_sleep_ms(20);
    }
}

/* The stop signal, then a clean exit. The server may take its stop_timeout_ms (5 s) to flush
 * a connection that lingers, longer on a loaded machine or under a sanitizer: the wait is
 * 30 s, a bound on a hang rather than on speed. */
static void server_stop(server *s)
{
    int rc = wt_child_stop(s->child, 30000);
    if (rc == -2)
        fail_msg("weft-redis did not stop on the stop signal");
    assert_int_equal(rc, 0);
}

/* Runs a shell command (bounded by timeout(1) inside; the wait for it by timeout_ms where it
 * is polled for) and returns its stdout; exit status in *rc. A system with no shell for the
 * clients skips the case. */
static char *run(int *rc, int timeout_ms, const char *fmt, ...)
{
    char cmd[2048], *out;
    va_list ap;

    WT_SKIP_IF(wt_missing_shell());
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    out = wt_shell(rc, timeout_ms, cmd);
    assert_non_null(out);
    return out;
}

/* Fewer bytes and requests where the test runs under a heavy slowdown: under TSan or
 * valgrind (WEFT_TEST_SLOW), and on Windows, where it runs under Wine and every socket call
 * of the server is a round trip to wineserver (a redis-benchmark request takes a
 * millisecond or two there). Every assertion is kept. */
static bool fewer(void)
{
#ifdef _WIN32
    return true;
#else
    return wt_slow();
#endif
}

/* The wait for one redis-cli (which bounds itself to 10 s): Wine starts each one in a few
 * tens of milliseconds, a loaded machine takes longer. */
#define CLI_WAIT_MS 30000

static void cli_expect(const server *s, const char *args, const char *want)
{
    int rc;
    char *out = run(&rc, CLI_WAIT_MS, "timeout 10 redis-cli -p %d %s 2>&1", s->port, args);
    /* Some redis-cli versions exit with 1 after an error reply (and print a blank line). */
    bool is_error = strncmp(want, "ERR", 3) == 0 || strncmp(want, "WRONGTYPE", 9) == 0;
    if ((rc != 0 && !(is_error && rc == 1)) || strcmp(out, want) != 0)
        fail_msg("redis-cli %s: rc %d, got '%s', want '%s'", args, rc, out, want);
    free(out);
}

/* As cli_expect, for a reply that may be either of two. */
static void cli_expect_either(const server *s, const char *args, const char *want,
                              const char *or_want)
{
    int rc;
    char *out = run(&rc, CLI_WAIT_MS, "timeout 10 redis-cli -p %d %s 2>&1", s->port, args);
    if (rc != 0 || (strcmp(out, want) != 0 && strcmp(out, or_want) != 0))
        fail_msg("redis-cli %s: rc %d, got '%s', want '%s' or '%s'", args, rc, out, want, or_want);
    free(out);
}

/* A client socket with a receive timeout of 10 s (WT_TIMEOUT_MS). */
static int connect_to(const server *s)
{
    int fd = wt_connect_tcp(s->port);
    assert_true(fd >= 0);
    return fd;
}

static void send_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t w = send(fd, p, len < (1u << 30) ? len : (1u << 30), MSG_NOSIGNAL);
        assert_true(w > 0);
        p += w;
        len -= (size_t)w;
    }
}

/* Reads until `lines` CRLF-terminated lines arrived (or EOF); returns them. */
static char *read_lines(int fd, size_t lines, size_t *len)
{
    size_t cap = 1 << 20, n = 0, seen = 0;
    char *buf = malloc(cap);
    while (seen < lines) {
        ssize_t r = recv(fd, buf + n, cap - n - 1, 0);
        if (r <= 0)
            break;
        for (ssize_t i = 0; i < r; i++)
            seen += buf[n + (size_t)i] == '\n';
        n += (size_t)r;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static void test_redis_cli_round_trips_every_family(void **state)
{
    server s = server_start(2);
    (void)state;
    cli_expect(&s, "PING", "PONG\n");
    cli_expect(&s, "SET greeting hello", "OK\n");
    cli_expect(&s, "GET greeting", "hello\n");
    cli_expect(&s, "APPEND greeting ' world'", "11\n");
    cli_expect(&s, "INCRBY n 41", "41\n");
    cli_expect(&s, "INCR n", "42\n");
    cli_expect(&s, "MSET a 1 b 2", "OK\n");
    cli_expect(&s, "MGET a b c", "1\n2\n\n");
    cli_expect(&s, "EXPIRE a 100", "1\n");
    /* TTL rounds to whole seconds: past half a second after the EXPIRE (one slow start of
     * redis-cli on a loaded machine) it reads 99. */
    cli_expect_either(&s, "TTL a", "100\n", "99\n");
    cli_expect(&s, "TYPE a", "string\n");
    cli_expect(&s, "KEYS 'gree*'", "greeting\n");
    cli_expect(&s, "RPUSH list x y z", "3\n");
    cli_expect(&s, "LRANGE list 0 -1", "x\ny\nz\n");
    cli_expect(&s, "LPOP list 2", "x\ny\n");
    cli_expect(&s, "HSET h f1 v1 f2 v2", "2\n");
    cli_expect(&s, "HGET h f2", "v2\n");
    cli_expect(&s, "HLEN h", "2\n");
    cli_expect(&s, "SADD set m1 m2 m1", "2\n");
    cli_expect(&s, "SISMEMBER set m2", "1\n");
    cli_expect(&s, "SCARD set", "2\n");
    cli_expect(&s, "GET list",
               "WRONGTYPE Operation against a key holding the wrong kind of value\n\n");
    cli_expect(&s, "NOSUCH x", "ERR unknown command 'NOSUCH', with args beginning with: 'x' \n\n");
    cli_expect(&s, "DBSIZE", "7\n");
    cli_expect(&s, "FLUSHALL", "OK\n");
    cli_expect(&s, "DBSIZE", "0\n");
    server_stop(&s);
}

static void test_pipeline_of_ten_thousand(void **state)
{
    server s = server_start(1);
    const char *cmd = "*2\r\n$4\r\nINCR\r\n$4\r\npipe\r\n";
    size_t clen = strlen(cmd), len;
    char *batch = malloc(clen * 10000), *out;
    int fd = connect_to(&s);

    (void)state;
    for (int i = 0; i < 10000; i++)
        memcpy(batch + (size_t)i * clen, cmd, clen);
    send_all(fd, batch, clen * 10000);
    out = read_lines(fd, 10000, &len);
    assert_true(len > 8);
    assert_string_equal(out + len - 8, ":10000\r\n");
    assert_memory_equal(out, ":1\r\n:2\r\n", 8);
    free(out);
    free(batch);
    wt_close(fd);
    server_stop(&s);
}

static void test_redis_benchmark_reports_no_errors(void **state)
{
    server s = server_start(2);
    int rc;
    char *out = run(&rc, 120000,
                    "timeout 60 redis-benchmark -p %d -q -n %d -c 10 "
                    "-t ping,set,get,incr,lpush,mset 2>&1",
                    s.port, fewer() ? 200 : 2000);
    (void)state;
    if (rc != 0 || strstr(out, "rror") != NULL || strstr(out, "MSET") == NULL)
        fail_msg("redis-benchmark: rc %d:\n%s", rc, out);
    free(out);
    server_stop(&s);
}

static void test_fifty_clients_incr_one_key_on_four_loops(void **state)
{
    server s = server_start(4);
    int fds[50];
    const char *cmd = "*2\r\n$4\r\nINCR\r\n$6\r\nshared\r\n";
    size_t clen = strlen(cmd), len;
    char *batch = malloc(clen * 200), *out;

    (void)state;
    for (int i = 0; i < 200; i++)
        memcpy(batch + (size_t)i * clen, cmd, clen);
    for (int c = 0; c < 50; c++)
        fds[c] = connect_to(&s);
    for (int c = 0; c < 50; c++)
        send_all(fds[c], batch, clen * 200);
    for (int c = 0; c < 50; c++) {
        out = read_lines(fds[c], 200, &len);
        assert_int_equal(strstr(out, "-") == NULL, 1);
        free(out);
        wt_close(fds[c]);
    }
    cli_expect(&s, "GET shared", "10000\n");
    free(batch);
    server_stop(&s);
}

static void test_garbage_closes_only_its_connection(void **state)
{
    server s = server_start(2);
    int bad = connect_to(&s), good = connect_to(&s);
    char buf[256];
    size_t len;
    char *out;
    ssize_t r;

    (void)state;
    send_all(good, "PING\r\n", 6);
    out = read_lines(good, 1, &len);
    assert_string_equal(out, "+PONG\r\n");
    free(out);
    send_all(bad, "*1\r\n$x\r\n", 8);
    out = read_lines(bad, 1, &len);
    assert_string_equal(out, "-ERR Protocol error: invalid bulk length\r\n");
    free(out);
    r = recv(bad, buf, sizeof(buf), 0);
    assert_int_equal(r, 0); /* closed by the server */
    {
        const char *set = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n";
        send_all(good, set, strlen(set));
    }
    out = read_lines(good, 1, &len);
    assert_string_equal(out, "+OK\r\n");
    free(out);
    wt_close(bad);
    wt_close(good);
    server_stop(&s);
}

/* Keys with a TTL go away by themselves: nobody touches them after it passed, and the
 * tick's sweep removes them (DBSIZE counts what the keyspace holds, expired or not). The
 * TTL is long enough for the GET to come first even when starting redis-cli is slow, and
 * the sweep is waited for by its effect, not for a fixed time. */
static void test_keys_expire_in_real_time(void **state)
{
    server s = server_start(1);
    (void)state;
    cli_expect(&s, "SET lazy v PX 2000", "OK\n");
    cli_expect(&s, "SET active v PX 2000", "OK\n");
    cli_expect(&s, "GET lazy", "v\n");
    int64_t t0 = wt_now_ms();
    for (;;) {
        int rc;
        char *out = run(&rc, CLI_WAIT_MS, "timeout 10 redis-cli -p %d DBSIZE 2>&1", s.port);
        bool empty = rc == 0 && strcmp(out, "0\n") == 0;
        free(out);
        if (empty)
            break;
        assert_true(wt_now_ms() - t0 < 20000);
        wt_sleep_ms(100);
    }
    cli_expect(&s, "GET lazy", "\n");
    cli_expect(&s, "EXISTS active", "0\n");
    server_stop(&s);
}

/* ---- hostile clients: output bounded, big requests intact, peer bytes escaped ---- */

/* A GET of it answers about 24,000 times the 22 bytes asked. Kept at half the reply buffer
 * weft-redis keeps, so sanitizer builds measure the server, not their own allocator. */
#define BIG_VALUE  (512 * 1024)
#define PIPELINE   2000
#define HIGH_WATER (1024 * 1024) /* the engine's default mark */

/* The pattern a value of ours holds at offset i: a prime period, aligned with nothing. */
static uint8_t pattern(size_t i)
{
    return (uint8_t)('a' + i % 23);
}

/* SET key to n pattern bytes on fd, sent as it would come from a client, and checks +OK. */
static void set_pattern(int fd, const char *key, size_t n)
{
    char head[96];
    uint8_t chunk[64 * 1024];
    size_t len;
    char *out;
    int hlen = snprintf(head, sizeof(head), "*3\r\n$3\r\nSET\r\n$%zu\r\n%s\r\n$%zu\r\n",
                        strlen(key), key, n);

    send_all(fd, head, (size_t)hlen);
    for (size_t off = 0; off < n;) {
        size_t k = n - off < sizeof(chunk) ? n - off : sizeof(chunk);
        for (size_t i = 0; i < k; i++)
            chunk[i] = pattern(off + i);
        send_all(fd, chunk, k);
        off += k;
    }
    send_all(fd, "\r\n", 2);
    out = read_lines(fd, 1, &len);
    assert_string_equal(out, "+OK\r\n");
    free(out);
}

/* Sends one inline command and returns the reply's first line (freed by the caller). */
static char *ask(int fd, const char *cmd)
{
    size_t len;
    send_all(fd, cmd, strlen(cmd));
    send_all(fd, "\r\n", 2);
    return read_lines(fd, 1, &len);
}

/* A number from the server's INFO, e.g. "total_commands_processed". */
static unsigned long long info_field(int fd, const char *name)
{
    size_t cap = 1 << 16, n = 0, want_len = 0;
    char *buf = malloc(cap), key[96], *p, *eol;
    unsigned long long v;

    send_all(fd, "INFO\r\n", 6);
    /* "$N\r\n", N bytes of text, "\r\n". */
    while (want_len == 0 || n < want_len) {
        ssize_t r = recv(fd, buf + n, cap - 1 - n, 0);
        assert_true(r > 0);
        n += (size_t)r;
        buf[n] = '\0';
        if (want_len == 0 && (eol = strstr(buf, "\r\n")) != NULL)
            want_len = (size_t)(eol - buf) + 2 + strtoul(buf + 1, NULL, 10) + 2;
        assert_true(want_len < cap);
    }
    snprintf(key, sizeof(key), "\r\n%s:", name);
    p = strstr(buf, key);
    if (p == NULL)
        fail_msg("INFO has no %s:\n%s", name, buf);
    v = strtoull(p + strlen(key), NULL, 10);
    free(buf);
    return v;
}

/* A client that only sends: its receive buffer is small, so the server's output for it
 * backs up soon. */
static int connect_non_reader(const server *s)
{
    int fd = wt_socket_tcp();
    assert_true(fd >= 0);
    assert_int_equal(wt_setsockopt_int(fd, SOL_SOCKET, SO_RCVBUF, 4096), 0);
    assert_int_equal(wt_connect_fd(fd, s->port), 0);
    return fd;
}

static void send_gets(int fd, const char *key, int n)
{
    char one[64];
    int len = snprintf(one, sizeof(one), "*2\r\n$3\r\nGET\r\n$%zu\r\n%s\r\n", strlen(key), key);
    char *batch = malloc((size_t)len * (size_t)n);
    for (int i = 0; i < n; i++)
        memcpy(batch + (size_t)i * (size_t)len, one, (size_t)len);
    send_all(fd, batch, (size_t)len * (size_t)n);
    free(batch);
}

/* Reads and drops up to max bytes; returns how many came before EOF, a reset or max. */
static size_t drain(int fd, size_t max, bool *closed)
{
    static char buf[256 * 1024];
    size_t n = 0;
    *closed = false;
    while (n < max) {
        ssize_t r = recv(fd, buf, max - n < sizeof(buf) ? max - n : sizeof(buf), 0);
        if (r == 0 || (r < 0 && wt_sock_errno() == ECONNRESET)) {
            *closed = true;
            break;
        }
        assert_true(r > 0); /* a timeout (10 s) fails here */
        n += (size_t)r;
    }
    return n;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* Sanitizers keep shadow memory beside every byte the server touches, and ASan keeps freed
 * blocks a while: a server so built may use a few times what the bound allows. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifdef SANITIZED
#define MEM_SLACK_KB (24 * 1024)
#else
#define MEM_SLACK_KB (4 * 1024)
#endif

/* A client pipelines GETs whose replies are 24,000 times the request and never reads. The
 * server stops executing its pipeline at the high-water mark, so it holds the mark plus about
 * one reply for it, not 2000 replies (1 GB); another client is served meanwhile; and once
 * the client reads, the pipeline goes on. */
static void test_client_that_never_reads_is_held_at_the_mark(void **state)
{
    server s = server_start_with(1, NULL, true);
    int good = connect_to(&s), slow, asked = 0;
    unsigned long long before, peak, ran;
    long base_kb, grew_kb;
    bool closed;
    char *out;

    (void)state;
    set_pattern(good, "big", BIG_VALUE);
    /* Where the peak cannot be reset (Windows) it is the one since the start: a higher
     * mark, so the bound below only gets stricter. */
    if (!wt_child_reset_peak(s.child))
        print_message("the peak resident set is the server's since it started\n");
    base_kb = wt_child_rss_kb(s.child);
    assert_true(base_kb > 0);
    before = info_field(good, "total_commands_processed");
    slow = connect_non_reader(&s);
    send_gets(slow, "big", PIPELINE);
    /* Its output reaches the mark (the kernel's buffers fill first), then nothing more runs. */
    do {
        wt_sleep_ms(20);
        asked++;
    } while (asked < 500 && info_field(good, "client_recent_max_output_buffer") < HIGH_WATER);
    wt_sleep_ms(300);
    out = ask(good, "PING");
    assert_string_equal(out, "+PONG\r\n");
    free(out);
    peak = info_field(good, "client_recent_max_output_buffer");
    /* What ran besides the commands this client sent meanwhile (the INFOs, one PING). */
    ran = info_field(good, "total_commands_processed") - before - (unsigned)asked - 3;
    grew_kb = wt_child_peak_kb(s.child) - base_kb;
    assert_true(grew_kb + base_kb > 0);
    if (ran >= 100 || peak < HIGH_WATER || peak > HIGH_WATER + BIG_VALUE + 64 * 1024 ||
        grew_kb > (HIGH_WATER + BIG_VALUE) / 1024 + MEM_SLACK_KB)
        fail_msg("ran %llu of %d GETs, output buffer peak %llu, RSS grew %ld KiB", ran, PIPELINE,
                 peak, grew_kb);
    print_message("ran %llu of %d GETs, output buffer peak %llu, RSS grew %ld KiB\n", ran, PIPELINE,
                  peak, grew_kb);
    /* Not closed (the hard limit is 64 MiB): reading lets the pipeline go on. */
    assert_int_equal(drain(slow, 16 * 1024 * 1024, &closed), 16 * 1024 * 1024);
    assert_false(closed);
    assert_true(info_field(good, "total_commands_processed") - before > ran + 16);
    wt_close(slow);
    wt_close(good);
    server_stop(&s);
}

/* With --client-output-limit 1mb 0 0, the same client is closed at the hard limit, with one
 * log line saying why; the other client is still served. */
static void test_client_over_the_hard_limit_is_closed(void **state)
{
    const char *const args[] = {"--client-output-limit", "1mb", "0", "0", NULL};
    server s = server_start_with(1, args, true);
    int good = connect_to(&s), slow;
    bool closed;
    char *out, *log;

    (void)state;
    set_pattern(good, "big", BIG_VALUE);
    slow = connect_non_reader(&s);
    send_gets(slow, "big", PIPELINE);
    assert_true(server_log_wait(&s, "closed for overcoming of output buffer limits", 10000));
    assert_true(drain(slow, (size_t)PIPELINE * BIG_VALUE, &closed) < (size_t)PIPELINE * BIG_VALUE);
    assert_true(closed);
    out = ask(good, "PING");
    assert_string_equal(out, "+PONG\r\n");
    free(out);
    log = server_log(&s);
    assert_int_equal(count(log, "closed for overcoming of output buffer limits"), 1);
    if (strstr(log, "client-output-buffer-limit normal hard limit 1048576") == NULL)
        fail_msg("log: %s", log);
    free(log);
    wt_close(slow);
    wt_close(good);
    server_stop(&s);
}

/* With --client-output-limit 0 256kb 1, a client whose output stays above 256 KiB (held at
 * the mark, it writes nothing more) is closed once a second has passed. */
static void test_client_over_the_soft_limit_too_long_is_closed(void **state)
{
    const char *const args[] = {"--client-output-limit", "0", "256kb", "1", NULL};
    server s = server_start_with(1, args, true);
    int good = connect_to(&s), slow;
    bool closed;
    char *out, *log;

    (void)state;
    set_pattern(good, "big", BIG_VALUE);
    slow = connect_non_reader(&s);
    send_gets(slow, "big", PIPELINE);
    assert_true(server_log_wait(&s, "closed for overcoming of output buffer limits", 10000));
    (void)drain(slow, (size_t)PIPELINE * BIG_VALUE, &closed);
    assert_true(closed);
    out = ask(good, "PING");
    assert_string_equal(out, "+PONG\r\n");
    free(out);
    log = server_log(&s);
    if (strstr(log, "soft limit 262144 for more than 1 s") == NULL)
        fail_msg("log: %s", log);
    free(log);
    wt_close(slow);
    wt_close(good);
    server_stop(&s);
}

/* A big SET arrives intact, and ingesting it touches fresh memory in proportion to its size:
 * counted in the server's page faults, not timed. 256 MiB; 64 with fewer() (TSan, valgrind,
 * Wine), where 256 MiB passed alone but outlasted the reply's read timeout with the suite
 * running beside it (TSan), or took 15 s (Wine). */
static size_t big_set_mib(void)
{
    return fewer() ? 64 : 256;
}

static void test_big_set_arrives_intact(void **state)
{
    server s = server_start(1);
    int fd = connect_to(&s);
    size_t n = big_set_mib() << 20, pages = n / 4096, offs[] = {0, n / 2 + 7, n - 16};
    unsigned long faults;
    const char *no_faults;
    char want[64], cmd[96], *out;

    (void)state;
    no_faults = wt_missing_child_faults(s.child);
    faults = wt_child_faults(s.child);
    set_pattern(fd, "huge", n);
    faults = wt_child_faults(s.child) - faults;
    snprintf(want, sizeof(want), ":%zu\r\n", n);
    out = ask(fd, "STRLEN huge");
    assert_string_equal(out, want);
    free(out);
    for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
        size_t len;
        char body[16];
        for (size_t j = 0; j < 16; j++)
            body[j] = (char)pattern(offs[i] + j);
        snprintf(cmd, sizeof(cmd), "GETRANGE huge %zu %zu", offs[i], offs[i] + 15);
        send_all(fd, cmd, strlen(cmd));
        send_all(fd, "\r\n", 2);
        out = read_lines(fd, 2, &len);
        assert_int_equal(len, 5 + 16 + 2);
        assert_memory_equal(out, "$16\r\n", 5);
        assert_memory_equal(out + 5, body, 16);
        free(out);
    }
    wt_close(fd);
    server_stop(&s);
    /* Last, so that what can be checked was, where the faults are not counted. */
    if (no_faults != NULL) {
        print_message("SKIPPED: the page-fault bound (the value arrived intact): %s\n", no_faults);
        skip();
    }
    print_message("%lu page faults for a %lu-page value\n", faults, (unsigned long)pages);
#ifndef SANITIZED
    /* The inbound buffer, its growth and the stored value each touch the bytes about once.
     * Not under a sanitizer, whose allocator moves every realloc and faults in shadow pages:
     * there the count measures the sanitizer. */
    if (faults > 5 * pages)
        fail_msg("%lu page faults for a %lu-page value", faults, (unsigned long)pages);
#endif
}

/* Peer bytes quoted back, in the error reply and in the log, are escaped: an ESC arrives as
 * \x1b. Protocol errors are logged at most 20 lines a second per loop. */
static void test_peer_bytes_are_escaped_in_replies_and_logs(void **state)
{
    server s = server_start_with(1, NULL, true);
    int fd = connect_to(&s);
    char *out, *log;
    size_t len;
    int64_t t0;
    long secs;

    (void)state;
    out = ask(fd, "\x1b[2Jwipe \x1b]0;title\x07");
    assert_string_equal(out, "-ERR unknown command '\\x1b[2Jwipe', with args beginning with: "
                             "'\\x1b]0;title\\x07' \r\n");
    free(out);
    wt_close(fd);
    t0 = wt_now_ms();
    for (int i = 0; i < 50; i++) {
        fd = connect_to(&s);
        send_all(fd, "*1\r\n\x1b[31m", 9);
        out = read_lines(fd, 1, &len);
        assert_string_equal(out, "-ERR Protocol error: expected '$', got '\\x1b'\r\n");
        free(out);
        wt_close(fd);
    }
    secs = (long)((wt_now_ms() - t0) / 1000) + 1;
    assert_true(server_log_wait(&s, "got '\\x1b'", 5000));
    log = server_log(&s);
    assert_null(strchr(log, '\x1b'));
    if (count(log, "expected '$'") > (size_t)(20 * (secs + 1)))
        fail_msg("%lu protocol error lines in %ld s", (unsigned long)count(log, "expected '$'"),
                 secs);
    free(log);
    server_stop(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_redis_cli_round_trips_every_family, teardown),
        cmocka_unit_test_teardown(test_pipeline_of_ten_thousand, teardown),
        cmocka_unit_test_teardown(test_redis_benchmark_reports_no_errors, teardown),
        cmocka_unit_test_teardown(test_fifty_clients_incr_one_key_on_four_loops, teardown),
        cmocka_unit_test_teardown(test_garbage_closes_only_its_connection, teardown),
        cmocka_unit_test_teardown(test_keys_expire_in_real_time, teardown),
        cmocka_unit_test_teardown(test_client_that_never_reads_is_held_at_the_mark, teardown),
        cmocka_unit_test_teardown(test_client_over_the_hard_limit_is_closed, teardown),
        cmocka_unit_test_teardown(test_client_over_the_soft_limit_too_long_is_closed, teardown),
        cmocka_unit_test_teardown(test_big_set_arrives_intact, teardown),
        cmocka_unit_test_teardown(test_peer_bytes_are_escaped_in_replies_and_logs, teardown),
    };
#ifdef SIGPIPE
    signal(SIGPIPE, SIG_IGN);
#endif
    return cmocka_run_group_tests(tests, NULL, NULL);
}
