/* weft-redis — client output buffer limits, as Redis's `client-output-buffer-limit normal`.
 *
 * A client whose queued replies reach the hard limit is closed at once; one that stays at or
 * above the soft limit for more than soft_seconds is closed too. What counts is what the
 * server holds for the client: replies queued and not yet taken by the kernel, plus the
 * reply about to be written, as Redis counts its reply list. Independent of the engine: the
 * caller measures the bytes and the time, so the rules are testable alone.
 *
 * The recent peak (INFO's client_recent_max_output_buffer) is kept per loop over the last
 * OBUF_PEAK_SLOTS seconds, as Redis keeps it over its clients-cron slots.
 */
#ifndef WEFT_REDIS_OBUF_H
#define WEFT_REDIS_OBUF_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OBUF_HARD_DEFAULT (64ull * 1024 * 1024)

typedef struct obuf_limit {
    uint64_t hard;         /* bytes that close the client at once; 0 = no limit */
    uint64_t soft;         /* bytes that close it after soft_seconds; 0 = no limit */
    uint64_t soft_seconds; /* how long it may stay at or above soft */
} obuf_limit;

/* Fills lim with weft-redis's default: hard 64 MiB, no soft limit ("64mb 0 0"). */
void obuf_limit_init(obuf_limit *lim);

/* Parses a size as redis-server's config does: a decimal count of bytes, optionally followed
 * by a unit, any case: b, k (1000), kb (1024), m (1000^2), mb (1024^2), g (1000^3) or
 * gb (1024^3). false for anything else, a negative number or an overflow. */
bool obuf_parse_bytes(const char *s, uint64_t *out);

/* Parses the three words of `client-output-buffer-limit normal HARD SOFT SECONDS` into
 * *lim (unchanged on failure). */
bool obuf_limit_parse(obuf_limit *lim, const char *hard, const char *soft, const char *seconds);

/* Writes "normal HARD SOFT SECONDS" in bytes, as CONFIG GET shows it, into buf (owned by the
 * caller). Returns the length (cut to len - 1). */
size_t obuf_limit_format(const obuf_limit *lim, char *buf, size_t len);

typedef enum obuf_verdict {
    OBUF_OK = 0,
    OBUF_HARD, /* at or above the hard limit */
    OBUF_SOFT  /* at or above the soft limit for longer than soft_seconds */
} obuf_verdict;

/* Judges a client holding used bytes at now_ms (any clock in milliseconds). *soft_since_ms
 * is the client's own: when it first reached the soft limit, 0 while it is under; this
 * starts and clears it. Redis's checkClientOutputBufferLimits. */
obuf_verdict obuf_check(const obuf_limit *lim, int64_t *soft_since_ms, uint64_t used,
                        int64_t now_ms);

#define OBUF_PEAK_SLOTS 8

/* The largest output buffer any client of one loop had, per second, over the last
 * OBUF_PEAK_SLOTS seconds. Written by that loop's thread only, read by any. */
typedef struct obuf_peak {
    atomic_uint_fast64_t bytes[OBUF_PEAK_SLOTS];
    int64_t sec; /* the second bytes[sec % OBUF_PEAK_SLOTS] counts; writer's own */
} obuf_peak;

void obuf_peak_init(obuf_peak *pk, int64_t now_sec);
/* A client holds used bytes now. The loop's thread. */
void obuf_peak_note(obuf_peak *pk, uint64_t used);
/* The clock moved on to now_sec: slots of seconds that went by are emptied. The loop's
 * thread, at least once a second (weft-redis calls it from on_tick). */
void obuf_peak_advance(obuf_peak *pk, int64_t now_sec);
/* The largest of the recent seconds. Any thread. */
uint64_t obuf_peak_get(const obuf_peak *pk);

#endif /* WEFT_REDIS_OBUF_H */
