/* weft-redis — client output buffer limits; see obuf.h. */
#include "obuf.h"

#include <stdio.h>
#include <strings.h>

void obuf_limit_init(obuf_limit *lim)
{
    lim->hard = OBUF_HARD_DEFAULT;
    lim->soft = 0;
    lim->soft_seconds = 0;
}

/* Digits only, into *out; false when there are none or they overflow. */
static bool parse_digits(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

bool obuf_parse_bytes(const char *s, uint64_t *out)
{
    static const struct {
        const char *name;
        uint64_t mul;
    } units[] = {
        {"", 1},
        {"b", 1},
        {"k", 1000},
        {"kb", 1024},
        {"m", 1000 * 1000},
        {"mb", 1024 * 1024},
        {"g", 1000ull * 1000 * 1000},
        {"gb", 1024ull * 1024 * 1024},
    };
    size_t n = 0;
    uint64_t v;

    if (s == NULL)
        return false;
    while (s[n] >= '0' && s[n] <= '9')
        n++;
    if (!parse_digits(s, n, &v))
        return false;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcasecmp(s + n, units[i].name) != 0)
            continue;
        if (v > UINT64_MAX / units[i].mul)
            return false;
        *out = v * units[i].mul;
        return true;
    }
    return false;
}

bool obuf_limit_parse(obuf_limit *lim, const char *hard, const char *soft, const char *seconds)
{
    obuf_limit l;
    size_t n = 0;

    if (!obuf_parse_bytes(hard, &l.hard) || !obuf_parse_bytes(soft, &l.soft) || seconds == NULL)
        return false;
    while (seconds[n] >= '0' && seconds[n] <= '9')
        n++;
    if (seconds[n] != '\0' || !parse_digits(seconds, n, &l.soft_seconds) ||
        l.soft_seconds > INT64_MAX / 1000)
        return false;
    *lim = l;
    return true;
}

size_t obuf_limit_format(const obuf_limit *lim, char *buf, size_t len)
{
    int n = snprintf(buf, len, "normal %llu %llu %llu", (unsigned long long)lim->hard,
                     (unsigned long long)lim->soft, (unsigned long long)lim->soft_seconds);
    if (n < 0 || len == 0)
        return 0;
    return (size_t)n < len ? (size_t)n : len - 1;
}

obuf_verdict obuf_check(const obuf_limit *lim, int64_t *soft_since_ms, uint64_t used,
                        int64_t now_ms)
{
    if (lim->hard != 0 && used >= lim->hard)
        return OBUF_HARD;
    if (lim->soft == 0 || used < lim->soft) {
        *soft_since_ms = 0;
        return OBUF_OK;
    }
    /* The first time over only starts the clock: the limit is about staying above it. A
     * zero "since" means "under", so a clock reading of 0 is taken as 1. */
    if (*soft_since_ms == 0) {
        *soft_since_ms = now_ms != 0 ? now_ms : 1;
        return OBUF_OK;
    }
    if (now_ms - *soft_since_ms > (int64_t)lim->soft_seconds * 1000)
        return OBUF_SOFT;
    return OBUF_OK;
}

void obuf_peak_init(obuf_peak *pk, int64_t now_sec)
{
    for (size_t i = 0; i < OBUF_PEAK_SLOTS; i++)
        atomic_init(&pk->bytes[i], 0);
    pk->sec = now_sec;
}

void obuf_peak_note(obuf_peak *pk, uint64_t used)
{
    atomic_uint_fast64_t *slot = &pk->bytes[(uint64_t)pk->sec % OBUF_PEAK_SLOTS];
    /* One writer: a relaxed load and store, no read-modify-write. */
    if (used > atomic_load_explicit(slot, memory_order_relaxed))
        atomic_store_explicit(slot, used, memory_order_relaxed);
}

void obuf_peak_advance(obuf_peak *pk, int64_t now_sec)
{
    if (now_sec <= pk->sec)
        return;
    /* Every second that went by starts empty; after a full round, all of them. */
    for (int64_t s = pk->sec + 1; s <= now_sec && s <= pk->sec + OBUF_PEAK_SLOTS; s++)
        atomic_store_explicit(&pk->bytes[(uint64_t)s % OBUF_PEAK_SLOTS], 0, memory_order_relaxed);
    pk->sec = now_sec;
}

uint64_t obuf_peak_get(const obuf_peak *pk)
{
    uint64_t max = 0;
    for (size_t i = 0; i < OBUF_PEAK_SLOTS; i++) {
        uint64_t v = atomic_load_explicit(&pk->bytes[i], memory_order_relaxed);
        if (v > max)
            max = v;
    }
    return max;
}
