/* The weft-redis command executor, without an engine: each story sends commands and
 * compares the exact RESP reply with what Redis 7.0 answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "commands.h"

/* Whether needle[0..nlen) occurs in hay[0..hlen) (memmem is not in every C library). */
static bool contains(const void *hay, size_t hlen, const char *needle, size_t nlen)
{
    const char *h = hay;
    for (size_t i = 0; nlen <= hlen && i <= hlen - nlen; i++) {
        if (memcmp(h + i, needle, nlen) == 0)
            return true;
    }
    return false;
}

static int64_t fake_now = 1700000000000;

static int64_t fake_clock(void)
{
    return fake_now;
}

typedef struct fixture {
    redis_server *srv;
    redis_client client;
    reply_buf out;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    redis_config cfg;
    redis_config_init(&cfg);
    cfg.clock_ms = fake_clock;
    f->srv = redis_server_create(&cfg);
    assert_non_null(f->srv);
    redis_client_init(f->srv, &f->client, 0);
    reply_init(&f->out);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    redis_client_free(&f->client);
    reply_free(&f->out);
    redis_server_destroy(f->srv);
    free(f);
    return 0;
}

/* Runs a space-separated command and checks the whole reply. */
static int run_expect(fixture *f, const char *cmd, const char *want)
{
    char buf[1024];
    const uint8_t *argv[64];
    size_t lens[64];
    int argc = 0, rc;
    char *save = NULL;

    snprintf(buf, sizeof(buf), "%s", cmd);
    for (char *t = strtok_r(buf, " ", &save); t != NULL; t = strtok_r(NULL, " ", &save)) {
        argv[argc] = (const uint8_t *)t;
        lens[argc++] = strlen(t);
    }
    reply_reset(&f->out, 1 << 20);
    rc = redis_exec(f->srv, &f->client, argc, argv, lens, &f->out);
    if (f->out.len != strlen(want) || memcmp(f->out.data, want, f->out.len) != 0)
        fail_msg("%s: got '%.*s', want '%s'", cmd, (int)f->out.len, f->out.data, want);
    return rc;
}

#define EXPECT(cmd, want) run_expect(f, cmd, want)
#define WRONGTYPE         "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
#define NOTINT            "-ERR value is not an integer or out of range\r\n"

static void test_connection_commands(void **state)
{
    fixture *f = *state;
    char want[64];

    EXPECT("PING", "+PONG\r\n");
    EXPECT("ping hello", "$5\r\nhello\r\n");
    EXPECT("ping a b", "-ERR wrong number of arguments for 'ping' command\r\n");
    EXPECT("ECHO hi", "$2\r\nhi\r\n");
    EXPECT("echo", "-ERR wrong number of arguments for 'echo' command\r\n");
    EXPECT("SELECT 0", "+OK\r\n");
    EXPECT("SELECT 1", "-ERR DB index is out of range\r\n");
    EXPECT("SELECT x", NOTINT);
    EXPECT("HELLO 3", "-NOPROTO unsupported protocol version\r\n");
    EXPECT("HELLO x", "-ERR Protocol version is not an integer or out of range\r\n");
    EXPECT("CLIENT SETNAME my-app", "+OK\r\n");
    EXPECT("CLIENT GETNAME", "$6\r\nmy-app\r\n");
    EXPECT("CLIENT SETINFO lib-name weft", "+OK\r\n");
    EXPECT("CLIENT SETINFO color red", "-ERR Unrecognized option 'color'\r\n");
    EXPECT("CLIENT SETNAME", "-ERR wrong number of arguments for 'client|setname' command\r\n");
    EXPECT("CLIENT NOPE", "-ERR unknown subcommand 'NOPE'. Try CLIENT HELP.\r\n");
    snprintf(want, sizeof(want), ":%llu\r\n", (unsigned long long)f->client.id);
    EXPECT("CLIENT ID", want);
    snprintf(want, sizeof(want), ":%zu\r\n", redis_command_count());
    EXPECT("COMMAND COUNT", want);
    EXPECT("COMMAND DOCS", "*0\r\n");
    EXPECT("CONFIG GET save", "*2\r\n$4\r\nsave\r\n$0\r\n\r\n");
    EXPECT("CONFIG GET appendonly", "*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n");
    EXPECT("CONFIG GET nothing*", "*0\r\n");
    EXPECT("foo a b", "-ERR unknown command 'foo', with args beginning with: 'a' 'b' \r\n");
    EXPECT("foo", "-ERR unknown command 'foo', with args beginning with: \r\n");
    assert_int_equal(EXPECT("QUIT", "+OK\r\n"), REDIS_EXEC_CLOSE);
}

