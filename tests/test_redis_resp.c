/* The RESP2 request codec of weft-redis: every request form fed whole, split at every
 * index and byte by byte, placed against a PROT_NONE page so an over-read crashes; every
 * malformed form gets Redis's error text; and the reply encoders. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "platform.h" /* the guard page, from core's platform layer on every system */
#include "reply.h"
#include "resp.h"

/* ---- a buffer whose last byte sits right before an unreadable page ---- */

typedef struct guard {
    uint8_t *base;
    size_t size; /* readable bytes */
} guard;

/* A reservation one page longer than the buffer, all of it committed but that last page,
 * which stays inaccessible. */
static guard guard_make(size_t max)
{
    size_t page = weft__page_size();
    size_t size = (max + page - 1) / page * page;
    guard g;
    g.base = weft__vm_reserve(size + page, page);
    assert_non_null(g.base);
    assert_int_equal(weft__vm_commit(g.base, size), 0);
    g.size = size;
    return g;
}

static void guard_free(guard *g)
{
    weft__vm_release(g->base, g->size + weft__page_size());
}

/* Copies data to the very end of the readable area and returns where it went. */
static const uint8_t *guard_put(guard *g, const void *data, size_t len)
{
    uint8_t *p = g->base + g->size - len;
    assert_true(len <= g->size);
    memcpy(p, data, len);
    return p;
}

/* ---- decoding into a printable signature: "argc[len:arg]..." per request, ";" between ---- */

typedef struct sig {
    char text[8192];
    size_t len;
    int requests;
} sig;

static void sig_add(sig *s, const resp_request *req)
{
    s->len += (size_t)snprintf(s->text + s->len, sizeof(s->text) - s->len, "%d", req->argc);
    for (int i = 0; i < req->argc; i++) {
        /* Raw bytes, NUL included: printf would stop at a NUL. */
        s->len +=
            (size_t)snprintf(s->text + s->len, sizeof(s->text) - s->len, "[%zu:", req->lens[i]);
        assert_true(s->len + req->lens[i] + 2 < sizeof(s->text));
        memcpy(s->text + s->len, req->argv[i], req->lens[i]);
        s->len += req->lens[i];
        s->text[s->len++] = ']';
    }
    s->len += (size_t)snprintf(s->text + s->len, sizeof(s->text) - s->len, ";");
    s->requests++;
}

typedef struct feeder {
    weft_codec codec;
    weft_codec_state st;
    guard g;
    int last_rc;
    const char *reason;
} feeder;

static void feeder_init(feeder *f, const resp_limits *lim, size_t max)
{
    memset(f, 0, sizeof(*f));
    f->codec.vtable = &resp_codec;
    f->codec.ctx = (void *)lim;
    f->g = guard_make(max);
}

static void feeder_free(feeder *f)
{
    resp_codec.state_destroy(&f->codec, &f->st);
    guard_free(&f->g);
}

/* Feeds input as the engine would: the unconsumed bytes so far plus `step` new ones each
 * time (step 0: split once at `split`). Appends every request to s. Returns the first
 * error, or how many bytes were left undecoded (0: everything was decoded). */
static int feed(feeder *f, const uint8_t *in, size_t n, size_t step, size_t split, sig *s)
{
    size_t start = 0, avail = 0;

    while (avail < n) {
        if (step == 0)
            avail = avail < split ? split : n;
        else
            avail = avail + step < n ? avail + step : n;
        for (;;) {
            weft_frame fr;
            const uint8_t *p = guard_put(&f->g, in + start, avail - start);
            int rc;
            memset(&fr, 0, sizeof(fr));
            rc = resp_codec.decode(&f->codec, &f->st, p, avail - start, &fr);
            assert_true(fr.consumed <= avail - start);
            if (rc < 0) {
                f->reason = fr.reason;
                return rc;
            }
            start += fr.consumed;
            if (rc == WEFT_AGAIN)
                break;
            assert_int_equal(rc, WEFT_FRAME);
            assert_non_null(fr.message);
            assert_ptr_equal(((const resp_request *)fr.message)->frame, p + fr.offset);
            sig_add(s, fr.message);
            if (start == avail)
                break;
        }
    }
    return (int)(n - start);
}

typedef struct good_case {
    const char *in;
    size_t len; /* 0: strlen */
    const char *want;
    size_t want_len; /* 0: strlen */
} good_case;

