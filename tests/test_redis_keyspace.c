/* The weft-redis keyspace under concurrency: threads incrementing one key end exactly
 * right, MSET is seen whole or not at all by a concurrent MGET, expiry is lazy and active,
 * and the glob matcher used by KEYS behaves as Redis's. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "commands.h"
#include "glob.h"
#include "keyspace.h"

#define THREADS 4

typedef struct worker {
    redis_server *srv;
    int id;
    int iterations;
    atomic_bool *stop;
    int torn; /* MGET saw a mix of two MSETs */
} worker;

static void exec_words(redis_server *srv, redis_client *c, reply_buf *out, int argc,
                       const char **words)
{
    const uint8_t *argv[32];
    size_t lens[32];
    for (int i = 0; i < argc; i++) {
        argv[i] = (const uint8_t *)words[i];
        lens[i] = strlen(words[i]);
    }
    reply_reset(out, 1 << 20);
    redis_exec(srv, c, argc, argv, lens, out);
}

static void *incr_worker(void *arg)
{
    worker *w = arg;
    redis_client c;
    reply_buf out;
    const char *cmd[] = {"INCR", "counter"};

    redis_client_init(w->srv, &c, (unsigned)w->id);
    reply_init(&out);
    for (int i = 0; i < w->iterations; i++)
        exec_words(w->srv, &c, &out, 2, cmd);
    reply_free(&out);
    redis_client_free(&c);
    return NULL;
}

static void test_concurrent_incr_is_exact(void **state)
{
    redis_config cfg;
    redis_server *srv;
    pthread_t t[THREADS];
    worker w[THREADS];
    redis_client c;
    reply_buf out;
    const char *get[] = {"GET", "counter"};

    (void)state;
    redis_config_init(&cfg);
    cfg.nloops = THREADS;
    srv = redis_server_create(&cfg);
    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker){.srv = srv, .id = i, .iterations = 5000};
        pthread_create(&t[i], NULL, incr_worker, &w[i]);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    redis_client_init(srv, &c, 0);
    reply_init(&out);
    exec_words(srv, &c, &out, 2, get);
    assert_int_equal(out.len, 11);
    assert_memory_equal(out.data, "$5\r\n20000\r\n", 11);
    reply_free(&out);
    redis_client_free(&c);
    redis_server_destroy(srv);
}

/* Writers MSET ten keys to one value each time; readers MGET them and must never see two
 * different values in one reply. */
static void *mset_worker(void *arg)
{
    worker *w = arg;
    redis_client c;
    reply_buf out;
    char val[16];
    const char *cmd[21];

    redis_client_init(w->srv, &c, (unsigned)w->id);
    reply_init(&out);
    cmd[0] = "MSET";
    for (int i = 0; i < w->iterations; i++) {
        static const char *keys[] = {"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9"};
        snprintf(val, sizeof(val), "%d-%d", w->id, i);
        for (int k = 0; k < 10; k++) {
            cmd[1 + 2 * k] = keys[k];
            cmd[2 + 2 * k] = val;
        }
        exec_words(w->srv, &c, &out, 21, cmd);
    }
    reply_free(&out);
    redis_client_free(&c);
    return NULL;
}

static void *mget_worker(void *arg)
{
    worker *w = arg;
    redis_client c;
    reply_buf out;
    const char *cmd[] = {"MGET", "k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9"};

    redis_client_init(w->srv, &c, (unsigned)w->id);
    reply_init(&out);
    while (!atomic_load(w->stop)) {
        char first[32] = "";
        char *p;
        exec_words(w->srv, &c, &out, 11, cmd);
        reply_raw(&out, "", 1);
        p = out.data;
        /* *10\r\n then ten "$n\r\nvalue\r\n" or "$-1\r\n". */
        p = strchr(p, '\n') + 1;
        for (int k = 0; k < 10; k++) {
            char *v = strchr(p, '\n') + 1, *e;
            if (p[1] == '-') {
                v = p;
                e = strchr(p, '\r');
                p = v + 5;
                if (k > 0 && first[0] != '\0')
                    w->torn++;
                continue;
            }
            e = strchr(v, '\r');
            *e = '\0';
            if (k == 0)
                snprintf(first, sizeof(first), "%s", v);
            else if (strcmp(first, v) != 0)
                w->torn++;
            p = e + 2;
        }
    }
    reply_free(&out);
    redis_client_free(&c);
    return NULL;
}