static void test_hello_and_info_report(void **state)
{
    fixture *f = *state;
    const uint8_t *argv[1] = {(const uint8_t *)"INFO"};
    size_t lens[1] = {4};

    EXPECT("SET a 1", "+OK\r\n");
    reply_reset(&f->out, 1 << 20);
    redis_exec(f->srv, &f->client, 1, argv, lens, &f->out);
    assert_true(contains(f->out.data, f->out.len, "total_commands_processed:1\r\n", 28));
    assert_true(contains(f->out.data, f->out.len, "db0:keys=1,expires=0", 20));
    argv[0] = (const uint8_t *)"HELLO";
    lens[0] = 5;
    reply_reset(&f->out, 1 << 20);
    redis_exec(f->srv, &f->client, 1, argv, lens, &f->out);
    assert_memory_equal(f->out.data, "*14\r\n$6\r\nserver\r\n$5\r\nredis\r\n", 27);
}

static void two_loops_stats(void *arg, unsigned nloops, redis_loop_info *per_loop)
{
    (void)arg;
    assert_int_equal(nloops, 2);
    per_loop[0].out_buffer_peak = 4096;
    per_loop[1].out_buffer_peak = 1048587;
}

/* The limit as configured shows in CONFIG GET, and INFO's clients section reports the largest
 * recent output buffer over every loop. */
static void test_output_limit_in_config_and_info(void **state)
{
    fixture *f = *state;
    const uint8_t *argv[2] = {(const uint8_t *)"INFO", (const uint8_t *)"clients"};
    size_t lens[2] = {4, 7};
    redis_config cfg;
    redis_server *srv;
    redis_client cl;

    EXPECT("CONFIG GET client-output-buffer-limit",
           "*2\r\n$26\r\nclient-output-buffer-limit\r\n$19\r\nnormal 67108864 0 0\r\n");
    redis_config_init(&cfg);
    cfg.nloops = 2;
    cfg.stats_cb = two_loops_stats;
    assert_true(obuf_limit_parse(&cfg.obuf, "1mb", "512kb", "10"));
    srv = redis_server_create(&cfg);
    assert_non_null(srv);
    redis_client_init(srv, &cl, 1);
    reply_reset(&f->out, 1 << 20);
    redis_exec(srv, &cl, 2, argv, lens, &f->out);
    assert_true(contains(f->out.data, f->out.len, "client_recent_max_output_buffer:1048587\r\n",
                         strlen("client_recent_max_output_buffer:1048587\r\n")));
    {
        const uint8_t *a[3] = {(const uint8_t *)"CONFIG", (const uint8_t *)"GET",
                               (const uint8_t *)"client-output-*"};
        size_t l[3] = {6, 3, 15};
        const char *want =
            "*2\r\n$26\r\nclient-output-buffer-limit\r\n$24\r\nnormal 1048576 524288 10\r\n";
        reply_reset(&f->out, 1 << 20);
        redis_exec(srv, &cl, 3, a, l, &f->out);
        assert_int_equal(f->out.len, strlen(want));
        assert_memory_equal(f->out.data, want, strlen(want));
    }
    redis_client_free(&cl);
    redis_server_destroy(srv);
}

/* Peer bytes quoted in an error reply come back escaped (weft_escape): an ESC, a newline or
 * a NUL cannot reach the client's terminal or break the reply stream, and quotes are cut at
 * 128 bytes of the peer's as Redis cuts them. */