static const good_case good[] = {
    {"*1\r\n$4\r\nPING\r\n", 0, "1[4:PING];", 0},
    {"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n", 0, "2[3:GET][3:key];", 0},
    {"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n", 0, "3[3:SET][1:k][0:];", 0},
    {"*2\r\n$4\r\nECHO\r\n$4\r\na\r\nb\r\n", 0, "2[4:ECHO][4:a\r\nb];", 0},
    {"PING\r\n", 0, "1[4:PING];", 0},
    {"PING\n", 0, "1[4:PING];", 0},
    {"set  k   v\r\n", 0, "3[3:set][1:k][1:v];", 0},
    {"set k \"a b\\n\\x41\"\r\n", 0, "3[3:set][1:k][5:a b\nA];", 0},
    {"set k 'it\\'s'\r\n", 0, "3[3:set][1:k][4:it's];", 0},
    {"\r\n", 0, "0;", 0},
    {"*0\r\n", 0, "0;", 0},
    {"*-1\r\n", 0, "0;", 0},
    {"*1\r\n$4\r\nPING\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n", 0,
     "1[4:PING];1[4:PING];2[4:ECHO][2:hi];", 0},
    {"*2\r\n$4\r\nECHO\r\n$3\r\na\0b\r\n", 23, "2[4:ECHO][3:a\0b];", 17},
};

static void check_good(const good_case *gc, size_t len, size_t step, size_t split)
{
    feeder f;
    sig s = {0};
    resp_limits lim;
    size_t want_len = gc->want_len ? gc->want_len : strlen(gc->want);

    resp_limits_init(&lim);
    feeder_init(&f, &lim, 4096);
    if (feed(&f, (const uint8_t *)gc->in, len, step, split, &s) != 0)
        fail_msg("input \"%s\" step %zu split %zu: left over after \"%s\"", gc->in, step, split,
                 s.text);
    if (s.len != want_len || memcmp(s.text, gc->want, s.len) != 0) {
        fail_msg("input %zu bytes, step %zu split %zu: got '%s'", len, step, split, s.text);
    }
    feeder_free(&f);
}

static void test_good_requests_whole_split_and_bytewise(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        size_t len = good[i].len ? good[i].len : strlen(good[i].in);
        check_good(&good[i], len, len, 0); /* whole */
        check_good(&good[i], len, 1, 0);   /* byte by byte */
        for (size_t split = 1; split < len; split++)
            check_good(&good[i], len, 0, split);
    }
}

typedef struct bad_case {
    const char *in;
    const char *reason;
} bad_case;

static const bad_case bad[] = {
    {"*x\r\n", "Protocol error: invalid multibulk length"},
    {"*1x\r\n", "Protocol error: invalid multibulk length"},
    {"*+1\r\n", "Protocol error: invalid multibulk length"},
    {"*01\r\n", "Protocol error: invalid multibulk length"},
    {"* 1\r\n", "Protocol error: invalid multibulk length"},
    {"*1048577\r\n", "Protocol error: invalid multibulk length"},
    {"*99999999999999999999999\r\n", "Protocol error: invalid multibulk length"},
    {"*1\rX", "Protocol error: invalid multibulk length"},
    {"*1\r\nX", "Protocol error: expected '$', got 'X'"},
    {"*1\r\n:1\r\n", "Protocol error: expected '$', got ':'"},
    /* The offending byte is quoted escaped: no raw ESC or newline reaches a reply or log. */
    {"*1\r\n\x1b[2J", "Protocol error: expected '$', got '\\x1b'"},
    {"*1\r\n\n", "Protocol error: expected '$', got '\\x0a'"},
    {"*1\r\n\\", "Protocol error: expected '$', got '\\\\'"},
    {"*2147483648\r\n", "Protocol error: invalid multibulk length"},
    {"*1\r\n$-1\r\n", "Protocol error: invalid bulk length"},
    {"*1\r\n$x\r\n", "Protocol error: invalid bulk length"},
    {"*1\r\n$\r\n", "Protocol error: invalid bulk length"},
    {"*1\r\n$536870913\r\n", "Protocol error: invalid bulk length"},
    {"*1\r\n$99999999999999999999\r\n", "Protocol error: invalid bulk length"},
    {"*1\r\n$1\rX", "Protocol error: invalid bulk length"},
    {"*1\r\n$1\r\nab\r\n", "Protocol error: expected CRLF after bulk data"},
    {"*1\r\n$1\r\na\n\n", "Protocol error: expected CRLF after bulk data"},
    {"set k \"abc\r\n", "Protocol error: unbalanced quotes in request"},
    {"set k \"a\"b\r\n", "Protocol error: unbalanced quotes in request"},
    {"set k 'abc\r\n", "Protocol error: unbalanced quotes in request"},
};

