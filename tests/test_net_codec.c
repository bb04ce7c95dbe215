/* Codecs over loopback: a server that echoes every decoded frame through the encoder must
 * give back exactly the frames a client sent, in order, however the client cuts its bytes
 * into writes. A bad frame costs its own connection only (or only itself, for the line and
 * delimiter codecs unless close_on_error is set), and the engine's frame and error counters
 * say exactly what happened.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "counters.h"
#include "harness.h"

/* ---- what the server saw, recorded on the loop thread, checked on the test thread ---- */

#define SEEN_MAX 16

static _Atomic long frame_errors; /* weft_conn_next_frame returned < 0 */
static _Atomic long last_frame_error;
static _Atomic long write_errors; /* weft_conn_write_frame failed */
static _Atomic long frames_seen;
static _Atomic long seen_len[SEEN_MAX]; /* the first frames' lengths */

/* The shared counts (wt_counts) and this file's own. */
static void reset_state(void)
{
    wt_counters_reset();
    atomic_store(&frame_errors, 0);
    atomic_store(&last_frame_error, 0);
    atomic_store(&write_errors, 0);
    atomic_store(&frames_seen, 0);
    for (int i = 0; i < SEEN_MAX; i++)
        atomic_store(&seen_len[i], -1);
}

/* Closes by error: on_close(conn, 0), WEFT_ETOOLONG, WEFT_ECORRUPT, or anything else. */
static long closed_ok(void)
{
    return wt_closed_with(0);
}

static long closed_toolong(void)
{
    return wt_closed_with(WEFT_ETOOLONG);
}

static long closed_corrupt(void)
{
    return wt_closed_with(WEFT_ECORRUPT);
}

static long closed_other(void)
{
    return atomic_load(&wt_counts.closed) - closed_ok() - closed_toolong() - closed_corrupt();
}

/* Echoes every complete frame, framed again by the same codec. */
static weft_action echo_frames(weft_conn *c)
{
    const uint8_t *f;
    size_t len;
    int rc;
    while ((rc = weft_conn_next_frame(c, &f, &len)) == 1) {
        long i = atomic_fetch_add(&frames_seen, 1);
        if (i < SEEN_MAX)
            atomic_store(&seen_len[i], (long)len);
        if (weft_conn_write_frame(c, f, len) != 0) {
            atomic_fetch_add(&write_errors, 1);
            return WEFT_ACTION_CLOSE;
        }
    }
    if (rc < 0) {
        atomic_store(&last_frame_error, rc);
        atomic_fetch_add(&frame_errors, 1);
    }
    return WEFT_ACTION_NONE;
}

static void codec_server_config(weft_config *cfg, const weft_codec_config *codec)
{
    wt_config(cfg, echo_frames, 1);
    cfg->handler.on_open = wt_count_open;
    cfg->handler.on_close = wt_count_close;
    cfg->codec = *codec;
}

/* ---- growing byte buffers and a fixed-seed generator ---- */

typedef struct bytes {
    uint8_t *p;
    size_t len, cap;
} bytes;

