/* weft-redis — strict number parsing and formatting, as Redis's util.c does it. */
#ifndef WEFT_REDIS_NUMBER_H
#define WEFT_REDIS_NUMBER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest decimal int64 plus sign and NUL. */
#define NUM_LL_BUF 24

/* Parses s[0..n) as a decimal int64 the way Redis's string2ll does: an optional '-', no
 * '+', no blanks, no leading zeros, no overflow. Returns true and sets *out on success. */
bool num_parse_ll(const void *s, size_t n, int64_t *out);

/* Parses a long double as Redis's string2ld does (strtold, whole string, no blanks, no
 * NaN). Returns true and sets *out on success. */
bool num_parse_ld(const void *s, size_t n, long double *out);

/* Writes v in decimal to buf (at least NUM_LL_BUF bytes) without a NUL; returns the
 * length. */
size_t num_format_ll(char *buf, int64_t v);

/* Formats v as Redis's INCRBYFLOAT replies ("%.17Lf" with trailing zeros dropped) into
 * buf of size len; returns the length, or 0 when it does not fit. */
size_t num_format_ld(char *buf, size_t len, long double v);

#endif /* WEFT_REDIS_NUMBER_H */
