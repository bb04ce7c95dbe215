/* Connection groups: members joined and left from several threads at once, leaving by
 * themselves when they close, a broadcast that reaches every member once across four loops
 * through one shared buffer, framed broadcasts and weft_async_write_frame, and the two
 * slow-member policies, each of which leaves the slow member a prefix of the stream, never a
 * stream with a hole. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define NCLIENTS 40
#define NTHREADS 4

/* The refs of the connections in the order their clients connected (one at a time). */
static weft_conn_ref refs[NCLIENTS + 8];
static unsigned ref_loops[NCLIENTS + 8];
static _Atomic long opened;
static _Atomic long closes;
static _Atomic int last_close_err;
static weft_group *_Atomic the_group;
/* weft_group_count as on_close saw it, summed, and the closes that saw it. */
static _Atomic long count_in_close;

static weft_action on_open(weft_conn *c)
{
    long i = atomic_load(&opened);
    refs[i] = weft_conn_get_ref(c);
    ref_loops[i] = weft_conn_get_loop(c);
    atomic_store(&opened, i + 1);
    return WEFT_ACTION_NONE;
}

static void on_close(weft_conn *c, int err)
{
    (void)c;
    if (the_group != NULL)
        atomic_fetch_add(&count_in_close, (long)weft_group_count(the_group));
    atomic_store(&last_close_err, err);
    atomic_fetch_add(&closes, 1);
}

static weft_action quiet_traffic(weft_conn *c)
{
    (void)weft_conn_discard(c, weft_conn_get_buffered(c));
    return WEFT_ACTION_NONE;
}

static void start(wt_server *s, weft_config *cfg)
{
    atomic_store(&opened, 0);
    atomic_store(&closes, 0);
    atomic_store(&count_in_close, 0);
    the_group = NULL;
    cfg->handler.on_open = on_open;
    cfg->handler.on_close = on_close;
    assert_int_equal(wt_server_start(s, cfg), 0);
}

static void start_plain(wt_server *s, unsigned loops)
{
    weft_config cfg;
    wt_config(&cfg, quiet_traffic, loops);
    start(s, &cfg);
}

/* Connects n clients one after another, so that client i's connection is refs[i]. */
static void connect_clients(wt_server *s, int *fds, int n, int rcvbuf)
{
    for (int i = 0; i < n; i++) {
        long want = atomic_load(&opened) + 1;
        if (rcvbuf > 0) {
            /* Small segments too: the server sizes its send buffer by them, and loopback's
             * 64 KiB ones would let its kernel take a megabyte at once. */
            fds[i] = wt_connect_tcp_small(s->port, rcvbuf, 1024);
            assert_true(fds[i] >= 0);
        } else {
            fds[i] = wt_connect_tcp(s->port);
            assert_true(fds[i] >= 0);
        }
        assert_true(wt_wait_count(&opened, want, WT_TIMEOUT_MS));
    }
}

static bool buffers_back(void *arg)
{
    return wt_stats(arg).buffer_bytes == 0;
}

/* ---- membership ---- */

typedef struct churn_arg {
    int first, n; /* this thread's own clients */
    _Atomic int errors;
} churn_arg;

/* Adds its clients, then removes and re-adds them many times, while the other threads do
 * the same with theirs and everyone counts: the group ends with exactly its clients. */
static void *churn(void *p)
{
    churn_arg *a = p;
    for (int i = a->first; i < a->first + a->n; i++)
        if (weft_group_add(the_group, refs[i]) != 0)
            atomic_fetch_add(&a->errors, 1);
    for (int round = 0; round < 200; round++) {
        for (int i = a->first; i < a->first + a->n; i++) {
            if (weft_group_add(the_group, refs[i]) != WEFT_EEXIST)
                atomic_fetch_add(&a->errors, 1);
            if (weft_group_remove(the_group, refs[i]) != 0)
                atomic_fetch_add(&a->errors, 1);
            if (weft_group_remove(the_group, refs[i]) != WEFT_ENOENT)
                atomic_fetch_add(&a->errors, 1);
            if (weft_group_add(the_group, refs[i]) != 0)
                atomic_fetch_add(&a->errors, 1);
        }
        if (weft_group_count(the_group) > NCLIENTS)
            atomic_fetch_add(&a->errors, 1);
    }
    /* Half of them leave for good. */
    for (int i = a->first; i < a->first + a->n; i += 2)
        if (weft_group_remove(the_group, refs[i]) != 0)
            atomic_fetch_add(&a->errors, 1);
    return NULL;
}