static void bytes_put(bytes *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 256;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    if (n > 0)
        memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void bytes_free(bytes *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

static uint64_t rnd(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* ---- the codecs under test, with the client's own framing for each ---- */

typedef struct codec_case codec_case;
struct codec_case {
    const char *name;
    weft_codec_config codec;
    size_t max_payload; /* largest legal payload */
    size_t fixed;       /* > 0: every payload is this long */
    /* Writes a payload of n bytes that the codec can carry into p. */
    void (*payload)(const codec_case *cc, uint8_t *p, size_t n, uint64_t *rng);
    /* Appends the frame the client sends; i varies the framing where a codec allows it. */
    void (*frame_out)(const codec_case *cc, bytes *b, const uint8_t *p, size_t n, size_t i);
    /* Appends the frame the server sends back. */
    void (*frame_back)(const codec_case *cc, bytes *b, const uint8_t *p, size_t n);
};

static void random_payload(const codec_case *cc, uint8_t *p, size_t n, uint64_t *rng)
{
    (void)cc;
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)rnd(rng);
}

/* Lines: any byte but "\n"; a "\r" anywhere but last, where it would join the delimiter. */
static void line_payload(const codec_case *cc, uint8_t *p, size_t n, uint64_t *rng)
{
    (void)cc;
    for (size_t i = 0; i < n; i++) {
        uint64_t r = rnd(rng);
        uint8_t b = (r & 15) == 0 ? '\r' : (uint8_t)(r >> 8);
        if (b == '\n' || (b == '\r' && i + 1 == n))
            b = 'x';
        p[i] = b;
    }
}

static void line_out(const codec_case *cc, bytes *b, const uint8_t *p, size_t n, size_t i)
{
    (void)cc;
    bytes_put(b, p, n);
    if (i % 3 == 0)
        bytes_put(b, "\r\n", 2);
    else
        bytes_put(b, "\n", 1);
}

static void line_back(const codec_case *cc, bytes *b, const uint8_t *p, size_t n)
{
    (void)cc;
    bytes_put(b, p, n);
    bytes_put(b, "\n", 1);
}

/* The delimiter codec runs with "\r\n" (the encoder's) and "--END--". */
static const weft_delimiter delim_crlf = {{'\r', '\n'}, 2};
static const weft_delimiter delim_end = {{'-', '-', 'E', 'N', 'D', '-', '-'}, 7};

static bool mem_has(const uint8_t *p, size_t n, const weft_delimiter *d, size_t *at)
{
    for (size_t i = 0; i + d->len <= n; i++) {
        if (memcmp(p + i, d->bytes, d->len) == 0) {
            *at = i;
            return true;
        }
    }
    return false;
}

/* Payloads full of delimiter pieces ("-", "--EN", "\r", "\n") that never form a whole one,
 * not even together with the delimiter that ends them. */
static void delim_payload(const codec_case *cc, uint8_t *p, size_t n, uint64_t *rng)
{
    static const char pieces[] = "--END-\r\n";
    (void)cc;
    for (size_t i = 0; i < n; i++) {
        uint64_t r = rnd(rng);
        p[i] = (r & 3) == 0 ? (uint8_t)pieces[(r >> 8) % 8] : (uint8_t)(r >> 16);
    }
    /* Break every delimiter that would end the frame early: in the payload, or running
     * from its tail into either ending delimiter. */
    uint8_t tmp[WEFT_DELIMITER_MAX_LEN * 2];
    for (;;) {
        size_t at;
        bool fixed = false;
        if (mem_has(p, n, &delim_crlf, &at) || mem_has(p, n, &delim_end, &at)) {
            p[at] = 'x';
            fixed = true;
        }
        size_t tail = n < WEFT_DELIMITER_MAX_LEN ? n : WEFT_DELIMITER_MAX_LEN;
        for (int k = 0; k < 2 && !fixed; k++) {
            const weft_delimiter *end = k == 0 ? &delim_crlf : &delim_end;
            memcpy(tmp, p + n - tail, tail);
            memcpy(tmp + tail, end->bytes, end->len);
            if ((mem_has(tmp, tail + end->len, &delim_crlf, &at) && at < tail) ||
                (mem_has(tmp, tail + end->len, &delim_end, &at) && at < tail)) {
                p[n - tail + at] = 'x';
                fixed = true;
            }
        }
        if (!fixed)
            return;
    }
}

static void delim_out(const codec_case *cc, bytes *b, const uint8_t *p, size_t n, size_t i)
{
    (void)cc;
    const weft_delimiter *d = i % 2 == 0 ? &delim_crlf : &delim_end;
    bytes_put(b, p, n);
    bytes_put(b, d->bytes, d->len);
}

static void delim_back(const codec_case *cc, bytes *b, const uint8_t *p, size_t n)
{
    (void)cc;
    bytes_put(b, p, n);
    bytes_put(b, delim_crlf.bytes, delim_crlf.len);
}

static void raw_frame_out(const codec_case *cc, bytes *b, const uint8_t *p, size_t n, size_t i)
{
    (void)cc;
    (void)i;
    bytes_put(b, p, n);
}

static void raw_frame_back(const codec_case *cc, bytes *b, const uint8_t *p, size_t n)
{
    (void)cc;
    bytes_put(b, p, n);
}

/* A 2-byte big-endian length holding the payload length, as the encoder writes it; with
 * the field counting itself when the codec's encoder says so. */
static void lf2_put(const codec_case *cc, bytes *b, const uint8_t *p, size_t n)
{
    size_t v = n + (cc->codec.length_field.length_includes_length_field_length ? 2 : 0);
    uint8_t h[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    bytes_put(b, h, 2);
    bytes_put(b, p, n);
}

static void lf2_out(const codec_case *cc, bytes *b, const uint8_t *p, size_t n, size_t i)
{
    (void)i;
    lf2_put(cc, b, p, n);
}

static void lf2_back(const codec_case *cc, bytes *b, const uint8_t *p, size_t n)
{
    lf2_put(cc, b, p, n);
}

static codec_case line_case(void)
{
    codec_case cc = {"line", {0}, 4096, 0, line_payload, line_out, line_back};
    weft_codec_config_init(&cc.codec);
    cc.codec.kind = WEFT_CODEC_LINE;
    cc.codec.line.max_length = 4096;
    return cc;
}

static codec_case delim_case(void)
{
    codec_case cc = {"delimiter", {0}, 4096, 0, delim_payload, delim_out, delim_back};
    weft_codec_config_init(&cc.codec);
    cc.codec.kind = WEFT_CODEC_DELIMITER;
    cc.codec.delimiter.delimiters[0] = delim_crlf;
    cc.codec.delimiter.delimiters[1] = delim_end;
    cc.codec.delimiter.count = 2;
    cc.codec.delimiter.max_frame_length = 4096;
    return cc;
}

static codec_case fixed_case(void)
{
    codec_case cc = {"fixed_length", {0}, 37, 37, random_payload, raw_frame_out, raw_frame_back};
    weft_codec_config_init(&cc.codec);
    cc.codec.kind = WEFT_CODEC_FIXED_LENGTH;
    cc.codec.fixed_length.frame_length = 37;
    return cc;
}

/* A 2-byte big-endian field, stripped: payloads of 0..65535 bytes. */
static codec_case lf_case(void)
{
    codec_case cc = {"length_field", {0}, 65535, 0, random_payload, lf2_out, lf2_back};
    weft_codec_config_init(&cc.codec);
    cc.codec.kind = WEFT_CODEC_LENGTH_FIELD;
    cc.codec.length_field.length_field_length = 2;
    cc.codec.length_field.initial_bytes_to_strip = 2;
    cc.codec.length_field.max_frame_length = 2 + 65535;
    return cc;
}

/* ---- a stream of frames and its echo ---- */

typedef struct stream {
    bytes out;      /* what the client sends */
    bytes back;     /* what it must get back */
    size_t *ends;   /* ends[i]: where frame i's echo ends in back */
    size_t nframes; /* frames in out */
} stream;

/* Appends one frame of n payload bytes to s. */
static void stream_add(stream *s, const codec_case *cc, size_t n, uint64_t *rng)
{
    uint8_t *p = malloc(n ? n : 1);
    assert_non_null(p);
    cc->payload(cc, p, n, rng);
    cc->frame_out(cc, &s->out, p, n, s->nframes);
    cc->frame_back(cc, &s->back, p, n);
    s->ends = realloc(s->ends, (s->nframes + 1) * sizeof(*s->ends));
    assert_non_null(s->ends);
    s->ends[s->nframes++] = s->back.len;
    free(p);
}

/* nframes frames of varied sizes: empty ones where legal, the largest legal and its
 * neighbours every big_every frames, and small and middling ones in between. */
static void stream_build(stream *s, const codec_case *cc, size_t nframes, size_t big_every,
                         uint64_t seed)
{
    memset(s, 0, sizeof(*s));
    uint64_t rng = seed;
    for (size_t i = 0; i < nframes; i++) {
        size_t n;
        uint64_t r = rnd(&rng);
        if (cc->fixed > 0)
            n = cc->fixed;
        else if (i % big_every == 1)
            n = cc->max_payload - (size_t)(r % 3);
        else if (i % 7 == 0)
            n = 0;
        else if (r % 16 == 0)
            n = (size_t)(r >> 8) % 1024;
        else
            n = 1 + (size_t)(r >> 8) % 40;
        stream_add(s, cc, n, &rng);
    }
}

static void stream_free(stream *s)
{
    bytes_free(&s->out);
    bytes_free(&s->back);
    free(s->ends);
    memset(s, 0, sizeof(*s));
}

/* Fails naming the first echoed frame that differs, rather than a byte offset. */
static void stream_check(const stream *s, const uint8_t *got, const char *what)
{
    if (memcmp(got, s->back.p, s->back.len) == 0)
        return;
    size_t at = 0;
    while (got[at] == s->back.p[at])
        at++;
    size_t frame = 0;
    while (frame < s->nframes && s->ends[frame] <= at)
        frame++;
    fail_msg("%s: echo differs at byte %zu, in frame %zu of %zu", what, at, frame, s->nframes);
}

/* ---- a client that cuts its writes to a plan and reads the echo as it goes ---- */

typedef enum chunking { CHUNK_ONE_BYTE, CHUNK_PRIMES, CHUNK_RANDOM, CHUNK_ALL } chunking;

static const char *chunking_name(chunking k)
{
    static const char *names[] = {"1-byte writes", "prime-sized writes", "random writes",
                                  "one write"};
    return names[k];
}

static size_t next_chunk(chunking k, size_t i, uint64_t *rng)
{
    static const size_t primes[] = {2,  3,   5,   7,   11,  13,   17,   19,   23,   29,   31, 37,
                                    41, 43,  47,  53,  59,  61,   67,   71,   73,   79,   83, 89,
                                    97, 101, 127, 251, 509, 1021, 2039, 4093, 8191, 16381};
    switch (k) {
    case CHUNK_ONE_BYTE:
        return 1;
    case CHUNK_PRIMES:
        return primes[i % (sizeof(primes) / sizeof(primes[0]))];
    case CHUNK_RANDOM: {
        static const size_t caps[] = {7, 300, 20000};
        uint64_t r = rnd(rng);
        return 1 + (size_t)(r >> 8) % caps[r % 3];
    }
    case CHUNK_ALL:
    default:
        return SIZE_MAX;
    }
}

/* Sends out in writes of the planned sizes (each one send call, finished before the next
 * starts) while receiving in_len bytes, so that neither side's buffers fill and stall a
 * large echo. With half_close the write side is shut once everything is sent. 0, or
 * -errno / -ETIMEDOUT / -EPIPE. */
static int exchange_chunked(int fd, const bytes *out, chunking k, uint64_t seed, uint8_t *in,
                            size_t in_len, bool half_close)
{
    bool shut = false;
    int64_t end = wt_now_ms() + WT_TIMEOUT_MS;
    uint64_t rng = seed;
    size_t sent = 0, got = 0, idx = 0;
    size_t chunk_left = 0; /* of the write in progress */
    while (sent < out->len || got < in_len) {
        if (wt_now_ms() > end)
            return -ETIMEDOUT;
        /* Take whatever has come back. */
        while (got < in_len) {
            ssize_t r = wt_recv_now(fd, in + got, in_len - got);
            if (r == 0)
                return -EPIPE;
            if (r < 0) {
                int err = wt_sock_errno();
                if (err == EAGAIN || err == EINTR)
                    break;
                return -err;
            }
            got += (size_t)r;
        }
        /* Then a burst of writes, until the kernel pushes back. */
        bool blocked = false;
        for (int burst = 0; burst < 256 && sent < out->len && !blocked; burst++) {
            if (chunk_left == 0) {
                chunk_left = next_chunk(k, idx++, &rng);
                if (chunk_left > out->len - sent)
                    chunk_left = out->len - sent;
            }
            ssize_t w = wt_send_now(fd, out->p + sent, chunk_left);
            if (w < 0) {
                int err = wt_sock_errno();
                if (err != EAGAIN && err != EINTR)
                    return -err;
                blocked = true;
                break;
            }
            sent += (size_t)w;
            chunk_left -= (size_t)w;
        }
        if (half_close && sent == out->len && !shut) {
            if (wt_shutdown_wr(fd) != 0)
                return -wt_sock_errno();
            shut = true;
        }
        if (sent == out->len && got == in_len)
            break;
        /* Wait only when there is nothing to do but wait: all sent, or the kernel full. */
        if (sent == out->len || blocked) {
            struct pollfd p = {fd, 0, 0};
            if (got < in_len)
                p.events |= POLLIN;
            if (sent < out->len)
                p.events |= POLLOUT;
            int n = wt_poll(&p, 1, 100);
            if (n < 0 && wt_sock_errno() != EINTR)
                return -wt_sock_errno();
        }
    }
    return 0;
}

/* ---- every codec, every chunking: echoed byte for byte and in order ---- */

typedef struct stats_want {
    weft_engine *engine;
    uint64_t frames;
    uint64_t decode_errors;
} stats_want;

static bool stats_reached(void *arg)
{
    const stats_want *w = arg;
    weft_loop_stats t = wt_stats(w->engine);
    return t.frames >= w->frames && t.decode_errors >= w->decode_errors;
}

/* The loop counts before it answers, so the figures are final once the echo is here; the
 * wait only covers relaxed counters becoming visible. Then they must be exact. */
static void assert_codec_stats(weft_engine *e, uint64_t frames, uint64_t decode_errors)
{
    stats_want w = {e, frames, decode_errors};
    assert_true(wt_wait_for(stats_reached, &w, WT_TIMEOUT_MS));
    weft_loop_stats t = wt_stats(e);
    assert_int_equal(t.frames, frames);
    assert_int_equal(t.decode_errors, decode_errors);
}

static void echo_codec(const codec_case *cc)
{
    reset_state();
    weft_config cfg;
    codec_server_config(&cfg, &cc->codec);
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), 0);

    static const struct {
        chunking k;
        size_t frames;
        size_t big_every;
    } plans[] = {
        {CHUNK_ONE_BYTE, 1000, 600}, /* about 100 KB, sent a byte at a time */
        {CHUNK_PRIMES, 3000, 60},
        {CHUNK_RANDOM, 3000, 60},
        {CHUNK_ALL, 3000, 60},
    };
    uint64_t frames = 0;
    for (size_t i = 0; i < sizeof(plans) / sizeof(plans[0]); i++) {
        stream st;
        /* A write a byte costs a system call a byte: under a heavy slowdown, where every
         * call is slow, a tenth of the frames and none of the largest (a big_every of 1
         * picks none; the other plans send them). */
        size_t nframes = plans[i].frames, big_every = plans[i].big_every;
        if (plans[i].k == CHUNK_ONE_BYTE && wt_slow()) {
            nframes /= 10;
            big_every = 1;
        }
        stream_build(&st, cc, nframes, big_every, 0x5eed0000u + i);
        uint8_t *in = malloc(st.back.len);
        assert_non_null(in);
        int fd = wt_connect_tcp(s.port);
        assert_true(fd >= 0);

        int rc = exchange_chunked(fd, &st.out, plans[i].k, 0xc0ffee + i, in, st.back.len,
                                  plans[i].k == CHUNK_ALL);
        if (rc != 0)
            fail_msg("%s, %s: exchange failed: %s", cc->name, chunking_name(plans[i].k),
                     strerror(-rc));
        char what[96];
        snprintf(what, sizeof(what), "%s, %s", cc->name, chunking_name(plans[i].k));
        stream_check(&st, in, what);

        frames += st.nframes;
        assert_codec_stats(s.engine, frames, 0);
        if (plans[i].k == CHUNK_ALL) /* half-closed: everything answered, then the FIN */
            assert_int_equal(wt_recv_eof(fd, WT_TIMEOUT_MS), 0);
        wt_close(fd);
        assert_true(wt_wait_count(&wt_counts.closed, (long)i + 1, WT_TIMEOUT_MS));
        free(in);
        stream_free(&st);
    }

    wt_server_stop(&s);
    assert_int_equal(atomic_load(&frames_seen), (long)frames);
    assert_int_equal(closed_ok(), 4);
    assert_int_equal(atomic_load(&wt_counts.closed), 4);
    assert_int_equal(atomic_load(&frame_errors), 0);
    assert_int_equal(atomic_load(&write_errors), 0);
}

static void test_echo_line(void **state)
{
    (void)state;
    codec_case cc = line_case();
    echo_codec(&cc);
}

static void test_echo_delimiter(void **state)
{
    (void)state;
    codec_case cc = delim_case();
    echo_codec(&cc);
}

static void test_echo_fixed_length(void **state)
{
    (void)state;
    codec_case cc = fixed_case();
    echo_codec(&cc);
}

static void test_echo_length_field(void **state)
{
    (void)state;
    codec_case cc = lf_case();
    echo_codec(&cc);
}

/* ---- a bad frame on one connection, a good connection beside it on the same loop ---- */

/* Sends a few frames on fd and checks their echo. Returns how many frames that was. */
static size_t round_trip(int fd, const codec_case *cc, uint64_t seed)
{
    stream st;
    stream_build(&st, cc, 200, 50, seed);
    uint8_t *in = malloc(st.back.len);
    assert_non_null(in);
    assert_int_equal(exchange_chunked(fd, &st.out, CHUNK_RANDOM, seed, in, st.back.len, false), 0);
    stream_check(&st, in, cc->name);
    size_t n = st.nframes;
    free(in);
    stream_free(&st);
    return n;
}

/* What the bad connection sends: good frames, then bad bytes, then (unless the bad bytes
 * close it) more good frames. */
typedef struct bad_plan {
    const char *bad;
    size_t bad_len;
    int close_err; /* 0: the codec skips the bad frame and the connection goes on */
    chunking chunks;
} bad_plan;

static void bad_frame_on_one_connection(const codec_case *cc, const bad_plan *bp)
{
    reset_state();
    weft_config cfg;
    codec_server_config(&cfg, &cc->codec);
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), 0);
    assert_int_equal(weft_engine_get_loop_count(s.engine), 1);

    int good = wt_connect_tcp(s.port);
    int bad = wt_connect_tcp(s.port);
    assert_true(good >= 0);
    assert_true(bad >= 0);
    assert_true(wt_wait_count(&wt_counts.opened, 2, WT_TIMEOUT_MS));

    /* Before: the good connection works. */
    uint64_t frames = round_trip(good, cc, 1);

    /* The bad connection: frames before the bad bytes are answered, in one write with
     * them. When the bad bytes close the connection nothing follows them, so the server
     * has read everything and closes with a FIN, not a reset that could eat the echo. */
    stream st;
    /* Fewer frames around the bad ones under a heavy slowdown when they go a byte a write. */
    bool few = bp->chunks == CHUNK_ONE_BYTE && wt_slow();
    stream_build(&st, cc, few ? 20 : 100, 40, 2);
    bytes_put(&st.out, bp->bad, bp->bad_len);
    if (bp->close_err == 0) {
        /* Discard then recover: the frames after the bad one are answered too. */
        uint64_t rng = 3;
        for (int i = 0; i < (few ? 10 : 50); i++)
            stream_add(&st, cc, (size_t)(rnd(&rng) % 100), &rng);
    }
    uint8_t *in = malloc(st.back.len);
    assert_non_null(in);
    assert_int_equal(exchange_chunked(bad, &st.out, bp->chunks, 4, in, st.back.len, false), 0);
    stream_check(&st, in, cc->name);
    frames += st.nframes;
    if (bp->close_err != 0) {
        assert_int_equal(wt_recv_eof(bad, WT_TIMEOUT_MS), 0);
        assert_true(wt_wait_count(&wt_counts.closed, 1, WT_TIMEOUT_MS));
        assert_int_equal(atomic_load(&last_frame_error), bp->close_err);
        assert_int_equal(atomic_load(&frame_errors), 1);
    } else {
        /* Still open: one more frame goes through. */
        stream more;
        stream_build(&more, cc, 1, 1, 5);
        uint8_t *in2 = malloc(more.back.len + 1);
        assert_non_null(in2);
        assert_int_equal(
            wt_exchange(bad, more.out.p, more.out.len, in2, more.back.len, WT_TIMEOUT_MS), 0);
        stream_check(&more, in2, cc->name);
        frames += more.nframes;
        free(in2);
        stream_free(&more);
        assert_int_equal(atomic_load(&wt_counts.closed), 0);
        assert_int_equal(atomic_load(&frame_errors), 0);
    }

    /* After: the good connection on the same loop still works. */
    frames += round_trip(good, cc, 6);
    assert_codec_stats(s.engine, frames, 1);
    weft_loop_stats t = wt_stats(s.engine);
    assert_int_equal(t.live, bp->close_err != 0 ? 1 : 2);

    wt_close(good);
    wt_close(bad);
    assert_true(wt_wait_count(&wt_counts.closed, 2, WT_TIMEOUT_MS));
    wt_server_stop(&s);
    assert_int_equal(atomic_load(&wt_counts.closed), 2);
    assert_int_equal(closed_toolong(), bp->close_err == WEFT_ETOOLONG);
    assert_int_equal(closed_corrupt(), bp->close_err == WEFT_ECORRUPT);
    assert_int_equal(closed_ok(), bp->close_err != 0 ? 1 : 2);
    assert_int_equal(closed_other(), 0);
    assert_int_equal(atomic_load(&write_errors), 0);
    free(in);
    stream_free(&st);
}