static void test_mset_is_atomic_to_mget(void **state)
{
    redis_config cfg;
    redis_server *srv;
    pthread_t t[THREADS];
    worker w[THREADS];
    atomic_bool stop;

    (void)state;
    atomic_init(&stop, false);
    redis_config_init(&cfg);
    cfg.nloops = THREADS;
    srv = redis_server_create(&cfg);
    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker){.srv = srv, .id = i, .iterations = 3000, .stop = &stop};
        pthread_create(&t[i], NULL, i < 2 ? mset_worker : mget_worker, &w[i]);
    }
    pthread_join(t[0], NULL);
    pthread_join(t[1], NULL);
    atomic_store(&stop, true);
    pthread_join(t[2], NULL);
    pthread_join(t[3], NULL);
    assert_int_equal(w[2].torn + w[3].torn, 0);
    redis_server_destroy(srv);
}

static void test_expiry_lazy_and_active(void **state)
{
    keyspace *ks = ks_create();
    int64_t now = 1000;
    size_t expires;

    (void)state;
    for (int i = 0; i < 1000; i++) {
        char key[16];
        int n = snprintf(key, sizeof(key), "key%d", i);
        uint64_t h = ks_hash(key, (size_t)n);
        ks_shard *sh = ks_lock(ks, h);
        ks_entry *e = ks_add(sh, h, key, (size_t)n, KS_STRING);
        assert_true(ks_str_set(e, "v", 1));
        if (i % 2 == 0)
            ks_set_expire(sh, e, now + 10);
        ks_unlock(sh);
    }
    assert_int_equal(ks_size(ks, &expires), 1000);
    assert_int_equal(expires, 500);
    /* Not yet: a key expiring at t is still there at t. */
    assert_int_equal(ks_sweep(ks, now + 10, 100000), 0);
    {
        uint64_t h = ks_hash("key0", 4);
        ks_shard *sh = ks_lock(ks, h);
        assert_null(ks_find(ks, sh, h, "key0", 4, now + 11)); /* lazy */
        ks_unlock(sh);
    }
    assert_int_equal(ks_size(ks, &expires), 999);
    /* Bounded: one small sweep never does everything. */
    {
        size_t first = ks_sweep(ks, now + 11, 50), total = first;
        assert_true(first < 499);
        for (int i = 0; i < 1000 && total < 499; i++)
            total += ks_sweep(ks, now + 11, 50);
        assert_int_equal(total, 499);
    }
    assert_int_equal(ks_size(ks, &expires), 500);
    assert_int_equal(expires, 0);
    assert_int_equal(atomic_load(&ks->expired), 500);
    ks_destroy(ks);
}

static bool gm(const char *p, const char *s)
{
    return glob_match(p, strlen(p), s, strlen(s), false);
}

static void test_glob_like_redis(void **state)
{
    (void)state;
    assert_true(gm("*", ""));
    assert_true(gm("*", "anything"));
    assert_true(gm("h?llo", "hello"));
    assert_false(gm("h?llo", "hllo"));
    assert_true(gm("h*llo", "heeeello"));
    assert_true(gm("h[ae]llo", "hallo"));
    assert_false(gm("h[ae]llo", "hillo"));
    assert_true(gm("h[^e]llo", "hallo"));
    assert_false(gm("h[^e]llo", "hello"));
    assert_true(gm("h[a-b]llo", "hbllo"));
    assert_true(gm("h[b-a]llo", "hallo"));
    assert_true(gm("h\\*llo", "h*llo"));
    assert_false(gm("h\\*llo", "hello"));
    assert_true(gm("a*b*c", "aXXbYYc"));
    assert_false(gm("a*b*c", "aXXbYY"));
    assert_true(gm("*.txt", "x.y.txt"));
    assert_false(gm("a*a*a*a*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
    assert_true(glob_match("SAVE", 4, "save", 4, true));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_incr_is_exact),
        cmocka_unit_test(test_mset_is_atomic_to_mget),
        cmocka_unit_test(test_expiry_lazy_and_active),
        cmocka_unit_test(test_glob_like_redis),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
