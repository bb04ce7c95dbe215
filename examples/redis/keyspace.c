/* weft-redis — the sharded keyspace. See keyspace.h for why shards. */
#include "keyspace.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define SHARD_MIN_BUCKETS 16
#define CURSOR_BITS       40 /* low bits of a SCAN cursor: the bucket cursor in a shard */
#define CURSOR_MASK       ((UINT64_C(1) << CURSOR_BITS) - 1)

uint64_t ks_hash(const void *key, size_t len)
{
    return XXH3_64bits(key, len);
}

/* A keyspace that one thread owns takes no locks, as Redis's single thread takes none:
 * an uncontended mutex still costs two atomic instructions per command. */
static void sh_lock(ks_shard *sh)
{
    if (!sh->single)
        pthread_mutex_lock(&sh->lock);
}

static void sh_unlock(ks_shard *sh)
{
    if (!sh->single)
        pthread_mutex_unlock(&sh->lock);
}

static bool sh_trylock(ks_shard *sh)
{
    return sh->single || pthread_mutex_trylock(&sh->lock) == 0;
}

static bool shard_init(ks_shard *sh)
{
    memset(sh, 0, sizeof(*sh));
    sh->buckets = calloc(SHARD_MIN_BUCKETS, sizeof(*sh->buckets));
    if (sh->buckets == NULL)
        return false;
    sh->mask = SHARD_MIN_BUCKETS - 1;
    if (pthread_mutex_init(&sh->lock, NULL) != 0) {
        free(sh->buckets);
        return false;
    }
    return true;
}

static void entry_free_value(ks_entry *e)
{
    switch ((ks_type)e->type) {
    case KS_STRING:
        free(e->v.str.data);
        break;
    case KS_LIST:
        ks_list_free(&e->v.list);
        break;
    case KS_HASH:
    case KS_SET:
        ks_dict_free(&e->v.dict);
        break;
    }
}

/* Frees every entry of sh; the caller holds its lock or owns it alone. */
static void shard_clear(ks_shard *sh)
{
    for (size_t i = 0; i <= sh->mask; i++) {
        ks_entry *e = sh->buckets[i], *next;
        for (; e != NULL; e = next) {
            next = e->next;
            entry_free_value(e);
            free(e);
        }
        sh->buckets[i] = NULL;
    }
    sh->count = 0;
    sh->expires = 0;
}

keyspace *ks_create(void)
{
    keyspace *ks = calloc(1, sizeof(*ks));
    if (ks == NULL)
        return NULL;
    for (unsigned i = 0; i < KS_SHARDS; i++) {
        if (!shard_init(&ks->shards[i])) {
            while (i-- > 0) {
                pthread_mutex_destroy(&ks->shards[i].lock);
                free(ks->shards[i].buckets);
            }
            free(ks);
            return NULL;
        }
    }
    atomic_init(&ks->sweep_next, 0);
    atomic_init(&ks->expired, 0);
    return ks;
}

void ks_set_single_thread(keyspace *ks)
{
    for (unsigned i = 0; i < KS_SHARDS; i++)
        ks->shards[i].single = true;
}

void ks_destroy(keyspace *ks)
{
    if (ks == NULL)
        return;
    for (unsigned i = 0; i < KS_SHARDS; i++) {
        shard_clear(&ks->shards[i]);
        free(ks->shards[i].buckets);
        pthread_mutex_destroy(&ks->shards[i].lock);
    }
    free(ks);
}

ks_shard *ks_lock(keyspace *ks, uint64_t h)
{
    ks_shard *sh = ks_shard_of(ks, h);
    sh_lock(sh);
    return sh;
}

void ks_unlock(ks_shard *sh)
{
    sh_unlock(sh);
}

void ks_lock_mask(keyspace *ks, uint64_t mask)
{
    for (unsigned i = 0; i < KS_SHARDS; i++)
        if (mask & (UINT64_C(1) << i))
            sh_lock(&ks->shards[i]);
}