/* A line of n bytes with no "\n" in it. */
static char *long_text(size_t n, const char *end)
{
    size_t e = strlen(end);
    char *p = malloc(n + e + 1);
    assert_non_null(p);
    memset(p, 'L', n);
    memcpy(p + n, end, e + 1);
    return p;
}

static void test_line_too_long_is_skipped(void **state)
{
    (void)state;
    codec_case cc = line_case();
    char *bad = long_text(cc.codec.line.max_length + 1, "\r\n");
    bad_plan bp = {bad, strlen(bad), 0, CHUNK_ONE_BYTE};
    bad_frame_on_one_connection(&cc, &bp);
    free(bad);
}

static void test_line_too_long_closes_with_close_on_error(void **state)
{
    (void)state;
    codec_case cc = line_case();
    cc.codec.line.close_on_error = true;
    char *bad = long_text(3 * cc.codec.line.max_length, "\n");
    bad_plan bp = {bad, strlen(bad), WEFT_ETOOLONG, CHUNK_PRIMES};
    bad_frame_on_one_connection(&cc, &bp);
    free(bad);
}

static void test_delimiter_too_long_is_skipped(void **state)
{
    (void)state;
    codec_case cc = delim_case();
    char *bad = long_text(cc.codec.delimiter.max_frame_length + 100, "--END--");
    bad_plan bp = {bad, strlen(bad), 0, CHUNK_ONE_BYTE};
    bad_frame_on_one_connection(&cc, &bp);
    free(bad);
}

