/* weft-redis — strict number parsing and formatting. */
#include "number.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool num_parse_ll(const void *s, size_t n, int64_t *out)
{
    const uint8_t *p = s;
    size_t i = 0;
    bool neg = false;
    uint64_t v = 0;

    if (n == 0 || n > 20)
        return false;
    if (n == 1 && p[0] == '0') {
        *out = 0;
        return true;
    }
    if (p[0] == '-') {
        neg = true;
        i = 1;
        if (n == 1)
            return false;
    }
    if (p[i] < '1' || p[i] > '9')
        return false;
    for (; i < n; i++) {
        unsigned d = (unsigned)p[i] - '0';
        if (d > 9)
            return false;
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1)
            return false;
        /* Negate in unsigned arithmetic: -(INT64_MIN) does not exist as an int64. */
        *out = (int64_t)(0 - v);
    } else {
        if (v > (uint64_t)INT64_MAX)
            return false;
        *out = (int64_t)v;
    }
    return true;
}

bool num_parse_ld(const void *s, size_t n, long double *out)
{
    char buf[5 * 1024 + 1]; /* Redis's MAX_LONG_DOUBLE_CHARS */
    char *end;
    long double v;

    if (n == 0 || n >= sizeof(buf))
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    /* strtold skips leading blanks; Redis refuses them, and so do we. */
    if (buf[0] == ' ' || buf[0] == '\t' || buf[0] == '\n' || buf[0] == '\r' || buf[0] == '\v' ||
        buf[0] == '\f')
        return false;
    errno = 0;
    v = strtold(buf, &end);
    if ((size_t)(end - buf) != n || isnan(v) || (errno == ERANGE && (v == 0 || isinf(v))))
        return false;
    *out = v;
    return true;
}

size_t num_format_ll(char *buf, int64_t v)
{
    char tmp[NUM_LL_BUF];
    size_t n = 0, len = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        buf[len++] = '-';
    while (n > 0)
        buf[len++] = tmp[--n];
    return len;
}

size_t num_format_ld(char *buf, size_t len, long double v)
{
    int n;

    if (isinf(v) || isnan(v))
        return 0;
    n = snprintf(buf, len, "%.17Lf", v);
    if (n < 0 || (size_t)n >= len)
        return 0;
    /* Drop trailing zeros after the point, then the point itself. */
    if (strchr(buf, '.') != NULL) {
        while (n > 0 && buf[n - 1] == '0')
            n--;
        if (n > 0 && buf[n - 1] == '.')
            n--;
    }
    if (n == 2 && buf[0] == '-' && buf[1] == '0') {
        buf[0] = '0';
        n = 1;
    }
    buf[n] = '\0';
    return (size_t)n;
}