static void test_add_remove_count_from_threads(void **state)
{
    (void)state;
    wt_server s;
    start_plain(&s, 4);
    int fds[NCLIENTS];
    connect_clients(&s, fds, NCLIENTS, 0);
    weft_group *g;
    assert_int_equal(weft_group_create(s.engine, NULL, &g), 0);
    the_group = g;

    pthread_t th[NTHREADS];
    churn_arg args[NTHREADS];
    for (int t = 0; t < NTHREADS; t++) {
        args[t].first = t * (NCLIENTS / NTHREADS);
        args[t].n = NCLIENTS / NTHREADS;
        atomic_init(&args[t].errors, 0);
        assert_int_equal(pthread_create(&th[t], NULL, churn, &args[t]), 0);
    }
    for (int t = 0; t < NTHREADS; t++) {
        pthread_join(th[t], NULL);
        assert_int_equal(atomic_load(&args[t].errors), 0);
    }
    assert_int_equal(weft_group_count(g), NCLIENTS / 2);

    /* What cannot be a member is refused, and nothing is left behind by it. */
    weft_conn_ref bad = refs[1];
    bad.gen += 2;
    assert_int_equal(weft_group_add(g, bad), WEFT_ESTALE);
    assert_int_equal(weft_group_remove(g, bad), WEFT_ENOENT);
    bad = refs[1];
    bad.loop = 99;
    assert_int_equal(weft_group_add(g, bad), WEFT_ESTALE);
    assert_int_equal(weft_group_add(NULL, refs[1]), WEFT_EINVAL);
    assert_int_equal(weft_group_remove(NULL, refs[1]), WEFT_EINVAL);
    assert_int_equal(weft_group_count(NULL), 0);
    weft_group_config gc;
    weft_group_config_init(&gc);
    gc.policy = (weft_group_policy)7;
    weft_group *bad_group = g;
    assert_int_equal(weft_group_create(s.engine, &gc, &bad_group), WEFT_EINVAL);
    assert_null(bad_group);
    assert_int_equal(weft_group_count(g), NCLIENTS / 2);

    /* Freed with members: they stay open, and a member of no group closes as before. */
    the_group = NULL;
    weft_group_free(g);
    weft_group_free(NULL);
    for (int i = 0; i < NCLIENTS; i++)
        wt_close(fds[i]);
    assert_true(wt_wait_count(&closes, NCLIENTS, WT_TIMEOUT_MS));
    wt_server_stop(&s);
}