static void test_delimiter_too_long_closes_with_close_on_error(void **state)
{
    (void)state;
    codec_case cc = delim_case();
    cc.codec.delimiter.close_on_error = true;
    /* fail_fast: too long is known at max_frame_length + 1 bytes, before any delimiter,
     * so that is all the client sends. */
    char *bad = long_text(cc.codec.delimiter.max_frame_length + 1, "");
    bad_plan bp = {bad, strlen(bad), WEFT_ETOOLONG, CHUNK_PRIMES};
    bad_frame_on_one_connection(&cc, &bp);
    free(bad);
}

/* A 2-byte field that counts itself (netty's "length includes header": adjustment -2),
 * stripped, frames up to 1002 bytes: both error kinds are a header away. */
static codec_case lf_strict_case(void)
{
    codec_case cc = lf_case();
    cc.codec.length_field.length_adjustment = -2;
    cc.codec.length_field.length_includes_length_field_length = true;
    cc.codec.length_field.max_frame_length = 1002;
    cc.max_payload = 1000;
    return cc;
}

static void test_length_field_too_long_closes(void **state)
{
    (void)state;
    codec_case cc = lf_strict_case();
    static const char bad[] = {0x03, (char)0xeb}; /* 1003: one byte over */
    bad_plan bp = {bad, sizeof(bad), WEFT_ETOOLONG, CHUNK_RANDOM};
    bad_frame_on_one_connection(&cc, &bp);
}

