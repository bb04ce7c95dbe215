/* weft-redis — the value types inside keys: byte blobs, lists, hashes and sets. */
#ifndef WEFT_REDIS_TYPES_H
#define WEFT_REDIS_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* An immutable byte string. */
typedef struct ks_blob {
    size_t len;
    uint8_t data[];
} ks_blob;

ks_blob *ks_blob_new(const void *data, size_t len);

/* A list: a ring of blob pointers, so pushes and pops at both ends are O(1) and LINDEX is
 * O(1). Zeroed is empty. */
typedef struct ks_list {
    ks_blob **items;
    size_t head;
    size_t len;
    size_t cap; /* a power of two, or 0 */
} ks_list;

/* Takes ownership of b on success. */
bool ks_list_push(ks_list *l, ks_blob *b, bool left);
/* Ownership of the returned blob passes to the caller. NULL when empty. */
ks_blob *ks_list_pop(ks_list *l, bool left);
/* Borrowed; i < l->len. */
static inline ks_blob *ks_list_at(const ks_list *l, size_t i)
{
    return l->items[(l->head + i) & (l->cap - 1)];
}
void ks_list_free(ks_list *l);

/* A field table for hashes (fields with values) and sets (members, val NULL). Zeroed is
 * empty. */
typedef struct ks_dnode {
    struct ks_dnode *next;
    uint64_t hash;
    ks_blob *val;
    size_t flen;
    uint8_t field[];
} ks_dnode;

typedef struct ks_dict {
    ks_dnode **buckets;
    size_t mask;
    size_t count;
} ks_dict;

ks_dnode *ks_dict_find(const ks_dict *d, const void *field, size_t flen);
/* Adds field, or replaces its value. Returns 1 added, 0 replaced, -1 out of memory. With
 * val == NULL the node has no value (sets). */
int ks_dict_set(ks_dict *d, const void *field, size_t flen, const void *val, size_t vlen);
/* Returns true when field was there. */
bool ks_dict_del(ks_dict *d, const void *field, size_t flen);
void ks_dict_free(ks_dict *d);

#endif /* WEFT_REDIS_TYPES_H */
