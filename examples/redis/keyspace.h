/* weft-redis — the keyspace: one table shared by every loop.
 *
 * Why shards and not one table with striped locks: the table is split into KS_SHARDS
 * independent hash tables, each with its own mutex, its own bucket array and its own
 * resize. A key's shard is the top bits of its XXH3 hash and its bucket the low bits, so
 * the two choices are independent. With lock striping over one table, growing the table
 * would need every stripe's lock at once — a stop-the-world pause for all loops — while a
 * shard grows under its own lock, holding up only the keys that hash to it, and doing 1/64
 * of the work. A command touching one key takes one uncontended mutex (tens of
 * nanoseconds); multi-key commands (MSET, MGET, RENAME, DEL) lock every shard they touch
 * in ascending shard order, which makes them atomic to other commands and cannot
 * deadlock. The set of shards fits a 64-bit mask, so collecting them costs nothing.
 *
 * Everything here except ks_create/ks_destroy/ks_size/ks_flush/ks_scan/ks_sweep runs with
 * the key's shard locked by the caller.
 */
#ifndef WEFT_REDIS_KEYSPACE_H
#define WEFT_REDIS_KEYSPACE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "types.h"

#define KS_SHARD_BITS 6
#define KS_SHARDS     (1u << KS_SHARD_BITS)

typedef enum ks_type { KS_STRING = 0, KS_LIST, KS_HASH, KS_SET } ks_type;

typedef struct ks_entry {
    struct ks_entry *next;
    uint64_t hash;
    int64_t expire_ms; /* unix ms after which the key is gone; 0 = never */
    size_t klen;
    uint8_t type; /* ks_type */
    union {
        struct {
            uint8_t *data;
            size_t len;
            size_t cap;
        } str;
        ks_list list;
        ks_dict dict; /* hash: fields with values; set: members without */
    } v;
    uint8_t key[];
} ks_entry;

typedef struct ks_shard {
    _Alignas(64) pthread_mutex_t lock;
    ks_entry **buckets;
    size_t mask; /* bucket count - 1 */
    size_t count;
    size_t expires;   /* entries with a TTL */
    size_t sweep_pos; /* next bucket the active expiry looks at */
    bool single;      /* one thread uses the keyspace: lock calls do nothing */
} ks_shard;

typedef struct keyspace {
    ks_shard shards[KS_SHARDS];
    atomic_uint sweep_next;       /* shard the next sweep starts at */
    atomic_uint_fast64_t expired; /* keys removed because their TTL passed */
} keyspace;

keyspace *ks_create(void);
void ks_destroy(keyspace *ks);
/* From now on only one thread (the caller's, or one it hands ks to) uses ks, so the shard
 * locks are skipped. Call before that thread starts using it. */
void ks_set_single_thread(keyspace *ks);

uint64_t ks_hash(const void *key, size_t len);

static inline unsigned ks_shard_index(uint64_t h)
{
    return (unsigned)(h >> (64 - KS_SHARD_BITS));
}

static inline ks_shard *ks_shard_of(keyspace *ks, uint64_t h)
{
    return &ks->shards[ks_shard_index(h)];
}

/* Locks and returns the shard of hash h. */
ks_shard *ks_lock(keyspace *ks, uint64_t h);
void ks_unlock(ks_shard *sh);
/* Locks / unlocks every shard whose bit is set in mask, in ascending order. */
void ks_lock_mask(keyspace *ks, uint64_t mask);
void ks_unlock_mask(keyspace *ks, uint64_t mask);

/* The live entry for key, or NULL. An entry whose TTL passed at now is removed here (lazy
 * expiry). */
ks_entry *ks_find(keyspace *ks, ks_shard *sh, uint64_t h, const void *key, size_t klen,
                  int64_t now);
/* Adds an empty entry of type for key, which must be absent. NULL when out of memory. */
ks_entry *ks_add(ks_shard *sh, uint64_t h, const void *key, size_t klen, ks_type type);
/* Unlinks and frees e. */
void ks_remove(ks_shard *sh, ks_entry *e);
/* Sets (when > 0) or clears (0) e's TTL. */
void ks_set_expire(ks_shard *sh, ks_entry *e, int64_t when_ms);
/* Replaces a string entry's value. false when out of memory (the old value stays). */
bool ks_str_set(ks_entry *e, const void *val, size_t len);
/* Makes room for len bytes in a string entry, keeping its contents. */
bool ks_str_reserve(ks_entry *e, size_t len);

/* Keys now, counting those whose TTL passed but were not removed yet (as Redis does). */
size_t ks_size(keyspace *ks, size_t *expires);
void ks_flush(keyspace *ks);

/* Calls cb for every live entry, with its shard locked; cb must not call into ks. */
typedef void (*ks_visit_cb)(void *arg, const ks_entry *e);
/* Visits about count buckets from cursor and returns the next cursor (0: done). A key
 * present for the whole iteration is visited at least once, even across table growth —
 * the reverse-binary cursor of Redis's dictScan, per shard. */
uint64_t ks_scan(keyspace *ks, uint64_t cursor, size_t count, int64_t now, ks_visit_cb cb,
                 void *arg);

/* Active expiry: looks at up to budget entries, starting where the last call stopped,
 * skipping shards another thread holds, and removes those whose TTL passed. Returns how
 * many it removed. */
size_t ks_sweep(keyspace *ks, int64_t now, size_t budget);

#endif /* WEFT_REDIS_KEYSPACE_H */