static void test_members_leave_when_they_close(void **state)
{
    (void)state;
    wt_server s;
    start_plain(&s, 4);
    int fds[NCLIENTS];
    connect_clients(&s, fds, NCLIENTS, 0);
    weft_group *g, *other;
    assert_int_equal(weft_group_create(s.engine, NULL, &g), 0);
    assert_int_equal(weft_group_create(s.engine, NULL, &other), 0);
    for (int i = 0; i < NCLIENTS; i++) {
        assert_int_equal(weft_group_add(g, refs[i]), 0);
        if (i % 2 == 0) /* a connection may be in several groups */
            assert_int_equal(weft_group_add(other, refs[i]), 0);
    }
    assert_int_equal(weft_group_count(g), NCLIENTS);
    assert_int_equal(weft_group_count(other), NCLIENTS / 2);
    the_group = g;

    /* Ten close, one at a time: each has left before its on_close runs. */
    long expect_sum = 0;
    for (int i = 0; i < 10; i++) {
        wt_close(fds[i]);
        fds[i] = -1;
        assert_true(wt_wait_count(&closes, i + 1, WT_TIMEOUT_MS));
        expect_sum += NCLIENTS - 1 - i;
        assert_int_equal(weft_group_count(g), NCLIENTS - 1 - i);
    }
    assert_int_equal(atomic_load(&count_in_close), expect_sum);
    assert_int_equal(weft_group_count(other), NCLIENTS / 2 - 5);
    /* A closed member is no member: adding or removing its dead ref says so. */
    assert_int_equal(weft_group_add(g, refs[0]), WEFT_ESTALE);
    assert_int_equal(weft_group_remove(g, refs[0]), WEFT_ENOENT);

    /* The server closes the next ten, all at once, from another thread. */
    for (int i = 10; i < 20; i++)
        assert_int_equal(weft_async_abort(s.engine, refs[i]), 0);
    assert_true(wt_wait_count(&closes, 20, WT_TIMEOUT_MS));
    assert_int_equal(weft_group_count(g), NCLIENTS - 20);
    assert_int_equal(weft_group_count(other), NCLIENTS / 2 - 10);

    /* A new connection on a freed slot is not a member of anything. */
    int more[4];
    connect_clients(&s, more, 4, 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(weft_group_remove(g, refs[NCLIENTS + i]), WEFT_ENOENT);
    assert_int_equal(weft_group_count(g), NCLIENTS - 20);

    /* The engine's stop closes the rest: the groups are empty by on_shutdown. */
    the_group = NULL;
    wt_server_stop(&s);
    assert_int_equal(weft_group_count(g), 0);
    assert_int_equal(weft_group_count(other), 0);
    weft_group_free(g);
    weft_group_free(other);
    for (int i = 10; i < NCLIENTS; i++)
        wt_close(fds[i]);
    for (int i = 0; i < 4; i++)
        wt_close(more[i]);
}

/* ---- broadcast ---- */

typedef struct zc_buf {
    _Atomic long frees;
    _Atomic long frees_before_done; /* frees seen before every client had the bytes */
    _Atomic int all_received;
} zc_buf;

static void zc_free(void *data, void *ctx)
{
    zc_buf *z = ctx;
    if (!atomic_load(&z->all_received))
        atomic_fetch_add(&z->frees_before_done, 1);
    atomic_fetch_add(&z->frees, 1);
    free(data);
}

static void test_broadcast_reaches_every_member_once(void **state)
{
    (void)state;
    /* The large broadcast must wait in the members' queues: small segments keep the
     * server's kernel from taking it all at once. */
    WT_SKIP_IF(wt_missing_tcp_maxseg());
    wt_server s;
    start_plain(&s, 4);
    int fds[NCLIENTS];
    /* Small receive windows, so a large broadcast has to wait in the members' queues. */
    connect_clients(&s, fds, NCLIENTS, 4096);
    unsigned on_loop[4] = {0};
    for (int i = 0; i < NCLIENTS; i++)
        on_loop[ref_loops[i]]++;
    for (int l = 0; l < 4; l++)
        assert_true(on_loop[l] > 0); /* the members are spread over every loop */
    weft_group *g;
    assert_int_equal(weft_group_create(s.engine, NULL, &g), 0);
    for (int i = 0; i < NCLIENTS; i++)
        assert_int_equal(weft_group_add(g, refs[i]), 0);

    /* A small buffer is copied into each loop's staging area (and may be freed before the
     * clients read it); a large one waits in every member's queue as the shared buffer
     * itself, so it is freed only once the last member's socket took its last byte. */
    const size_t sizes[] = {100, 1024 * 1024};
    for (size_t k = 0; k < 2; k++) {
        size_t n = sizes[k];
        zc_buf z;
        atomic_init(&z.frees, 0);
        atomic_init(&z.frees_before_done, 0);
        atomic_init(&z.all_received, 0);
        uint8_t *buf = malloc(n);
        assert_non_null(buf);
        wt_fill(buf, n, (uint32_t)k + 7);
        assert_int_equal(weft_group_broadcast_zc(g, buf, n, 0, zc_free, &z), NCLIENTS);
        if (k == 1) {
            wt_sleep_ms(100);
            assert_int_equal(atomic_load(&z.frees), 0);
            /* One copy for the group, not one per member: no buffer grew for it. */
            assert_true(wt_stats(s.engine).buffer_bytes < n);
        }
        uint8_t *want = malloc(n), *got = malloc(n);
        wt_fill(want, n, (uint32_t)k + 7);
        for (int i = 0; i < NCLIENTS; i++) {
            if (i == NCLIENTS - 1)
                atomic_store(&z.all_received, 1); /* the last one is in the kernel by now */
            assert_int_equal(wt_recv_exact(fds[i], got, n, WT_TIMEOUT_MS), 0);
            assert_memory_equal(got, want, n);
        }
        assert_true(wt_wait_count(&z.frees, 1, WT_TIMEOUT_MS));
        wt_sleep_ms(50);
        assert_int_equal(atomic_load(&z.frees), 1);
        if (k == 1)
            assert_int_equal(atomic_load(&z.frees_before_done), 0);
        free(want);
        free(got);
    }

    /* Copying broadcasts, many in a row: every member gets each once, in one order. */
    for (int m = 0; m < 200; m++) {
        char msg[32];
        int len = snprintf(msg, sizeof(msg), "<%03d>", m);
        assert_int_equal(weft_group_broadcast(g, msg, (size_t)len, 0), NCLIENTS);
    }
    for (int i = 0; i < NCLIENTS; i++) {
        char got[200 * 5 + 1];
        assert_int_equal(wt_recv_exact(fds[i], got, 200 * 5, WT_TIMEOUT_MS), 0);
        for (int m = 0; m < 200; m++) {
            char msg[8];
            snprintf(msg, sizeof(msg), "<%03d>", m);
            assert_memory_equal(got + 5 * m, msg, 5);
        }
    }

    /* Bad broadcasts are refused whole, and a refused zero-copy buffer stays ours. */
    zc_buf z;
    atomic_init(&z.frees, 0);
    atomic_init(&z.frees_before_done, 0);
    atomic_init(&z.all_received, 0);
    char keep[4] = "abc";
    assert_int_equal(weft_group_broadcast(NULL, "x", 1, 0), WEFT_EINVAL);
    assert_int_equal(weft_group_broadcast(g, NULL, 1, 0), WEFT_EINVAL);
    assert_int_equal(weft_group_broadcast(g, "x", 1, 0x80), WEFT_EINVAL);
    assert_int_equal(weft_group_broadcast(g, "x", 1, WEFT_GROUP_FRAMED), WEFT_ENOCODEC);
    assert_int_equal(weft_group_broadcast_zc(g, keep, 3, WEFT_GROUP_FRAMED, zc_free, &z),
                     WEFT_EINVAL);
    assert_int_equal(weft_group_broadcast_zc(g, keep, 3, 0, NULL, &z), WEFT_EINVAL);
    assert_int_equal(weft_group_broadcast(g, keep, (size_t)64 << 20 | 1, 0), WEFT_EMSGSIZE);
    assert_int_equal(atomic_load(&z.frees), 0);
    assert_int_equal(weft_async_write_frame(s.engine, refs[0], "x", 1), WEFT_ENOCODEC);

    /* An empty group reaches nobody, and the buffer is freed before the call returns. */
    weft_group *empty;
    assert_int_equal(weft_group_create(s.engine, NULL, &empty), 0);
    char *lone = malloc(8);
    assert_int_equal(weft_group_broadcast_zc(empty, lone, 8, 0, zc_free, &z), 0);
    assert_int_equal(atomic_load(&z.frees), 1);
    weft_group_free(empty);

    for (int i = 0; i < NCLIENTS; i++)
        wt_close(fds[i]);
    assert_true(wt_wait_count(&closes, NCLIENTS, WT_TIMEOUT_MS));
    assert_int_equal(weft_group_count(g), 0);
    assert_true(wt_wait_for(buffers_back, s.engine, WT_TIMEOUT_MS));
    wt_server_stop(&s);
    weft_group_free(g);
}

/* A broadcast still queued when the engine stops is dropped with its connections, and its
 * buffer freed once all the same. */
static void test_broadcast_queued_at_stop_is_freed(void **state)
{
    (void)state;
    wt_server s;
    weft_config cfg;
    wt_config(&cfg, quiet_traffic, 4);
    cfg.stop_timeout_ms = 100; /* the clients read nothing: no flush to wait for */
    start(&s, &cfg);
    int fds[8];
    connect_clients(&s, fds, 8, 0);
    weft_group *g;
    assert_int_equal(weft_group_create(s.engine, NULL, &g), 0);
    for (int i = 0; i < 8; i++)
        assert_int_equal(weft_group_add(g, refs[i]), 0);
    zc_buf z;
    atomic_init(&z.frees, 0);
    atomic_init(&z.frees_before_done, 0);
    atomic_init(&z.all_received, 1);
    size_t n = 512 * 1024;
    assert_int_equal(weft_group_broadcast_zc(g, malloc(n), n, 0, zc_free, &z), 8);
    weft_engine_stop(s.engine);
    assert_int_equal(weft_group_broadcast(g, "x", 1, 0), WEFT_ESHUTDOWN);
    wt_server_stop(&s);
    assert_int_equal(atomic_load(&z.frees), 1);
    assert_int_equal(weft_group_count(g), 0);
    weft_group_free(g);
    for (int i = 0; i < 8; i++)
        wt_close(fds[i]);
}

/* "abc" and "de" behind a 2-byte big-endian length that counts itself. */
static const uint8_t lf_abc[] = {0, 5, 'a', 'b', 'c'};
static const uint8_t lf_de[] = {0, 4, 'd', 'e'};

static void test_framed_broadcast_and_async_write_frame(void **state)
{
    (void)state;
    /* Lines, sent with "\r\n". */
    wt_server s;
    weft_config cfg;
    wt_config(&cfg, quiet_traffic, 4);
    cfg.codec.kind = WEFT_CODEC_LINE;
    cfg.codec.line.encode_crlf = true;
    start(&s, &cfg);
    int fds[8];
    connect_clients(&s, fds, 8, 0);
    weft_group *g;
    assert_int_equal(weft_group_create(s.engine, NULL, &g), 0);
    for (int i = 0; i < 8; i++)
        assert_int_equal(weft_group_add(g, refs[i]), 0);
    assert_int_equal(weft_group_broadcast(g, "hello", 5, WEFT_GROUP_FRAMED), 8);
    assert_int_equal(weft_group_broadcast(g, "raw", 3, 0), 8);
    assert_int_equal(weft_async_write_frame(s.engine, refs[3], "just you", 8), 0);
    assert_int_equal(weft_async_write_frame(NULL, refs[3], "x", 1), WEFT_EINVAL);
    for (int i = 0; i < 8; i++) {
        char got[16];
        assert_int_equal(wt_recv_exact(fds[i], got, 10, WT_TIMEOUT_MS), 0);
        assert_memory_equal(got, "hello\r\nraw", 10);
    }
    char got[16];
    assert_int_equal(wt_recv_exact(fds[3], got, 10, WT_TIMEOUT_MS), 0);
    assert_memory_equal(got, "just you\r\n", 10);
    for (int i = 0; i < 8; i++)
        wt_close(fds[i]);
    assert_true(wt_wait_count(&closes, 8, WT_TIMEOUT_MS));
    wt_server_stop(&s);
    weft_group_free(g);

    /* Length fields: a 2-byte big-endian length that counts itself, and a cap. */
    wt_config(&cfg, quiet_traffic, 4);
    cfg.codec.kind = WEFT_CODEC_LENGTH_FIELD;
    cfg.codec.length_field.length_field_length = 2;
    cfg.codec.length_field.length_includes_length_field_length = true;
    start(&s, &cfg);
    connect_clients(&s, fds, 8, 0);
    assert_int_equal(weft_group_create(s.engine, NULL, &g), 0);
    for (int i = 0; i < 8; i++)
        assert_int_equal(weft_group_add(g, refs[i]), 0);
    assert_int_equal(weft_group_broadcast(g, "abc", 3, WEFT_GROUP_FRAMED), 8);
    assert_int_equal(weft_async_write_frame(s.engine, refs[5], "de", 2), 0);
    static uint8_t big[70000];
    assert_int_equal(weft_group_broadcast(g, big, sizeof(big), WEFT_GROUP_FRAMED), WEFT_EMSGSIZE);
    assert_int_equal(weft_async_write_frame(s.engine, refs[5], big, sizeof(big)), WEFT_EMSGSIZE);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(wt_recv_exact(fds[i], got, 5, WT_TIMEOUT_MS), 0);
        assert_memory_equal(got, lf_abc, 5);
    }
    assert_int_equal(wt_recv_exact(fds[5], got, 4, WT_TIMEOUT_MS), 0);
    assert_memory_equal(got, lf_de, 4);
    for (int i = 0; i < 8; i++)
        wt_close(fds[i]);
    assert_true(wt_wait_count(&closes, 8, WT_TIMEOUT_MS));
    wt_server_stop(&s);
    weft_group_free(g);
}

