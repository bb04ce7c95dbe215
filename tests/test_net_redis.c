/* weft-redis against real clients: the binary runs as a child on a free 127.0.0.1 port and
 * redis-cli, redis-benchmark and raw sockets talk to it. Every wait is bounded. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#ifndef WEFT_REDIS_BIN
#error "WEFT_REDIS_BIN must name the weft-redis binary"
#endif

typedef struct server {
    pid_t pid;
    int port;
} server;

/* The running child, killed by the teardown if a failed assertion skipped server_stop. */
static pid_t live_pid;

static int teardown(void **state)
{
    (void)state;
    if (live_pid > 0) {
        kill(live_pid, SIGKILL);
        waitpid(live_pid, NULL, 0);
        live_pid = 0;
    }
    return 0;
}

/* Starts weft-redis on port 0 and reads the port it printed. */
static server server_start(int loops)
{
    int fds[2];
    server s = {0};
    char loops_s[16], line[256];
    size_t n = 0;

    assert_int_equal(pipe(fds), 0);
    snprintf(loops_s, sizeof(loops_s), "%d", loops);
    s.pid = fork();
    assert_true(s.pid >= 0);
    if (s.pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        execl(WEFT_REDIS_BIN, "weft-redis", "--port", "0", "--loops", loops_s, (char *)NULL);
        _exit(127);
    }
    live_pid = s.pid;
    close(fds[1]);
    while (n < sizeof(line) - 1) {
        struct pollfd p = {.fd = fds[0], .events = POLLIN};
        ssize_t r;
        assert_true(poll(&p, 1, 10000) == 1);
        r = read(fds[0], line + n, 1);
        assert_true(r == 1);
        if (line[n++] == '\n')
            break;
    }
    line[n] = '\0';
    close(fds[0]);
    assert_int_equal(sscanf(line, "weft-redis ready on port %d", &s.port), 1);
    return s;
}

/* SIGTERM, then a clean exit. The server may take its stop_timeout_ms (5 s) to flush a
 * connection that lingers, longer on a loaded machine or under a sanitizer: the wait is
 * 30 s, a bound on a hang rather than on speed. */
static void server_stop(server *s)
{
    int status = 0;
    live_pid = 0;
    kill(s->pid, SIGTERM);
    for (int i = 0; i < 600; i++) {
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
            assert_true(WIFEXITED(status));
            assert_int_equal(WEXITSTATUS(status), 0);
            return;
        }
        usleep(50 * 1000);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, &status, 0);
    fail_msg("weft-redis did not stop on SIGTERM");
}

/* Runs a shell command (bounded by timeout(1)) and returns its stdout; exit status in *rc. */
static char *run(int *rc, const char *fmt, ...)
{
    char cmd[2048], *out = calloc(1, 1 << 20);
    size_t n = 0, r;
    va_list ap;
    FILE *f;
    int st;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    f = popen(cmd, "r");
    assert_non_null(f);
    while ((r = fread(out + n, 1, (1 << 20) - 1 - n, f)) > 0)
        n += r;
    st = pclose(f);
    if (rc != NULL)
        *rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return out;
}

static void cli_expect(const server *s, const char *args, const char *want)
{
    int rc;
    char *out = run(&rc, "timeout 10 redis-cli -p %d %s 2>&1", s->port, args);
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
    char *out = run(&rc, "timeout 10 redis-cli -p %d %s 2>&1", s->port, args);
    if (rc != 0 || (strcmp(out, want) != 0 && strcmp(out, or_want) != 0))
        fail_msg("redis-cli %s: rc %d, got '%s', want '%s' or '%s'", args, rc, out, want, or_want);
    free(out);
}

static int connect_to(const server *s)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {.tv_sec = 10};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static void send_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
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
    close(fd);
    server_stop(&s);
}

static void test_redis_benchmark_reports_no_errors(void **state)
{
    server s = server_start(2);
    int rc;
    char *out = run(&rc,
                    "timeout 60 redis-benchmark -p %d -q -n 2000 -c 10 "
                    "-t ping,set,get,incr,lpush,mset 2>&1",
                    s.port);
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
        close(fds[c]);
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
    close(bad);
    close(good);
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
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        int rc;
        char *out = run(&rc, "timeout 10 redis-cli -p %d DBSIZE 2>&1", s.port);
        bool empty = rc == 0 && strcmp(out, "0\n") == 0;
        free(out);
        if (empty)
            break;
        clock_gettime(CLOCK_MONOTONIC, &t);
        assert_true(t.tv_sec - t0.tv_sec < 20);
        usleep(100 * 1000);
    }
    cli_expect(&s, "GET lazy", "\n");
    cli_expect(&s, "EXISTS active", "0\n");
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
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