static void check_bad(const bad_case *bc, size_t step, size_t split)
{
    feeder f;
    sig s = {0};
    resp_limits lim;
    size_t len = strlen(bc->in);

    resp_limits_init(&lim);
    feeder_init(&f, &lim, 4096);
    assert_int_equal(feed(&f, (const uint8_t *)bc->in, len, step, split, &s), WEFT_EPROTO);
    feeder_free(&f);
    /* Checked after the parser is gone: the engine keeps the reason pointer for
     * weft_conn_get_decode_error, so it must be static text. */
    assert_string_equal(f.reason, bc->reason);
}

static void test_malformed_requests_get_redis_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t len = strlen(bad[i].in);
        check_bad(&bad[i], len, 0);
        check_bad(&bad[i], 1, 0);
        for (size_t split = 1; split < len; split++)
            check_bad(&bad[i], 0, split);
    }
}

static void test_too_long_lines_are_refused(void **state)
{
    resp_limits lim;
    feeder f;
    sig s = {0};
    uint8_t *big = malloc(70 * 1024);

    (void)state;
    resp_limits_init(&lim);
    memset(big, 'a', 70 * 1024);
    feeder_init(&f, &lim, 80 * 1024);
    assert_int_equal(feed(&f, big, 70 * 1024, 4096, 0, &s), WEFT_EPROTO);
    assert_string_equal(f.reason, "Protocol error: too big inline request");
    feeder_free(&f);

    big[0] = '*';
    feeder_init(&f, &lim, 80 * 1024);
    assert_int_equal(feed(&f, big, 70 * 1024, 70 * 1024, 0, &s), WEFT_EPROTO);
    assert_string_equal(f.reason, "Protocol error: too big mbulk count string");
    feeder_free(&f);

    memcpy(big, "*1\r\n$", 5);
    feeder_init(&f, &lim, 80 * 1024);
    assert_int_equal(feed(&f, big, 70 * 1024, 70 * 1024, 0, &s), WEFT_EPROTO);
    assert_string_equal(f.reason, "Protocol error: too big bulk count string");
    feeder_free(&f);
    free(big);
}

static void test_configured_limits(void **state)
{
    resp_limits lim;
    feeder f;
    sig s = {0};
    const char *ok = "*2\r\n$3\r\nGET\r\n$10\r\n0123456789\r\n";
    const char *big = "*2\r\n$3\r\nGET\r\n$11\r\n01234567890\r\n";
    const char *many = "*3\r\n";

    (void)state;
    resp_limits_init(&lim);
    lim.max_bulk = 10;
    lim.max_args = 2;
    feeder_init(&f, &lim, 4096);
    assert_int_equal(feed(&f, (const uint8_t *)ok, strlen(ok), 1, 0, &s), 0);
    assert_int_equal(feed(&f, (const uint8_t *)big, strlen(big), 1, 0, &s), WEFT_EPROTO);
    assert_string_equal(f.reason, "Protocol error: invalid bulk length");
    assert_int_equal(feed(&f, (const uint8_t *)many, strlen(many), 1, 0, &s), WEFT_EPROTO);
    assert_string_equal(f.reason, "Protocol error: invalid multibulk length");
    feeder_free(&f);
}

/* A 1 MiB bulk arriving in small reads: the decoder asks for the exact total it needs and
 * resumes without rescanning (checked by the byte-exact need). */