static void test_peer_bytes_are_escaped_in_errors(void **state)
{
    fixture *f = *state;
    const uint8_t *argv[3] = {(const uint8_t *)"a\0b", (const uint8_t *)"x\r\n-ERR forged",
                              (const uint8_t *)"\x1b[2J"};
    size_t lens[3] = {3, 14, 4};
    const char *want = "-ERR unknown command 'a\\x00b', with args beginning with: "
                       "'x\\x0d\\x0a-ERR forged' '\\x1b[2J' \r\n";
    char cmd[256], reply[256];

    reply_reset(&f->out, 1 << 20);
    redis_exec(f->srv, &f->client, 3, argv, lens, &f->out);
    assert_int_equal(f->out.len, strlen(want));
    assert_memory_equal(f->out.data, want, strlen(want));

    EXPECT("fo\x1b]0;pwn\x07o", "-ERR unknown command 'fo\\x1b]0;pwn\\x07o', with args "
                                "beginning with: \r\n");
    EXPECT("CLIENT \x1b[31mred", "-ERR unknown subcommand '\\x1b[31mred'. Try CLIENT HELP.\r\n");
    EXPECT("CONFIG back\\slash", "-ERR unknown subcommand 'back\\\\slash'. Try CONFIG HELP.\r\n");
    EXPECT("HELLO 2 \x7f", "-ERR Syntax error in HELLO option '\\x7f'\r\n");
    EXPECT("EXPIRE k 10 \xff", "-ERR Unsupported option \\xff\r\n");
    /* 200 bytes of a name: the first 128 are quoted, as Redis's %.128s. */
    memset(cmd, 'z', 200);
    cmd[200] = '\0';
    snprintf(reply, sizeof(reply), "-ERR unknown command '%.128s', with args beginning with: \r\n",
             cmd);
    EXPECT(cmd, reply);
}

static void test_strings(void **state)
{
    fixture *f = *state;

    EXPECT("GET k", "$-1\r\n");
    EXPECT("SET k v", "+OK\r\n");
    EXPECT("GET k", "$1\r\nv\r\n");
    EXPECT("SET k w NX", "$-1\r\n");
    EXPECT("SET k w XX GET", "$1\r\nv\r\n");
    EXPECT("SET other w XX", "$-1\r\n");
    EXPECT("SET k v NX XX", "-ERR syntax error\r\n");
    EXPECT("SET k v EX 10 PX 10", "-ERR syntax error\r\n");
    EXPECT("SET k v EX 0", "-ERR invalid expire time in 'set' command\r\n");
    EXPECT("SET k v EX x", NOTINT);
    EXPECT("SET k v EX", "-ERR syntax error\r\n");
    EXPECT("SET k v EX 10", "+OK\r\n");
    EXPECT("TTL k", ":10\r\n");
    EXPECT("SET k v2 KEEPTTL", "+OK\r\n");
    EXPECT("PTTL k", ":10000\r\n");
    EXPECT("SET k v3", "+OK\r\n");
    EXPECT("TTL k", ":-1\r\n");
    EXPECT("SET k v PXAT 1700000005000", "+OK\r\n");
    EXPECT("PTTL k", ":5000\r\n");
    EXPECT("SETNX k x", ":0\r\n");
    EXPECT("SETNX k2 x", ":1\r\n");
    EXPECT("SETEX k3 0 v", "-ERR invalid expire time in 'setex' command\r\n");
    EXPECT("SETEX k3 100 v", "+OK\r\n");
    EXPECT("PSETEX k3 100 v", "+OK\r\n");
    EXPECT("PTTL k3", ":100\r\n");
    EXPECT("GETSET k2 y", "$1\r\nx\r\n");
    EXPECT("GETDEL k2", "$1\r\ny\r\n");
    EXPECT("GETDEL k2", "$-1\r\n");
    EXPECT("MSET a 1 b 2", "+OK\r\n");
    EXPECT("MSET a 1 b", "-ERR wrong number of arguments for 'mset' command\r\n");
    EXPECT("MGET a b nope", "*3\r\n$1\r\n1\r\n$1\r\n2\r\n$-1\r\n");
    EXPECT("MSETNX a 9 c 3", ":0\r\n");
    EXPECT("MSETNX c 3 d 4", ":1\r\n");
    EXPECT("INCR a", ":2\r\n");
    EXPECT("DECR a", ":1\r\n");
    EXPECT("INCRBY a 10", ":11\r\n");
    EXPECT("DECRBY a 20", ":-9\r\n");
    EXPECT("INCRBY a x", NOTINT);
    EXPECT("INCR k", NOTINT);
    EXPECT("SET big 9223372036854775807", "+OK\r\n");
    EXPECT("INCR big", "-ERR increment or decrement would overflow\r\n");
    EXPECT("SET f 10.50", "+OK\r\n");
    EXPECT("INCRBYFLOAT f 0.1", "$4\r\n10.6\r\n");
    EXPECT("INCRBYFLOAT f -5", "$3\r\n5.6\r\n");
    EXPECT("INCRBYFLOAT f x", "-ERR value is not a valid float\r\n");
    EXPECT("APPEND s hello", ":5\r\n");
    EXPECT("APPEND s _world", ":11\r\n");
    EXPECT("STRLEN s", ":11\r\n");
    EXPECT("STRLEN nope", ":0\r\n");
    EXPECT("GETRANGE s 0 4", "$5\r\nhello\r\n");
    EXPECT("GETRANGE s -5 -1", "$5\r\nworld\r\n");
    EXPECT("GETRANGE s 5 2", "$0\r\n\r\n");
    EXPECT("GETRANGE s 0 100", "$11\r\nhello_world\r\n");
    EXPECT("SETRANGE s 6 WORLD", ":11\r\n");
    EXPECT("GET s", "$11\r\nhello_WORLD\r\n");
    EXPECT("SETRANGE pad 3 x", ":4\r\n");
    EXPECT("STRLEN pad", ":4\r\n");
    EXPECT("GETRANGE pad 3 3", "$1\r\nx\r\n");
    EXPECT("SETRANGE s -1 x", "-ERR offset is out of range\r\n");
    EXPECT("SETRANGE s 536870912 x",
           "-ERR string exceeds maximum allowed size (proto-max-bulk-len)\r\n");
    EXPECT("LPUSH list x", ":1\r\n");
    EXPECT("GET list", WRONGTYPE);
    EXPECT("INCR list", WRONGTYPE);
    EXPECT("APPEND list x", WRONGTYPE);
    EXPECT("SET list v GET", WRONGTYPE);
    EXPECT("SET list v", "+OK\r\n");
    EXPECT("GET list", "$1\r\nv\r\n");
    EXPECT("get", "-ERR wrong number of arguments for 'get' command\r\n");
}