void ks_unlock_mask(keyspace *ks, uint64_t mask)
{
    for (unsigned i = KS_SHARDS; i-- > 0;)
        if (mask & (UINT64_C(1) << i))
            sh_unlock(&ks->shards[i]);
}

static bool expired(const ks_entry *e, int64_t now)
{
    /* Redis's keyIsExpired: a key expiring at t is still there at t. */
    return e->expire_ms != 0 && now > e->expire_ms;
}

ks_entry *ks_find(keyspace *ks, ks_shard *sh, uint64_t h, const void *key, size_t klen, int64_t now)
{
    for (ks_entry *e = sh->buckets[h & sh->mask]; e != NULL; e = e->next) {
        if (e->hash == h && e->klen == klen && memcmp(e->key, key, klen) == 0) {
            if (expired(e, now)) {
                ks_remove(sh, e);
                atomic_fetch_add_explicit(&ks->expired, 1, memory_order_relaxed);
                return NULL;
            }
            return e;
        }
    }
    return NULL;
}

/* Doubles sh's bucket array. Under the shard's own lock, so only its keys wait. */
static void shard_grow(ks_shard *sh)
{
    size_t n = (sh->mask + 1) * 2;
    ks_entry **b = calloc(n, sizeof(*b));
    if (b == NULL)
        return; /* Longer chains, still correct. */
    for (size_t i = 0; i <= sh->mask; i++) {
        ks_entry *e = sh->buckets[i], *next;
        for (; e != NULL; e = next) {
            next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    free(sh->buckets);
    sh->buckets = b;
    sh->mask = n - 1;
}

ks_entry *ks_add(ks_shard *sh, uint64_t h, const void *key, size_t klen, ks_type type)
{
    ks_entry *e;

    if (sh->count > sh->mask)
        shard_grow(sh);
    e = malloc(sizeof(*e) + klen);
    if (e == NULL)
        return NULL;
    memset(e, 0, sizeof(*e));
    e->hash = h;
    e->klen = klen;
    e->type = (uint8_t)type;
    if (klen > 0)
        memcpy(e->key, key, klen);
    e->next = sh->buckets[h & sh->mask];
    sh->buckets[h & sh->mask] = e;
    sh->count++;
    return e;
}

void ks_remove(ks_shard *sh, ks_entry *e)
{
    ks_entry **pp = &sh->buckets[e->hash & sh->mask];
    while (*pp != e)
        pp = &(*pp)->next;
    *pp = e->next;
    sh->count--;
    if (e->expire_ms != 0)
        sh->expires--;
    entry_free_value(e);
    free(e);
}

void ks_set_expire(ks_shard *sh, ks_entry *e, int64_t when_ms)
{
    if (e->expire_ms == 0 && when_ms != 0)
        sh->expires++;
    else if (e->expire_ms != 0 && when_ms == 0)
        sh->expires--;
    e->expire_ms = when_ms;
}

bool ks_str_reserve(ks_entry *e, size_t len)
{
    if (len > e->v.str.cap) {
        /* Grow geometrically for APPEND; exactly for a first SET. */
        size_t cap = e->v.str.cap ? e->v.str.cap * 2 : len;
        uint8_t *d;
        if (cap < len)
            cap = len;
        d = realloc(e->v.str.data, cap ? cap : 1);
        if (d == NULL)
            return false;
        e->v.str.data = d;
        e->v.str.cap = cap;
    }
    return true;
}

bool ks_str_set(ks_entry *e, const void *val, size_t len)
{
    if (len > e->v.str.cap || (e->v.str.cap > 256 && len < e->v.str.cap / 4)) {
        /* A new exact buffer: also gives back memory when a big value shrinks. */
        uint8_t *d = malloc(len ? len : 1);
        if (d == NULL)
            return false;
        free(e->v.str.data);
        e->v.str.data = d;
        e->v.str.cap = len;
    }
    if (len > 0)
        memcpy(e->v.str.data, val, len);
    e->v.str.len = len;
    return true;
}

size_t ks_size(keyspace *ks, size_t *expires)
{
    size_t n = 0, x = 0;
    for (unsigned i = 0; i < KS_SHARDS; i++) {
        ks_shard *sh = &ks->shards[i];
        sh_lock(sh);
        n += sh->count;
        x += sh->expires;
        sh_unlock(sh);
    }
    if (expires != NULL)
        *expires = x;
    return n;
}

void ks_flush(keyspace *ks)
{
    for (unsigned i = 0; i < KS_SHARDS; i++) {
        ks_shard *sh = &ks->shards[i];
        sh_lock(sh);
        shard_clear(sh);
        sh_unlock(sh);
    }
}

static uint64_t rev64(uint64_t v)
{
    v = ((v >> 1) & 0x5555555555555555ull) | ((v & 0x5555555555555555ull) << 1);
    v = ((v >> 2) & 0x3333333333333333ull) | ((v & 0x3333333333333333ull) << 2);
    v = ((v >> 4) & 0x0F0F0F0F0F0F0F0Full) | ((v & 0x0F0F0F0F0F0F0F0Full) << 4);
    v = ((v >> 8) & 0x00FF00FF00FF00FFull) | ((v & 0x00FF00FF00FF00FFull) << 8);
    v = ((v >> 16) & 0x0000FFFF0000FFFFull) | ((v & 0x0000FFFF0000FFFFull) << 16);
    return (v >> 32) | (v << 32);
}

uint64_t ks_scan(keyspace *ks, uint64_t cursor, size_t count, int64_t now, ks_visit_cb cb,
                 void *arg)
{
    uint64_t shard = cursor >> CURSOR_BITS, v = cursor & CURSOR_MASK;
    size_t visited = 0;

    if (count == 0)
        count = 1;
    while (shard < KS_SHARDS && visited < count) {
        ks_shard *sh = &ks->shards[shard];
        sh_lock(sh);
        do {
            for (ks_entry *e = sh->buckets[v & sh->mask]; e != NULL; e = e->next) {
                if (!expired(e, now))
                    cb(arg, e);
                visited++;
            }
            visited++;
            /* Increment the reversed cursor: growth splits bucket b into b and
             * b + old size, which this order visits after b, never before. */
            v |= ~(uint64_t)sh->mask;
            v = rev64(v);
            v++;
            v = rev64(v);
        } while (v != 0 && visited < count);
        sh_unlock(sh);
        if (v == 0)
            shard++;
    }
    return shard >= KS_SHARDS ? 0 : (shard << CURSOR_BITS) | v;
}

size_t ks_sweep(keyspace *ks, int64_t now, size_t budget)
{
    unsigned start = atomic_fetch_add_explicit(&ks->sweep_next, 1, memory_order_relaxed);
    size_t looked = 0, removed = 0;

    for (unsigned k = 0; k < KS_SHARDS && looked < budget; k++) {
        ks_shard *sh = &ks->shards[(start + k) % KS_SHARDS];
        size_t buckets;

        /* Never wait for a shard: a loop serving clients holds it, and the next tick
         * will come back. */
        if (!sh_trylock(sh))
            continue;
        looked++;
        buckets = sh->mask + 1;
        for (size_t j = 0; j < buckets && sh->expires > 0 && looked < budget; j++) {
            ks_entry *e = sh->buckets[sh->sweep_pos & sh->mask], *next;
            sh->sweep_pos++;
            looked++;
            for (; e != NULL; e = next) {
                next = e->next;
                looked++;
                if (expired(e, now)) {
                    ks_remove(sh, e);
                    removed++;
                }
            }
        }
        sh_unlock(sh);
    }
    if (removed > 0)
        atomic_fetch_add_explicit(&ks->expired, removed, memory_order_relaxed);
    return removed;
}
