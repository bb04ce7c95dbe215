/* weft-redis — glob matching.
 *
 * Iterative with one backtrack point (the last '*'), so a hostile pattern like
 * "a*a*a*a*b" costs O(plen * slen) at worst instead of Redis's exponential recursion. */
#include "glob.h"

#include <ctype.h>
#include <stdint.h>

static uint8_t fold(uint8_t c, bool nocase)
{
    return nocase ? (uint8_t)tolower(c) : c;
}

/* Matches c against the class starting after '[' at p[*pi]; advances *pi past ']'. */
static bool class_match(const uint8_t *p, size_t plen, size_t *pi, uint8_t c, bool nocase)
{
    size_t i = *pi;
    bool neg = false, hit = false;

    if (i < plen && p[i] == '^') {
        neg = true;
        i++;
    }
    for (;;) {
        if (i >= plen) {
            /* An unterminated class: Redis treats the end as its close. */
            break;
        }
        if (p[i] == '\\' && i + 1 < plen) {
            i++;
            if (fold(p[i], nocase) == fold(c, nocase))
                hit = true;
        } else if (p[i] == ']') {
            break;
        } else if (i + 2 < plen && p[i + 1] == '-') {
            uint8_t lo = fold(p[i], nocase), hi = fold(p[i + 2], nocase), x = fold(c, nocase);
            if (lo > hi) {
                uint8_t t = lo;
                lo = hi;
                hi = t;
            }
            if (x >= lo && x <= hi)
                hit = true;
            i += 2;
        } else if (fold(p[i], nocase) == fold(c, nocase)) {
            hit = true;
        }
        i++;
    }
    *pi = i < plen ? i + 1 : i;
    return neg ? !hit : hit;
}

bool glob_match(const void *pat, size_t plen, const void *str, size_t slen, bool nocase)
{
    const uint8_t *p = pat, *s = str;
    size_t pi = 0, si = 0;
    size_t star_p = SIZE_MAX, star_s = 0;

    while (si < slen) {
        if (pi < plen) {
            uint8_t pc = p[pi];
            if (pc == '*') {
                while (pi < plen && p[pi] == '*')
                    pi++;
                if (pi == plen)
                    return true;
                star_p = pi;
                star_s = si;
                continue;
            }
            if (pc == '?') {
                pi++;
                si++;
                continue;
            }
            if (pc == '[') {
                size_t next = pi + 1;
                if (class_match(p, plen, &next, s[si], nocase)) {
                    pi = next;
                    si++;
                    continue;
                }
            } else {
                size_t lit = pi;
                if (pc == '\\' && pi + 1 < plen)
                    lit = pi + 1;
                if (fold(p[lit], nocase) == fold(s[si], nocase)) {
                    pi = lit + 1;
                    si++;
                    continue;
                }
            }
        }
        /* Mismatch: let the last '*' swallow one more byte, or fail. */
        if (star_p == SIZE_MAX)
            return false;
        pi = star_p;
        si = ++star_s;
    }
    while (pi < plen && p[pi] == '*')
        pi++;
    return pi == plen;
}
