/* weft-redis — what the command files share. Private to examples/redis. */
#ifndef WEFT_REDIS_CMD_H
#define WEFT_REDIS_CMD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "commands.h"
#include "keyspace.h"
#include "reply.h"

typedef struct redis_loop_counters {
    _Alignas(64) atomic_uint_fast64_t commands;
} redis_loop_counters;

struct redis_server {
    keyspace *ks;
    redis_config cfg;
    int64_t start_ms;
    atomic_uint_fast64_t next_client_id;
    redis_loop_counters *loops; /* cfg.nloops */
};

typedef struct cmd_ctx {
    redis_server *srv;
    redis_client *client;
    keyspace *ks;
    int argc;
    const uint8_t *const *argv;
    const size_t *lens;
    reply_buf *out;
    int64_t now; /* read once per command, when first needed */
    int result;  /* REDIS_EXEC_* */
    const struct redis_cmd *cmd;
} cmd_ctx;

typedef void (*cmd_fn)(cmd_ctx *c);

typedef struct redis_cmd {
    const char *name; /* lowercase */
    int arity;        /* Redis's: n = exactly n, -n = at least n (the name counts) */
    cmd_fn fn;
    const char *flags; /* for COMMAND: "write", "readonly", "fast", ... space-separated */
    int first_key, last_key, step;
} redis_cmd;

extern const redis_cmd redis_cmd_table[];
extern const size_t redis_cmd_table_len;

/* ---- helpers (commands.c) ---- */
int64_t cmd_now(cmd_ctx *c);
/* Case-insensitive: argument i equals lower (a lowercase C string). */
bool arg_is(const cmd_ctx *c, int i, const char *lower);
/* Parses argument i as an int64; on failure replies "value is not an integer or out of
 * range" and returns false. */
bool arg_ll(cmd_ctx *c, int i, int64_t *out);
void reply_wrongtype(cmd_ctx *c);
void reply_syntax_error(cmd_ctx *c);
void reply_not_int(cmd_ctx *c);
/* "wrong number of arguments for '<name>' command". */
void reply_arity(cmd_ctx *c, const char *name);
void reply_oom(cmd_ctx *c);

/* A peer's bytes quoted in an error reply: at most QUOTE_MAX of them, as Redis cuts its
 * quotes (%.128s), escaped with weft_escape so that no raw control byte (an ESC, a newline)
 * reaches the client or its terminal. Each byte takes at most 4 characters. */
#define QUOTE_MAX 128
#define QUOTE_BUF (QUOTE_MAX * 4 + 1)
/* Argument i so quoted, in buf (QUOTE_BUF bytes, owned by the caller), which it returns. */
const char *arg_quote(const cmd_ctx *c, int i, char *buf);

/* The key at argument i: hash, shard locked, live entry (or NULL). */
typedef struct key_ref {
    const uint8_t *key;
    size_t len;
    uint64_t h;
    ks_shard *sh;
    ks_entry *e;
} key_ref;

/* Locks argument i's shard and looks the key up. Pair with key_unlock. */
void key_lock(cmd_ctx *c, int i, key_ref *k);
void key_unlock(key_ref *k);
/* Looks key i up in an already locked shard (multi-key commands). */
ks_entry *key_find_locked(cmd_ctx *c, int i, uint64_t *h);
/* Mask of the shards of arguments first, first+step, ... up to last (inclusive). */
uint64_t keys_mask(cmd_ctx *c, int first, int last, int step);
/* Sets a string key in a locked shard, dropping any old value and TTL. false = OOM. */
bool key_set_string(cmd_ctx *c, ks_shard *sh, uint64_t h, const uint8_t *key, size_t klen,
                    ks_entry *old, const uint8_t *val, size_t vlen, int64_t expire_ms);

/* For a write into key k of type t: the entry, created empty when absent. NULL after
 * replying WRONGTYPE or OOM. */
ks_entry *key_for_write(cmd_ctx *c, key_ref *k, ks_type t);
/* For a read of key k of type t: true when k->e is usable (may be NULL: absent); false after
 * replying WRONGTYPE. */
bool key_check_type(cmd_ctx *c, const key_ref *k, ks_type t);
/* Removes k's entry when its list, hash or set became empty, as Redis does. */
void key_drop_if_empty(key_ref *k);

/* ---- families ---- */
void cmd_ping(cmd_ctx *c);
void cmd_echo(cmd_ctx *c);
void cmd_quit(cmd_ctx *c);
void cmd_select(cmd_ctx *c);
void cmd_hello(cmd_ctx *c);
void cmd_client(cmd_ctx *c);
void cmd_command(cmd_ctx *c);
void cmd_config(cmd_ctx *c);
void cmd_info(cmd_ctx *c);
void cmd_get(cmd_ctx *c);
void cmd_set(cmd_ctx *c);
void cmd_setnx(cmd_ctx *c);
void cmd_setex(cmd_ctx *c);
void cmd_psetex(cmd_ctx *c);
void cmd_getset(cmd_ctx *c);
void cmd_getdel(cmd_ctx *c);
void cmd_mget(cmd_ctx *c);
void cmd_mset(cmd_ctx *c);
void cmd_msetnx(cmd_ctx *c);
void cmd_incr(cmd_ctx *c);
void cmd_decr(cmd_ctx *c);
void cmd_incrby(cmd_ctx *c);
void cmd_decrby(cmd_ctx *c);
void cmd_incrbyfloat(cmd_ctx *c);
void cmd_append(cmd_ctx *c);
void cmd_strlen(cmd_ctx *c);
void cmd_getrange(cmd_ctx *c);
void cmd_setrange(cmd_ctx *c);
void cmd_del(cmd_ctx *c);
void cmd_exists(cmd_ctx *c);
void cmd_expire(cmd_ctx *c);
void cmd_pexpire(cmd_ctx *c);
void cmd_expireat(cmd_ctx *c);
void cmd_pexpireat(cmd_ctx *c);
void cmd_ttl(cmd_ctx *c);
void cmd_pttl(cmd_ctx *c);
void cmd_persist(cmd_ctx *c);
void cmd_type(cmd_ctx *c);
void cmd_keys(cmd_ctx *c);
void cmd_scan(cmd_ctx *c);
void cmd_rename(cmd_ctx *c);
void cmd_dbsize(cmd_ctx *c);
void cmd_flushdb(cmd_ctx *c);
void cmd_lpush(cmd_ctx *c);
void cmd_rpush(cmd_ctx *c);
void cmd_lpop(cmd_ctx *c);
void cmd_rpop(cmd_ctx *c);
void cmd_llen(cmd_ctx *c);
void cmd_lrange(cmd_ctx *c);
void cmd_lindex(cmd_ctx *c);
void cmd_hset(cmd_ctx *c);
void cmd_hget(cmd_ctx *c);
void cmd_hdel(cmd_ctx *c);
void cmd_hgetall(cmd_ctx *c);
void cmd_hlen(cmd_ctx *c);
void cmd_hexists(cmd_ctx *c);
void cmd_hincrby(cmd_ctx *c);
void cmd_hmget(cmd_ctx *c);
void cmd_sadd(cmd_ctx *c);
void cmd_srem(cmd_ctx *c);
void cmd_smembers(cmd_ctx *c);
void cmd_sismember(cmd_ctx *c);
void cmd_scard(cmd_ctx *c);

#endif /* WEFT_REDIS_CMD_H */
