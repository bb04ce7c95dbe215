/* weft-redis — lists, hashes and sets. */
#include "types.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

ks_blob *ks_blob_new(const void *data, size_t len)
{
    ks_blob *b = malloc(sizeof(*b) + len);
    if (b == NULL)
        return NULL;
    b->len = len;
    if (len > 0)
        memcpy(b->data, data, len);
    return b;
}

/* ---- lists ---- */

static bool list_grow(ks_list *l)
{
    size_t cap = l->cap ? l->cap * 2 : 8;
    ks_blob **items = malloc(cap * sizeof(*items));
    if (items == NULL)
        return false;
    for (size_t i = 0; i < l->len; i++)
        items[i] = ks_list_at(l, i);
    free(l->items);
    l->items = items;
    l->head = 0;
    l->cap = cap;
    return true;
}

bool ks_list_push(ks_list *l, ks_blob *b, bool left)
{
    if (l->len == l->cap && !list_grow(l))
        return false;
    if (left) {
        l->head = (l->head - 1) & (l->cap - 1);
        l->items[l->head] = b;
    } else {
        l->items[(l->head + l->len) & (l->cap - 1)] = b;
    }
    l->len++;
    return true;
}

ks_blob *ks_list_pop(ks_list *l, bool left)
{
    ks_blob *b;
    if (l->len == 0)
        return NULL;
    if (left) {
        b = l->items[l->head];
        l->head = (l->head + 1) & (l->cap - 1);
    } else {
        b = ks_list_at(l, l->len - 1);
    }
    l->len--;
    return b;
}

void ks_list_free(ks_list *l)
{
    for (size_t i = 0; i < l->len; i++)
        free(ks_list_at(l, i));
    free(l->items);
    memset(l, 0, sizeof(*l));
}

/* ---- hashes and sets ---- */

static bool dict_grow(ks_dict *d)
{
    size_t n = d->buckets ? (d->mask + 1) * 2 : 8;
    ks_dnode **b = calloc(n, sizeof(*b));
    if (b == NULL)
        return false;
    if (d->buckets != NULL) {
        for (size_t i = 0; i <= d->mask; i++) {
            ks_dnode *e = d->buckets[i], *next;
            for (; e != NULL; e = next) {
                next = e->next;
                e->next = b[e->hash & (n - 1)];
                b[e->hash & (n - 1)] = e;
            }
        }
        free(d->buckets);
    }
    d->buckets = b;
    d->mask = n - 1;
    return true;
}

ks_dnode *ks_dict_find(const ks_dict *d, const void *field, size_t flen)
{
    uint64_t h;
    if (d->count == 0)
        return NULL;
    h = XXH3_64bits(field, flen);
    for (ks_dnode *e = d->buckets[h & d->mask]; e != NULL; e = e->next)
        if (e->hash == h && e->flen == flen && memcmp(e->field, field, flen) == 0)
            return e;
    return NULL;
}

int ks_dict_set(ks_dict *d, const void *field, size_t flen, const void *val, size_t vlen)
{
    uint64_t h = XXH3_64bits(field, flen);
    ks_blob *v = NULL;
    ks_dnode *e;

    if (val != NULL && (v = ks_blob_new(val, vlen)) == NULL)
        return -1;
    if (d->buckets != NULL) {
        for (e = d->buckets[h & d->mask]; e != NULL; e = e->next) {
            if (e->hash == h && e->flen == flen && memcmp(e->field, field, flen) == 0) {
                free(e->val);
                e->val = v;
                return 0;
            }
        }
    }
    if ((d->buckets == NULL || d->count > d->mask) && !dict_grow(d)) {
        free(v);
        return -1;
    }
    e = malloc(sizeof(*e) + flen);
    if (e == NULL) {
        free(v);
        return -1;
    }
    e->hash = h;
    e->val = v;
    e->flen = flen;
    if (flen > 0)
        memcpy(e->field, field, flen);
    e->next = d->buckets[h & d->mask];
    d->buckets[h & d->mask] = e;
    d->count++;
    return 1;
}

bool ks_dict_del(ks_dict *d, const void *field, size_t flen)
{
    uint64_t h;
    ks_dnode **pp;
    if (d->count == 0)
        return false;
    h = XXH3_64bits(field, flen);
    for (pp = &d->buckets[h & d->mask]; *pp != NULL; pp = &(*pp)->next) {
        ks_dnode *e = *pp;
        if (e->hash == h && e->flen == flen && memcmp(e->field, field, flen) == 0) {
            *pp = e->next;
            free(e->val);
            free(e);
            d->count--;
            return true;
        }
    }
    return false;
}

void ks_dict_free(ks_dict *d)
{
    if (d->buckets != NULL) {
        for (size_t i = 0; i <= d->mask; i++) {
            ks_dnode *e = d->buckets[i], *next;
            for (; e != NULL; e = next) {
                next = e->next;
                free(e->val);
                free(e);
            }
        }
        free(d->buckets);
    }
    memset(d, 0, sizeof(*d));
}