/* ---- slow members ---- */

#define NFAST  4
#define MSG_SZ (16 * 1024)

static _Atomic long slow_calls;
static weft_conn_ref slow_ref;
static _Atomic long slow_at; /* the broadcast during which on_slow ran */
static _Atomic long now_broadcasting;

static void on_slow(weft_group *g, weft_conn_ref ref, void *arg)
{
    (void)g;
    (void)arg;
    slow_ref = ref;
    atomic_store(&slow_at, atomic_load(&now_broadcasting));
    atomic_fetch_add(&slow_calls, 1);
}

/* Reads everything fd has until it stays quiet for quiet_ms (or its end): the count. */
static size_t drain(int fd, uint8_t *buf, size_t cap, int quiet_ms, bool *ended)
{
    size_t n = 0;
    *ended = false;
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        if (wt_poll(&p, 1, quiet_ms) <= 0)
            return n;
        ssize_t r = recv(fd, (void *)(buf + n), n < cap ? cap - n : 1, 0);
        if (r <= 0) {
            *ended = true;
            return n;
        }
        n += (size_t)r < cap - n ? (size_t)r : cap - n;
    }
}

/* Broadcasts numbered MSG_SZ messages, each read by the fast clients before the next goes,
 * until the never-reading client has been found slow, and a few more after. Returns the
 * number broadcast. */