static void test_keys_and_expiry(void **state)
{
    fixture *f = *state;

    EXPECT("MSET a 1 b 2 c 3", "+OK\r\n");
    EXPECT("EXISTS a b a nope", ":3\r\n");
    EXPECT("DEL a nope", ":1\r\n");
    EXPECT("UNLINK b", ":1\r\n");
    EXPECT("TYPE c", "+string\r\n");
    EXPECT("TYPE nope", "+none\r\n");
    EXPECT("TTL nope", ":-2\r\n");
    EXPECT("EXPIRE nope 10", ":0\r\n");
    EXPECT("EXPIRE c 10", ":1\r\n");
    EXPECT("EXPIRE c 20 NX", ":0\r\n");
    EXPECT("EXPIRE c 20 GT", ":1\r\n");
    EXPECT("EXPIRE c 5 LT", ":1\r\n");
    EXPECT("EXPIRE c 5 NX XX", "-ERR NX and XX, GT or LT options at the same time are not "
                               "compatible\r\n");
    EXPECT("EXPIRE c x", NOTINT);
    EXPECT("TTL c", ":5\r\n");
    EXPECT("PERSIST c", ":1\r\n");
    EXPECT("PERSIST c", ":0\r\n");
    EXPECT("PEXPIRE c 1500", ":1\r\n");
    EXPECT("PTTL c", ":1500\r\n");
    EXPECT("TTL c", ":2\r\n");
    fake_now += 1500;
    EXPECT("GET c", "$1\r\n3\r\n");
    fake_now += 1;
    EXPECT("GET c", "$-1\r\n");
    EXPECT("SET d 1", "+OK\r\n");
    EXPECT("EXPIREAT d 1", ":1\r\n");
    EXPECT("EXISTS d", ":0\r\n");
    EXPECT("SET e 1 PX 10", "+OK\r\n");
    fake_now += 11;
    assert_int_equal(redis_tick(f->srv, 0), 1);
    EXPECT("DBSIZE", ":0\r\n");
    EXPECT("MSET k1 1 k2 2 other 3", "+OK\r\n");
    EXPECT("KEYS k?", "*2\r\n$2\r\nk1\r\n$2\r\nk2\r\n");
    EXPECT("RENAME k1 k3", "+OK\r\n");
    EXPECT("RENAME nope x", "-ERR no such key\r\n");
    EXPECT("GET k3", "$1\r\n1\r\n");
    EXPECT("EXISTS k1", ":0\r\n");
    EXPECT("SCAN x", "-ERR invalid cursor\r\n");
    EXPECT("SCAN 0 COUNT 0", "-ERR syntax error\r\n");
    EXPECT("SCAN 0 MATCH oth* COUNT 100000", "*2\r\n$1\r\n0\r\n*1\r\n$5\r\nother\r\n");
    EXPECT("DBSIZE", ":3\r\n");
    EXPECT("FLUSHDB", "+OK\r\n");
    EXPECT("FLUSHALL ASYNC", "+OK\r\n");
    EXPECT("FLUSHALL NOW", "-ERR syntax error\r\n");
    EXPECT("DBSIZE", ":0\r\n");
}

