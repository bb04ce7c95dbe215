/* weft-redis — glob-style matching as Redis's KEYS, SCAN MATCH and CONFIG GET use it. */
#ifndef WEFT_REDIS_GLOB_H
#define WEFT_REDIS_GLOB_H

#include <stdbool.h>
#include <stddef.h>

/* True when str[0..slen) matches pat[0..plen): '*' any run, '?' any byte, "[abc]",
 * "[^abc]", "[a-z]" a class, '\' quotes the next byte. Binary-safe; nocase folds ASCII. */
bool glob_match(const void *pat, size_t plen, const void *str, size_t slen, bool nocase);

#endif /* WEFT_REDIS_GLOB_H */