static long broadcast_until_slow(weft_group *g, int *fast, uint8_t *msg, uint8_t *got)
{
    long sent = 0;
    long after = -1;
    while (sent < 2000 && (after < 0 || sent < after + 5)) {
        memset(msg, (int)(sent & 0xff), MSG_SZ);
        memcpy(msg, &sent, sizeof(sent));
        atomic_store(&now_broadcasting, sent);
        int reached = weft_group_broadcast(g, msg, MSG_SZ, 0);
        long n = atomic_load(&slow_calls) ? NFAST : NFAST + 1;
        assert_int_equal(reached, n);
        if (after < 0 && atomic_load(&slow_calls) > 0)
            after = sent;
        for (int i = 0; i < NFAST; i++) {
            assert_int_equal(wt_recv_exact(fast[i], got, MSG_SZ, WT_TIMEOUT_MS), 0);
            assert_memory_equal(got, msg, MSG_SZ);
        }
        sent++;
    }
    assert_true(after >= 0);
    return sent;
}

/* What the slow client got is messages 0, 1, ... with none missing: a prefix. */
static long check_prefix(const uint8_t *buf, size_t n)
{
    long k = 0;
    for (size_t off = 0; off + MSG_SZ <= n; off += MSG_SZ, k++) {
        long seq;
        memcpy(&seq, buf + off, sizeof(seq));
        assert_int_equal(seq, k);
        assert_int_equal(buf[off + MSG_SZ - 1], (uint8_t)(k & 0xff));
    }
    return k;
}