/* A batch of requests that arrived together reads the clock once, as a Redis event-loop
 * iteration does: a key expiring during the batch is still there for the rest of it. */
static void test_a_batch_shares_one_clock_reading(void **state)
{
    fixture *f = *state;

    EXPECT("SET k 1 PX 10", "+OK\r\n");
    redis_batch_begin(&f->client);
    EXPECT("GET k", "$1\r\n1\r\n");
    fake_now += 11;
    EXPECT("GET k", "$1\r\n1\r\n");
    EXPECT("PTTL k", ":10\r\n");
    redis_batch_end(&f->client);
    EXPECT("GET k", "$-1\r\n");
    redis_batch_begin(&f->client);
    EXPECT("SET k 2 PX 10", "+OK\r\n");
    redis_batch_end(&f->client);
    fake_now += 5;
    redis_batch_begin(&f->client);
    EXPECT("PTTL k", ":5\r\n");
    redis_batch_end(&f->client);
}

static void test_scan_sees_every_key_across_growth(void **state)
{
    fixture *f = *state;
    keyspace *ks = redis_server_keyspace(f->srv);
    char cmd[64];
    uint64_t cursor = 0;
    int seen[2000] = {0};

    for (int i = 0; i < 1000; i++) {
        snprintf(cmd, sizeof(cmd), "SET key:%d v", i);
        EXPECT(cmd, "+OK\r\n");
    }
    do {
        /* Grow the table halfway through: keys present throughout are still seen. */
        if (cursor != 0 && seen[0] >= 0) {
            for (int i = 1000; i < 2000 && seen[1999] == 0; i++) {
                snprintf(cmd, sizeof(cmd), "SET key:%d v", i);
                EXPECT(cmd, "+OK\r\n");
            }
            seen[1999] = -1;
        }
        reply_reset(&f->out, 1 << 20);
        {
            char cur[32];
            const uint8_t *argv[4] = {(const uint8_t *)"SCAN", (const uint8_t *)cur,
                                      (const uint8_t *)"COUNT", (const uint8_t *)"50"};
            size_t lens[4] = {4, 0, 5, 2};
            lens[1] = (size_t)snprintf(cur, sizeof(cur), "%llu", (unsigned long long)cursor);
            redis_exec(f->srv, &f->client, 4, argv, lens, &f->out);
        }
        {
            /* *2 $n cursor *m ($k key:i)... */
            char *p = f->out.data, *end = f->out.data + f->out.len;
            p = strchr(p + 4, '\n') + 1;
            cursor = strtoull(p, NULL, 10);
            p = strchr(p, '\n') + 1;
            p = strchr(p, '\n') + 1;
            while (p < end) {
                p = strchr(p, '\n') + 1;
                if (strncmp(p, "key:", 4) == 0) {
                    int i = atoi(p + 4);
                    if (i < 1000)
                        seen[i]++;
                }
                p = strchr(p, '\n') + 1;
            }
        }
    } while (cursor != 0);
    for (int i = 0; i < 1000; i++)
        if (seen[i] == 0)
            fail_msg("key:%d never seen", i);
    (void)ks;
}

static void test_lists(void **state)
{
    fixture *f = *state;

    EXPECT("LPUSH l b a", ":2\r\n");
    EXPECT("RPUSH l c d e", ":5\r\n");
    EXPECT("LLEN l", ":5\r\n");
    EXPECT("LRANGE l 0 -1", "*5\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nd\r\n$1\r\ne\r\n");
    EXPECT("LRANGE l -2 100", "*2\r\n$1\r\nd\r\n$1\r\ne\r\n");
    EXPECT("LRANGE l 3 1", "*0\r\n");
    EXPECT("LRANGE l x 1", NOTINT);
    EXPECT("LINDEX l 0", "$1\r\na\r\n");
    EXPECT("LINDEX l -1", "$1\r\ne\r\n");
    EXPECT("LINDEX l 9", "$-1\r\n");
    EXPECT("LPOP l", "$1\r\na\r\n");
    EXPECT("RPOP l 2", "*2\r\n$1\r\ne\r\n$1\r\nd\r\n");
    EXPECT("LPOP l 0", "*0\r\n");
    EXPECT("LPOP l -1", "-ERR value is out of range, must be positive\r\n");
    EXPECT("RPOP l 10", "*2\r\n$1\r\nc\r\n$1\r\nb\r\n");
    EXPECT("EXISTS l", ":0\r\n");
    EXPECT("LPOP l", "$-1\r\n");
    EXPECT("LPOP l 2", "*-1\r\n");
    EXPECT("LLEN l", ":0\r\n");
    EXPECT("LRANGE l 0 -1", "*0\r\n");
    EXPECT("SET s v", "+OK\r\n");
    EXPECT("LPUSH s x", WRONGTYPE);
    EXPECT("LRANGE s 0 1", WRONGTYPE);
    EXPECT("LPOP s", WRONGTYPE);
    EXPECT("LPUSH l", "-ERR wrong number of arguments for 'lpush' command\r\n");
}

