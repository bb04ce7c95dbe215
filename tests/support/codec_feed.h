/* Test support: feeds a byte stream to a codec the way the engine does, in chunks.
 *
 * Each chunk is appended to a buffer of unconsumed bytes; the decoder is called over and
 * over on that buffer (re-entrant over a growing buffer, as the engine calls it), the
 * consumed bytes are dropped after every call, and an error that is not recoverable closes
 * the "connection" unless keep_going is set. Before every call the buffered bytes are
 * copied to the very end of a readable page that is followed by a PROT_NONE page, so a
 * decoder reading past buf + len crashes even without a sanitizer.
 */
#ifndef WEFT_TEST_CODEC_FEED_H
#define WEFT_TEST_CODEC_FEED_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weft/codec.h"

/* What a case expects, in order: frames and errors. FEED_END terminates the list. */
typedef struct feed_expect {
    int rc; /* WEFT_FRAME: a frame with these bytes; < 0: that error; FEED_END_RC: end */
    const char *data;
    size_t len;
} feed_expect;

#define FEED_END_RC INT_MAX /* no decoder answers this */
#define FEED_FRAME(s)                  \
    {                                  \
        WEFT_FRAME, (s), sizeof(s) - 1 \
    }
#define FEED_ERROR(e) \
    {                 \
        (e), NULL, 0  \
    }
#define FEED_END             \
    {                        \
        FEED_END_RC, NULL, 0 \
    }
#define FEED_MAX_EXPECT  24
#define FEED_NO_LEFTOVER ((long)-1)

typedef struct feed_case {
    const char *name;
    const char *input;
    size_t input_len;
    feed_expect expect[FEED_MAX_EXPECT];
    long leftover; /* bytes still buffered at the end, or FEED_NO_LEFTOVER to not check */
} feed_case;

/* A string literal as input bytes (embedded NULs kept). */
#define FEED_INPUT(s) (s), sizeof(s) - 1

typedef struct feed_event {
    int rc;        /* WEFT_FRAME or the error */
    uint8_t *data; /* frame bytes, owned by the result */
    size_t len;
    bool recoverable;
} feed_event;

typedef struct feed_result {
    feed_event *events;
    size_t count;
    size_t cap;
    size_t leftover; /* bytes still buffered when the stream ended */
    bool closed;     /* stopped on an error that is not recoverable */
    size_t calls;    /* decode calls made */
} feed_result;

/* Feeds stream in chunks of the given sizes (their sum must be len) and records every frame
 * and error. Checks the decoder contract on every call (consumed within the buffer, frame
 * within the consumed bytes, a reason on errors, progress). */
void feed_run(const weft_codec *codec, const uint8_t *stream, size_t len, const size_t *chunks,
              size_t nchunks, bool keep_going, feed_result *out);

void feed_result_free(feed_result *r);

/* Fails the test unless a and b hold the same events, leftover and closed flag. what names
 * the chunking of b in the failure message. */
void feed_assert_same(const feed_result *a, const feed_result *b, const char *what);

/* Fails the test unless r's events are exactly expect (up to FEED_END). */
void feed_assert_expected(const feed_result *r, const feed_expect *expect, const char *name);

/* As feed_assert_expected with an explicit count instead of FEED_END. */
void feed_assert_events(const feed_result *r, const feed_expect *expect, size_t n,
                        const char *name);

/* Runs one case through a codec built from cfg: whole, split in two at every index, in
 * three at every pair of indices (short inputs), one byte per read and random chunkings
 * from a fixed seed. Every run must give the expected events and the same leftover. Returns
 * the number of chunkings tried. */
size_t feed_check_case(const weft_codec_config *cfg, const feed_case *c, bool keep_going);

/* feed_check_case for a stream of any length: expect holds nexpect events (or is NULL to
 * only check that every chunking agrees with one-shot decoding). */
size_t feed_check_stream(const weft_codec_config *cfg, const char *name, const char *input,
                         size_t len, const feed_expect *expect, size_t nexpect, long leftover,
                         bool keep_going);

/* Calls visit(chunks, nchunks, what, arg) for every chunking feed_check_stream compares with
 * one-shot decoding: split in two at every index, in three at every pair of indices (short
 * inputs), one byte per read, and random chunkings from a fixed seed. what names the
 * chunking. Returns the number of chunkings visited. */
typedef void (*feed_chunking_fn)(const size_t *chunks, size_t nchunks, const char *what, void *arg);
size_t feed_each_chunking(size_t len, feed_chunking_fn visit, void *arg);

/* Runs every case of a table; returns the number of chunkings tried. */
size_t feed_check_table(const weft_codec_config *cfg, const feed_case *cases, size_t n,
                        bool keep_going);

/* A buffer whose end is followed by a PROT_NONE page. */
typedef struct feed_guard {
    uint8_t *map;
    size_t map_len;
    uint8_t *limit; /* first byte of the PROT_NONE page */
} feed_guard;

void feed_guard_init(feed_guard *g, size_t capacity);
void feed_guard_free(feed_guard *g);
/* Copies n bytes so that they end right at the PROT_NONE page; returns where they start. */
uint8_t *feed_guard_place(feed_guard *g, const void *data, size_t n);

/* Deterministic xorshift64* generator for chunkings and fuzz-like tests. */
uint64_t feed_rand(uint64_t *s);

#endif /* WEFT_TEST_CODEC_FEED_H */