static void slow_test(weft_group_policy policy)
{
    atomic_store(&slow_calls, 0);
    wt_server s;
    start_plain(&s, 4);
    int fds[NFAST + 1];
    connect_clients(&s, fds, NFAST, 0);
    connect_clients(&s, fds + NFAST, 1, 4096); /* reads nothing, with a small window */
    weft_group_config gc;
    weft_group_config_init(&gc);
    gc.policy = policy;
    gc.slow_bytes = 64 * 1024;
    gc.on_slow = on_slow;
    weft_group *g;
    assert_int_equal(weft_group_create(s.engine, &gc, &g), 0);
    for (int i = 0; i <= NFAST; i++)
        assert_int_equal(weft_group_add(g, refs[i]), 0);

    uint8_t *msg = malloc(MSG_SZ), *got = malloc(MSG_SZ);
    long sent = broadcast_until_slow(g, fds, msg, got);
    assert_int_equal(atomic_load(&slow_calls), 1);
    assert_true(weft_conn_ref_equal(slow_ref, refs[NFAST]));
    assert_int_equal(weft_group_count(g), NFAST);
    /* Out of the group, for good: not even a member to remove. */
    assert_int_equal(weft_group_remove(g, refs[NFAST]), WEFT_ENOENT);

    size_t cap = (size_t)sent * MSG_SZ;
    uint8_t *all = malloc(cap);
    bool ended;
    size_t n = drain(fds[NFAST], all, cap, 500, &ended);
    long k = check_prefix(all, n);
    if (policy == WEFT_GROUP_SKIP_SLOW) {
        /* Still open, and it gets every message up to the one it was found slow at. */
        assert_false(ended);
        assert_int_equal(n % MSG_SZ, 0);
        assert_int_equal(k, atomic_load(&slow_at));
        assert_int_equal(atomic_load(&closes), 0);
        assert_int_equal(weft_async_write(s.engine, refs[NFAST], "!", 1), 0);
        assert_int_equal(wt_recv_exact(fds[NFAST], got, 1, WT_TIMEOUT_MS), 0);
        /* Joining again is a deliberate rejoin: from then on it gets the broadcasts. */
        assert_int_equal(weft_group_add(g, refs[NFAST]), 0);
        assert_int_equal(weft_group_broadcast(g, "?", 1, 0), NFAST + 1);
        assert_int_equal(wt_recv_exact(fds[NFAST], got, 1, WT_TIMEOUT_MS), 0);
        assert_int_equal(got[0], '?');
    } else {
        /* Closed: a reset, after at most the messages it was sent, none missing. */
        assert_true(ended);
        assert_true(k <= atomic_load(&slow_at));
        assert_true(wt_wait_count(&closes, 1, WT_TIMEOUT_MS));
        assert_int_equal(atomic_load(&last_close_err), WEFT_ECANCELED);
    }
    free(all);
    free(msg);
    free(got);
    for (int i = 0; i <= NFAST; i++)
        wt_close(fds[i]);
    assert_true(wt_wait_count(&closes, NFAST + 1, WT_TIMEOUT_MS));
    assert_int_equal(weft_group_count(g), 0);
    assert_true(wt_wait_for(buffers_back, s.engine, WT_TIMEOUT_MS));
    wt_server_stop(&s);
    weft_group_free(g);
}

static void test_slow_member_skipped_leaves_with_a_prefix(void **state)
{
    (void)state;
    slow_test(WEFT_GROUP_SKIP_SLOW);
}

static void test_slow_member_closed(void **state)
{
    (void)state;
    slow_test(WEFT_GROUP_CLOSE_SLOW);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_remove_count_from_threads),
        cmocka_unit_test(test_members_leave_when_they_close),
        cmocka_unit_test(test_broadcast_reaches_every_member_once),
        cmocka_unit_test(test_broadcast_queued_at_stop_is_freed),
        cmocka_unit_test(test_framed_broadcast_and_async_write_frame),
        cmocka_unit_test(test_slow_member_skipped_leaves_with_a_prefix),
        cmocka_unit_test(test_slow_member_closed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