static void test_hashes_and_sets(void **state)
{
    fixture *f = *state;

    EXPECT("HSET h a 1 b 2", ":2\r\n");
    EXPECT("HSET h a 3", ":0\r\n");
    EXPECT("HSET h a", "-ERR wrong number of arguments for 'hset' command\r\n");
    EXPECT("HGET h a", "$1\r\n3\r\n");
    EXPECT("HGET h z", "$-1\r\n");
    EXPECT("HLEN h", ":2\r\n");
    EXPECT("HEXISTS h b", ":1\r\n");
    EXPECT("HEXISTS h z", ":0\r\n");
    EXPECT("HMGET h a z", "*2\r\n$1\r\n3\r\n$-1\r\n");
    EXPECT("HINCRBY h a 5", ":8\r\n");
    EXPECT("HINCRBY h new -1", ":-1\r\n");
    EXPECT("HINCRBY h a x", NOTINT);
    EXPECT("HSET h t text", ":1\r\n");
    EXPECT("HINCRBY h t 1", "-ERR hash value is not an integer\r\n");
    EXPECT("HDEL h a b new t z", ":4\r\n");
    EXPECT("HGETALL h", "*0\r\n");
    EXPECT("EXISTS h", ":0\r\n");
    EXPECT("HSET h f v", ":1\r\n");
    EXPECT("HGETALL h", "*2\r\n$1\r\nf\r\n$1\r\nv\r\n");
    EXPECT("SADD s a b a", ":2\r\n");
    EXPECT("SCARD s", ":2\r\n");
    EXPECT("SISMEMBER s a", ":1\r\n");
    EXPECT("SISMEMBER s z", ":0\r\n");
    EXPECT("SREM s a z", ":1\r\n");
    EXPECT("SMEMBERS s", "*1\r\n$1\r\nb\r\n");
    EXPECT("SREM s b", ":1\r\n");
    EXPECT("TYPE s", "+none\r\n");
    EXPECT("SMEMBERS s", "*0\r\n");
    EXPECT("SADD h x", WRONGTYPE);
    EXPECT("HGET s x", "$-1\r\n");
    EXPECT("SET str v", "+OK\r\n");
    EXPECT("HGET str x", WRONGTYPE);
    EXPECT("SCARD str", WRONGTYPE);
    EXPECT("TYPE h", "+hash\r\n");
}

static void test_binary_safe_keys_and_values(void **state)
{
    fixture *f = *state;
    static const uint8_t key[] = {'k', 0, '\r', '\n'};
    size_t vlen = 1024 * 1024;
    uint8_t *val = malloc(vlen);
    const uint8_t *argv[3];
    size_t lens[3];

    for (size_t i = 0; i < vlen; i++)
        val[i] = (uint8_t)(i * 31);
    argv[0] = (const uint8_t *)"SET";
    lens[0] = 3;
    argv[1] = key;
    lens[1] = sizeof(key);
    argv[2] = val;
    lens[2] = vlen;
    reply_reset(&f->out, 1 << 20);
    redis_exec(f->srv, &f->client, 3, argv, lens, &f->out);
    assert_memory_equal(f->out.data, "+OK\r\n", 5);
    argv[0] = (const uint8_t *)"GET";
    reply_reset(&f->out, 1 << 20);
    redis_exec(f->srv, &f->client, 2, argv, lens, &f->out);
    assert_int_equal(f->out.len, 10 + vlen + 2);
    assert_memory_equal(f->out.data, "$1048576\r\n", 10);
    assert_memory_equal(f->out.data + 10, val, vlen);
    free(val);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_connection_commands, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hello_and_info_report, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_bytes_are_escaped_in_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_output_limit_in_config_and_info, setup, teardown),
        cmocka_unit_test_setup_teardown(test_strings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_and_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_batch_shares_one_clock_reading, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan_sees_every_key_across_growth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lists, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hashes_and_sets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binary_safe_keys_and_values, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