static void test_length_field_corrupt_closes(void **state)
{
    (void)state;
    codec_case cc = lf_strict_case();
    static const char bad[] = {0x00, 0x01}; /* a frame of 1 byte cannot hold its 2-byte header */
    bad_plan bp = {bad, sizeof(bad), WEFT_ECORRUPT, CHUNK_ONE_BYTE};
    bad_frame_on_one_connection(&cc, &bp);
}

/* The line codec as a custom codec, except that it answers the line "BUG" with a count of
 * two frames: a codec bug, which must close that connection as WEFT_ECORRUPT. */
static int miscounting_decode(const weft_codec *codec, weft_codec_state *state, const uint8_t *buf,
                              size_t len, weft_frame *frame)
{
    int rc = weft_codec_line.decode(codec, state, buf, len, frame);
    if (rc == WEFT_FRAME && frame->length == 3 && memcmp(buf + frame->offset, "BUG", 3) == 0)
        return WEFT_FRAME + 1;
    return rc;
}

static int miscounting_encode(const weft_codec *codec, const uint8_t *payload, size_t payload_len,
                              weft_encoding *enc)
{
    return weft_codec_line.encode(codec, payload, payload_len, enc);
}

static void test_decoder_counting_two_frames_closes(void **state)
{
    (void)state;
    static const weft_codec_vtable miscounting = {
        .name = "miscounting",
        .decode = miscounting_decode,
        .encode = miscounting_encode,
    };
    codec_case cc = line_case(); /* its config.line is what the wrapped decoder reads */
    cc.name = "miscounting";
    cc.codec.kind = WEFT_CODEC_CUSTOM;
    cc.codec.custom.vtable = &miscounting;
    bad_plan bp = {"BUG\n", 4, WEFT_ECORRUPT, CHUNK_ONE_BYTE};
    bad_frame_on_one_connection(&cc, &bp);
}