static void test_big_bulk_reports_need_and_resumes(void **state)
{
    size_t vlen = 1024 * 1024, hlen;
    char head[64];
    uint8_t *in;
    weft_codec codec = {.vtable = &resp_codec};
    weft_codec_state st = {0};
    weft_frame fr;
    int rc;

    (void)state;
    hlen = (size_t)snprintf(head, sizeof(head), "*2\r\n$3\r\nSET\r\n$%zu\r\n", vlen);
    in = malloc(hlen + vlen + 2);
    memcpy(in, head, hlen);
    memset(in + hlen, 'v', vlen);
    memcpy(in + hlen + vlen, "\r\n", 2);

    memset(&fr, 0, sizeof(fr));
    rc = resp_codec.decode(&codec, &st, in, hlen + 10, &fr);
    assert_int_equal(rc, WEFT_AGAIN);
    assert_int_equal(fr.consumed, 0);
    assert_int_equal(fr.need, hlen + vlen + 2);
    for (size_t have = hlen + 10; have < hlen + vlen + 2; have += 65536) {
        memset(&fr, 0, sizeof(fr));
        assert_int_equal(resp_codec.decode(&codec, &st, in, have, &fr), WEFT_AGAIN);
    }
    memset(&fr, 0, sizeof(fr));
    rc = resp_codec.decode(&codec, &st, in, hlen + vlen + 2, &fr);
    assert_int_equal(rc, WEFT_FRAME);
    assert_int_equal(fr.length, hlen + vlen + 2);
    {
        const resp_request *req = fr.message;
        assert_int_equal(req->argc, 2);
        assert_int_equal(req->lens[1], vlen);
        assert_ptr_equal(req->argv[1], in + hlen);
    }
    resp_codec.state_destroy(&codec, &st);
    free(in);
}

/* ---- memory: what a peer can make the parser hold ---- */

/* One decode of buf[0..len) on st; returns the code and fills *fr. */
static int decode_once(weft_codec *codec, weft_codec_state *st, const uint8_t *buf, size_t len,
                       weft_frame *fr)
{
    memset(fr, 0, sizeof(*fr));
    return resp_codec.decode(codec, st, buf, len, fr);
}

/* "*n\r\n$6\r\nEXISTS\r\n" and n - 1 times "$1\r\nx\r\n": n arguments in 7 bytes each. */
static uint8_t *many_args(size_t n, size_t *len)
{
    char head[32];
    size_t hlen = (size_t)snprintf(head, sizeof(head), "*%zu\r\n$6\r\nEXISTS\r\n", n);
    uint8_t *in = malloc(hlen + (n - 1) * 7);
    assert_non_null(in);
    memcpy(in, head, hlen);
    for (size_t i = 0; i < n - 1; i++)
        memcpy(in + hlen + i * 7, "$1\r\nx\r\n", 7);
    *len = hlen + (n - 1) * 7;
    return in;
}

/* After a 1,000,000-argument command the parser gives its arrays back, whether the caller
 * says it is done with the request or the next request comes: an idle connection holds what
 * it held before. While the command arrives, the parser holds at most about twice what the
 * arguments that arrived need, never what the header declared. */
static void test_parser_returns_to_idle_size_after_a_million_arguments(void **state)
{
    const uint8_t *ping = (const uint8_t *)"*1\r\n$4\r\nPING\r\n";
    size_t n = 1000000, len, idle, per_arg = 3 * sizeof(size_t);
    uint8_t *in = many_args(n, &len);
    weft_codec codec = {.vtable = &resp_codec};
    weft_codec_state st = {0};
    weft_frame fr;

    (void)state;
    assert_int_equal(resp_state_footprint(&st), 0);
    assert_int_equal(decode_once(&codec, &st, ping, 14, &fr), WEFT_FRAME);
    resp_request_done(fr.message);
    idle = resp_state_footprint(&st);
    assert_true(idle > 0 && idle < 1024);

    for (int round = 0; round < 2; round++) {
        /* As the engine feeds it: everything unconsumed so far, 64 KiB more each time. */
        for (size_t have = 64 * 1024; have < len; have += 64 * 1024) {
            size_t arrived = have / 7 + 1;
            assert_int_equal(decode_once(&codec, &st, in, have, &fr), WEFT_AGAIN);
            assert_true(resp_state_footprint(&st) <= idle + 2 * arrived * per_arg);
        }
        assert_int_equal(decode_once(&codec, &st, in, len, &fr), WEFT_FRAME);
        assert_int_equal(fr.consumed, len);
        {
            const resp_request *req = fr.message;
            assert_int_equal(req->argc, (int)n);
            assert_memory_equal(req->argv[n - 1], "x", 1);
            assert_int_equal(req->lens[n - 1], 1);
        }
        assert_true(resp_state_footprint(&st) >= n * per_arg);
        if (round == 0) {
            /* The caller is done with it: back to no more than idle at once. */
            resp_request_done(fr.message);
            assert_true(resp_state_footprint(&st) <= idle);
        }
        /* The next small request (round 1: without a done) finds the parser at idle size. */
        assert_int_equal(decode_once(&codec, &st, ping, 14, &fr), WEFT_FRAME);
        assert_int_equal(((const resp_request *)fr.message)->argc, 1);
        resp_request_done(fr.message);
        assert_int_equal(resp_state_footprint(&st), idle);
    }
    resp_codec.state_destroy(&codec, &st);
    free(in);
}

