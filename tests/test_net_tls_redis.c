/* weft-redis over TLS against Debian's redis-cli and redis-benchmark, and redis-py (Debian's
 * python3-redis) with ssl=True: the binary runs as a child with a plain and a TLS port at
 * once, with certificates made at test time, and the stock clients talk to it with --tls
 * --cacert (and a client certificate when asked for). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spawn.h"
#include "tls_suite.h"

#ifndef WEFT_REDIS_BIN
#error "WEFT_REDIS_BIN must name the weft-redis binary"
#endif
#if !defined(WEFT_TEST_PYTHON) || !defined(WEFT_REDIS_PY_TLS)
#error "WEFT_TEST_PYTHON and WEFT_REDIS_PY_TLS must name python3 and redis_py_tls.py"
#endif

static wt_child live = WT_CHILD_NONE;

typedef struct server {
    int port, tls_port;
} server;

static server start(const char *auth)
{
    server s = {0};
    char line[256];
    const char *args[] = {"weft-redis",
                          "--port",
                          "0",
                          "--tls-port",
                          "0",
                          "--tls-cert-file",
                          wt_tls_pki.server_cert,
                          "--tls-key-file",
                          wt_tls_pki.server_key,
                          "--tls-ca-cert-file",
                          wt_tls_pki.ca,
                          "--tls-auth-clients",
                          auth,
                          NULL};
    int rc = wt_child_start(&live, WEFT_REDIS_BIN, args, false, line, sizeof(line), 10000);
    assert_int_equal(rc, 0);
    assert_int_equal(sscanf(line, "weft-redis ready on port %d with %*u loop(s); tls port %d",
                            &s.port, &s.tls_port),
                     2);
    return s;
}

/* The stop signal, then a clean exit: the wait is a bound on a hang, not on speed. */
static void stop(server *s)
{
    (void)s;
    assert_int_equal(wt_child_stop(&live, 60000), 0);
}

static int teardown(void **state)
{
    (void)state;
    wt_child_kill(&live);
    return 0;
}

/* Runs a shell command; its output (owned by the caller), trailing newlines cut. */
static char *run(int *rc, const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    char *out = calloc(1, 1 << 16);
    size_t n = fread(out, 1, (1 << 16) - 1, f);
    out[n] = '\0';
    while (n > 0 && out[n - 1] == '\n')
        out[--n] = '\0';
    int st = pclose(f);
    *rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return out;
}

static void cli(int port, bool with_cert, const char *args, const char *want)
{
    int rc;
    char cert[400] = "";
    if (with_cert)
        snprintf(cert, sizeof(cert), "--cert %s --key %s", wt_tls_pki.client_cert,
                 wt_tls_pki.client_key);
    char *out = run(&rc, "timeout 10 redis-cli --tls --cacert %s %s -p %d %s 2>&1", wt_tls_pki.ca,
                    cert, port, args);
    if (strstr(out, want) == NULL)
        fail_msg("redis-cli --tls %s: rc %d, got '%s', want '%s'", args, rc, out, want);
    free(out);
}

static void test_redis_cli_over_tls(void **state)
{
    (void)state;
    server s = start("yes");
    cli(s.tls_port, true, "SET greeting hello", "OK");
    cli(s.tls_port, true, "GET greeting", "hello");
    /* The plain port serves the same keyspace at the same time. */
    int rc;
    char *out = run(&rc, "timeout 10 redis-cli -p %d GET greeting 2>&1", s.port);
    assert_string_equal(out, "hello");
    free(out);
    /* auth-clients yes: a client without a certificate is refused. */
    out = run(&rc, "timeout 10 redis-cli --tls --cacert %s -p %d PING 2>&1", wt_tls_pki.ca,
              s.tls_port);
    assert_null(strstr(out, "PONG"));
    free(out);
    stop(&s);
}

static void test_auth_clients_optional_and_benchmark(void **state)
{
    (void)state;
    server s = start("optional");
    cli(s.tls_port, false, "PING", "PONG");
    cli(s.tls_port, true, "PING", "PONG");
    int rc;
    char *out = run(&rc,
                    "timeout 60 redis-benchmark --tls --cacert %s -p %d -c 4 -n 2000 -t set,get "
                    "-q 2>&1",
                    wt_tls_pki.ca, s.tls_port);
    if (rc != 0 || strstr(out, "SET:") == NULL || strstr(out, "GET:") == NULL ||
        strstr(out, "rror") != NULL)
        fail_msg("redis-benchmark --tls: rc %d: %s", rc, out);
    free(out);
    stop(&s);
}

/* Runs tests/support_tls/redis_py_tls.py with args against s's TLS port: it exits 0 and
 * says so on its last line only when every check it makes held. */
static void redis_py(const server *s, const char *args)
{
    int rc;
    char *out = run(&rc, "timeout 60 %s %s --port %d --ca %s %s 2>&1", WEFT_TEST_PYTHON,
                    WEFT_REDIS_PY_TLS, s->tls_port, wt_tls_pki.ca, args);
    if (rc == 127 || rc == 126)
        fail_msg("%s cannot run (exit %d): install Debian's python3 and python3-redis "
                 "(scripts/test.sh installs them): %s",
                 WEFT_TEST_PYTHON, rc, out);
    const char *last = strrchr(out, '\n');
    last = last != NULL ? last + 1 : out;
    if (rc != 0 || strcmp(last, "redis-py tls: all checks passed") != 0)
        fail_msg("redis-py over TLS (%s): exit %d:\n%s", args, rc, out);
    print_message("%s\n", out);
    free(out);
}

/* redis.Redis(ssl=True, ssl_ca_certs=..., ssl_cert_reqs='required') without a client
 * certificate (auth-clients optional): strings, counters, 1 MiB values, lists, hashes and a
 * 200-command pipeline, and the plain port sees the same keys. */
static void test_redis_py_over_tls(void **state)
{
    (void)state;
    server s = start("optional");
    char args[64];
    snprintf(args, sizeof(args), "--plain-port %d", s.port);
    redis_py(&s, args);
    stop(&s);
}

/* Mutual TLS (auth-clients yes): redis-py with the client certificate is served; without one,
 * or with one from a CA the server does not trust, it is refused. */
static void test_redis_py_mutual_tls(void **state)
{
    (void)state;
    server s = start("yes");
    char args[1024];
    snprintf(args, sizeof(args),
             "--cert %s --key %s --refused-without-cert --untrusted-cert %s --untrusted-key %s",
             wt_tls_pki.client_cert, wt_tls_pki.client_key, wt_tls_pki.other_client_cert,
             wt_tls_pki.other_client_key);
    redis_py(&s, args);
    stop(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_redis_cli_over_tls, teardown),
        cmocka_unit_test_teardown(test_auth_clients_optional_and_benchmark, teardown),
        cmocka_unit_test_teardown(test_redis_py_over_tls, teardown),
        cmocka_unit_test_teardown(test_redis_py_mutual_tls, teardown),
    };
    signal(SIGPIPE, SIG_IGN);
    return wt_tls_run_tests(tests);
}