/* ---- a frame many times the loop's read buffer still comes as one span ---- */

static void test_frame_larger_than_read_buffer(void **state)
{
    (void)state;
    reset_state();
    weft_codec_config codec;
    weft_codec_config_init(&codec);
    codec.kind = WEFT_CODEC_LENGTH_FIELD;
    codec.length_field.length_field_length = 4;
    codec.length_field.initial_bytes_to_strip = 4;
    codec.length_field.max_frame_length = 4 + (1u << 20);
    weft_config cfg;
    codec_server_config(&cfg, &codec);
    cfg.read_buffer_size = 64u * 1024u;
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), 0);

    static const size_t sizes[] = {10, 1u << 20, 0, (1u << 20) - 1, 1u << 20, 3};
    const size_t nsizes = sizeof(sizes) / sizeof(sizes[0]);
    bytes out = {0}, back = {0};
    for (size_t i = 0; i < nsizes; i++) {
        uint8_t h[4] = {(uint8_t)(sizes[i] >> 24), (uint8_t)(sizes[i] >> 16),
                        (uint8_t)(sizes[i] >> 8), (uint8_t)sizes[i]};
        uint8_t *p = malloc(sizes[i] + 1);
        assert_non_null(p);
        wt_fill(p, sizes[i], (uint32_t)i);
        bytes_put(&out, h, 4);
        bytes_put(&out, p, sizes[i]);
        free(p);
    }
    bytes_put(&back, out.p, out.len); /* the encoder puts the same header back */
    uint8_t *in = malloc(back.len);
    assert_non_null(in);
    int fd = wt_connect_tcp(s.port);
    assert_true(fd >= 0);

    assert_int_equal(exchange_chunked(fd, &out, CHUNK_RANDOM, 7, in, back.len, false), 0);

    assert_memory_equal(in, back.p, back.len);
    /* Each frame was one weft_conn_next_frame result: one span, whole. */
    assert_int_equal(atomic_load(&frames_seen), (long)nsizes);
    for (size_t i = 0; i < nsizes; i++)
        assert_int_equal(atomic_load(&seen_len[i]), (long)sizes[i]);
    assert_codec_stats(s.engine, nsizes, 0);
    wt_close(fd);
    assert_true(wt_wait_count(&wt_counts.closed, 1, WT_TIMEOUT_MS));
    wt_server_stop(&s);
    assert_int_equal(closed_ok(), 1);
    free(in);
    bytes_free(&out);
    bytes_free(&back);
}