/* A header's count or length is a claim, not bytes: "*1000000000" and "$536870912" make the
 * parser reserve nothing, and a long inline line costs nothing until it is complete. */
static void test_declared_sizes_reserve_nothing(void **state)
{
    const char *claims[] = {
        "*1000000000\r\n$1\r\nx\r\n",
        "*2\r\n$3\r\nSET\r\n$536870912\r\nabc",
    };
    resp_limits lim;
    weft_codec codec = {.vtable = &resp_codec};
    uint8_t *line = malloc(60 * 1024);
    weft_frame fr;

    (void)state;
    resp_limits_init(&lim);
    lim.max_args = UINT64_MAX; /* the count limit alone must not be what protects us */
    codec.ctx = &lim;
    for (size_t i = 0; i < sizeof(claims) / sizeof(claims[0]); i++) {
        weft_codec_state st = {0};
        assert_int_equal(
            decode_once(&codec, &st, (const uint8_t *)claims[i], strlen(claims[i]), &fr),
            WEFT_AGAIN);
        assert_true(resp_state_footprint(&st) < 1024);
        resp_codec.state_destroy(&codec, &st);
    }
    {
        weft_codec_state st = {0};
        memset(line, 'a', 60 * 1024);
        assert_int_equal(decode_once(&codec, &st, line, 60 * 1024, &fr), WEFT_AGAIN);
        assert_true(resp_state_footprint(&st) < 1024);
        resp_codec.state_destroy(&codec, &st);
    }
    free(line);
}

/* ---- replies ---- */

static void expect(reply_buf *rb, const char *want, size_t len)
{
    assert_int_equal(rb->len, len);
    assert_memory_equal(rb->data, want, len);
    reply_reset(rb, 1 << 20);
}

static void test_reply_encoding(void **state)
{
    reply_buf rb;

    (void)state;
    reply_init(&rb);
    reply_ok(&rb);
    expect(&rb, "+OK\r\n", 5);
    reply_simple(&rb, "PONG");
    expect(&rb, "+PONG\r\n", 7);
    reply_error(&rb, "ERR bad\r\nthing");
    expect(&rb, "-ERR bad  thing\r\n", 17);
    reply_errorf(&rb, "ERR %d", 42);
    expect(&rb, "-ERR 42\r\n", 9);
    reply_int(&rb, 0);
    reply_int(&rb, 1);
    reply_int(&rb, -1);
    reply_int(&rb, INT64_MIN);
    expect(&rb, ":0\r\n:1\r\n:-1\r\n:-9223372036854775808\r\n", 36);
    reply_bulk(&rb, "a\0b", 3);
    reply_bulk(&rb, "", 0);
    reply_null(&rb);
    expect(&rb, "$3\r\na\0b\r\n$0\r\n\r\n$-1\r\n", 20);
    reply_array(&rb, 2);
    reply_bulk_ll(&rb, 12345);
    reply_bulk_cstr(&rb, "x");
    reply_null_array(&rb);
    expect(&rb, "*2\r\n$5\r\n12345\r\n$1\r\nx\r\n*-1\r\n", 27);
    /* Growth past the first allocation keeps every byte. */
    for (int i = 0; i < 10000; i++)
        reply_int(&rb, 7);
    assert_int_equal(rb.len, 40000);
    assert_memory_equal(rb.data + 39996, ":7\r\n", 4);
    reply_free(&rb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_requests_whole_split_and_bytewise),
        cmocka_unit_test(test_malformed_requests_get_redis_errors),
        cmocka_unit_test(test_too_long_lines_are_refused),
        cmocka_unit_test(test_configured_limits),
        cmocka_unit_test(test_big_bulk_reports_need_and_resumes),
        cmocka_unit_test(test_parser_returns_to_idle_size_after_a_million_arguments),
        cmocka_unit_test(test_declared_sizes_reserve_nothing),
        cmocka_unit_test(test_reply_encoding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