/* ---- max_inbound bounds what may wait for a frame to complete ---- */

static bool one_closed(void *arg)
{
    (void)arg;
    return atomic_load(&wt_counts.closed) >= 1;
}

/* A frame of exactly max_inbound bytes passes; one byte more closes that connection with
 * WEFT_EINCAP, even though the codec itself would take it. */
static void test_frame_bounded_by_max_inbound(void **state)
{
    (void)state;
    reset_state();
    weft_codec_config codec;
    weft_codec_config_init(&codec);
    codec.kind = WEFT_CODEC_LENGTH_FIELD;
    codec.length_field.length_field_length = 4;
    codec.length_field.initial_bytes_to_strip = 4;
    codec.length_field.max_frame_length = 1u << 20;
    weft_config cfg;
    codec_server_config(&cfg, &codec);
    cfg.read_buffer_size = 16u * 1024u;
    cfg.max_inbound = 256u * 1024u;
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), 0);

    /* Exactly max_inbound, header included, followed at once by a small frame. */
    size_t big = cfg.max_inbound - 4;
    bytes out = {0};
    uint8_t *p = malloc(big);
    assert_non_null(p);
    wt_fill(p, big, 1);
    uint8_t h[4] = {(uint8_t)(big >> 24), (uint8_t)(big >> 16), (uint8_t)(big >> 8), (uint8_t)big};
    bytes_put(&out, h, 4);
    bytes_put(&out, p, big);
    uint8_t small[4 + 3] = {0, 0, 0, 3, 'a', 'b', 'c'};
    bytes_put(&out, small, sizeof(small));
    uint8_t *in = malloc(out.len);
    assert_non_null(in);
    int fd = wt_connect_tcp(s.port);
    assert_true(fd >= 0);
    assert_int_equal(exchange_chunked(fd, &out, CHUNK_RANDOM, 9, in, out.len, false), 0);
    assert_memory_equal(in, out.p, out.len);
    assert_int_equal(atomic_load(&seen_len[0]), (long)big);
    assert_int_equal(atomic_load(&seen_len[1]), 3);

    /* One byte more cannot be held. */
    size_t over = big + 1;
    uint8_t h2[4] = {(uint8_t)(over >> 24), (uint8_t)(over >> 16), (uint8_t)(over >> 8),
                     (uint8_t)over};
    assert_int_equal(wt_send_all(fd, h2, 4, WT_TIMEOUT_MS), 0);
    p = realloc(p, over);
    assert_non_null(p);
    wt_fill(p, over, 2);
    (void)wt_send_all(fd, p, over, WT_TIMEOUT_MS); /* the server may reset before the end */
    assert_true(wt_wait_for(one_closed, NULL, WT_TIMEOUT_MS));
    assert_int_equal(closed_other(), 1);
    assert_int_equal(atomic_load(&wt_counts.last_err), WEFT_EINCAP);
    assert_codec_stats(s.engine, 2, 0);
    wt_close(fd);
    wt_server_stop(&s);
    free(p);
    free(in);
    bytes_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo_line),
        cmocka_unit_test(test_echo_delimiter),
        cmocka_unit_test(test_echo_fixed_length),
        cmocka_unit_test(test_echo_length_field),
        cmocka_unit_test(test_line_too_long_is_skipped),
        cmocka_unit_test(test_line_too_long_closes_with_close_on_error),
        cmocka_unit_test(test_delimiter_too_long_is_skipped),
        cmocka_unit_test(test_delimiter_too_long_closes_with_close_on_error),
        cmocka_unit_test(test_length_field_too_long_closes),
        cmocka_unit_test(test_length_field_corrupt_closes),
        cmocka_unit_test(test_decoder_counting_two_frames_closes),
        cmocka_unit_test(test_frame_larger_than_read_buffer),
        cmocka_unit_test(test_frame_bounded_by_max_inbound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
