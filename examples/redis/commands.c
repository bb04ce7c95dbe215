/* weft-redis — command dispatch and the helpers every command family uses. */
#include "cmd.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "system.h"
#include "number.h"
#include "resp.h"
#include "weft/engine.h"

/* The dispatch table. Arity and key positions are Redis's, so COMMAND tells clients the
 * truth about them. */
const redis_cmd redis_cmd_table[] = {
    {"ping", -1, cmd_ping, "fast", 0, 0, 0},
    {"echo", 2, cmd_echo, "fast", 0, 0, 0},
    {"quit", -1, cmd_quit, "fast", 0, 0, 0},
    {"select", 2, cmd_select, "loading stale fast", 0, 0, 0},
    {"hello", -1, cmd_hello, "noscript loading stale fast", 0, 0, 0},
    {"client", -2, cmd_client, "", 0, 0, 0},
    {"command", -1, cmd_command, "loading stale", 0, 0, 0},
    {"config", -2, cmd_config, "", 0, 0, 0},
    {"info", -1, cmd_info, "loading stale", 0, 0, 0},
    {"get", 2, cmd_get, "readonly fast", 1, 1, 1},
    {"set", -3, cmd_set, "write denyoom", 1, 1, 1},
    {"setnx", 3, cmd_setnx, "write denyoom fast", 1, 1, 1},
    {"setex", 4, cmd_setex, "write denyoom", 1, 1, 1},
    {"psetex", 4, cmd_psetex, "write denyoom", 1, 1, 1},
    {"getset", 3, cmd_getset, "write denyoom fast", 1, 1, 1},
    {"getdel", 2, cmd_getdel, "write fast", 1, 1, 1},
    {"mget", -2, cmd_mget, "readonly fast", 1, -1, 1},
    {"mset", -3, cmd_mset, "write denyoom", 1, -1, 2},
    {"msetnx", -3, cmd_msetnx, "write denyoom", 1, -1, 2},
    {"incr", 2, cmd_incr, "write denyoom fast", 1, 1, 1},
    {"decr", 2, cmd_decr, "write denyoom fast", 1, 1, 1},
    {"incrby", 3, cmd_incrby, "write denyoom fast", 1, 1, 1},
    {"decrby", 3, cmd_decrby, "write denyoom fast", 1, 1, 1},
    {"incrbyfloat", 3, cmd_incrbyfloat, "write denyoom fast", 1, 1, 1},
    {"append", 3, cmd_append, "write denyoom fast", 1, 1, 1},
    {"strlen", 2, cmd_strlen, "readonly fast", 1, 1, 1},
    {"getrange", 4, cmd_getrange, "readonly", 1, 1, 1},
    {"setrange", 4, cmd_setrange, "write denyoom", 1, 1, 1},
    {"del", -2, cmd_del, "write", 1, -1, 1},
    {"unlink", -2, cmd_del, "write fast", 1, -1, 1},
    {"exists", -2, cmd_exists, "readonly fast", 1, -1, 1},
    {"expire", -3, cmd_expire, "write fast", 1, 1, 1},
    {"pexpire", -3, cmd_pexpire, "write fast", 1, 1, 1},
    {"expireat", -3, cmd_expireat, "write fast", 1, 1, 1},
    {"pexpireat", -3, cmd_pexpireat, "write fast", 1, 1, 1},
    {"ttl", 2, cmd_ttl, "readonly random fast", 1, 1, 1},
    {"pttl", 2, cmd_pttl, "readonly random fast", 1, 1, 1},
    {"persist", 2, cmd_persist, "write fast", 1, 1, 1},
    {"type", 2, cmd_type, "readonly fast", 1, 1, 1},
    {"keys", 2, cmd_keys, "readonly", 0, 0, 0},
    {"scan", -2, cmd_scan, "readonly", 0, 0, 0},
    {"rename", 3, cmd_rename, "write", 1, 2, 1},
    {"dbsize", 1, cmd_dbsize, "readonly fast", 0, 0, 0},
    {"flushdb", -1, cmd_flushdb, "write", 0, 0, 0},
    {"flushall", -1, cmd_flushdb, "write", 0, 0, 0},
    {"lpush", -3, cmd_lpush, "write denyoom fast", 1, 1, 1},
    {"rpush", -3, cmd_rpush, "write denyoom fast", 1, 1, 1},
    {"lpop", -2, cmd_lpop, "write fast", 1, 1, 1},
    {"rpop", -2, cmd_rpop, "write fast", 1, 1, 1},
    {"llen", 2, cmd_llen, "readonly fast", 1, 1, 1},
    {"lrange", 4, cmd_lrange, "readonly", 1, 1, 1},
    {"lindex", 3, cmd_lindex, "readonly", 1, 1, 1},
    {"hset", -4, cmd_hset, "write denyoom fast", 1, 1, 1},
    {"hmset", -4, cmd_hset, "write denyoom fast", 1, 1, 1},
    {"hget", 3, cmd_hget, "readonly fast", 1, 1, 1},
    {"hdel", -3, cmd_hdel, "write fast", 1, 1, 1},
    {"hgetall", 2, cmd_hgetall, "readonly random", 1, 1, 1},
    {"hlen", 2, cmd_hlen, "readonly fast", 1, 1, 1},
    {"hexists", 3, cmd_hexists, "readonly fast", 1, 1, 1},
    {"hincrby", 4, cmd_hincrby, "write denyoom fast", 1, 1, 1},
    {"hmget", -3, cmd_hmget, "readonly fast", 1, 1, 1},
    {"sadd", -3, cmd_sadd, "write denyoom fast", 1, 1, 1},
    {"srem", -3, cmd_srem, "write fast", 1, 1, 1},
    {"smembers", 2, cmd_smembers, "readonly", 1, 1, 1},
    {"sismember", 3, cmd_sismember, "readonly fast", 1, 1, 1},
    {"scard", 2, cmd_scard, "readonly fast", 1, 1, 1},
};
const size_t redis_cmd_table_len = sizeof(redis_cmd_table) / sizeof(redis_cmd_table[0]);

/* Lookup: XXH3 of the lowercased name into an open-addressed table four times the size
 * of the command list, built once. One hash and usually one compare per command. */
#define LOOKUP_SLOTS 512
#define NAME_MAX_LEN 32
static const redis_cmd *lookup_table[LOOKUP_SLOTS];
static pthread_once_t lookup_once = PTHREAD_ONCE_INIT;

static void lookup_build(void)
{
    for (size_t i = 0; i < redis_cmd_table_len; i++) {
        const redis_cmd *cmd = &redis_cmd_table[i];
        size_t slot = XXH3_64bits(cmd->name, strlen(cmd->name)) & (LOOKUP_SLOTS - 1);
        while (lookup_table[slot] != NULL)
            slot = (slot + 1) & (LOOKUP_SLOTS - 1);
        lookup_table[slot] = cmd;
    }
}

static const redis_cmd *lookup(const uint8_t *name, size_t len)
{
    char lower[NAME_MAX_LEN];
    size_t slot;

    if (len == 0 || len >= NAME_MAX_LEN)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        uint8_t ch = name[i];
        lower[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
    }
    slot = XXH3_64bits(lower, len) & (LOOKUP_SLOTS - 1);
    for (;;) {
        const redis_cmd *cmd = lookup_table[slot];
        if (cmd == NULL)
            return NULL;
        /* strncmp stops at the end of the shorter name: never reads past it. */
        if (strncmp(cmd->name, lower, len) == 0 && cmd->name[len] == '\0')
            return cmd;
        slot = (slot + 1) & (LOOKUP_SLOTS - 1);
    }
}

size_t redis_command_count(void)
{
    return redis_cmd_table_len;
}

/* ---- server and clients ---- */

static int64_t real_clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void redis_config_init(redis_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->nloops = 1;
    cfg->port = 6380;
    cfg->max_bulk = RESP_MAX_BULK_DEFAULT;
    obuf_limit_init(&cfg->obuf);
}

redis_server *redis_server_create(const redis_config *cfg)
{
    redis_server *srv = calloc(1, sizeof(*srv));

    (void)pthread_once(&lookup_once, lookup_build);
    if (srv == NULL)
        return NULL;
    srv->cfg = *cfg;
    if (srv->cfg.nloops == 0)
        srv->cfg.nloops = 1;
    if (srv->cfg.clock_ms == NULL)
        srv->cfg.clock_ms = real_clock_ms;
    srv->ks = ks_create();
    if (srv->ks != NULL && srv->cfg.nloops == 1)
        ks_set_single_thread(srv->ks);
    srv->loops = redis_aligned_alloc(64, sizeof(*srv->loops) * srv->cfg.nloops);
    if (srv->ks == NULL || srv->loops == NULL) {
        redis_server_destroy(srv);
        return NULL;
    }
    for (unsigned i = 0; i < srv->cfg.nloops; i++)
        atomic_init(&srv->loops[i].commands, 0);
    atomic_init(&srv->next_client_id, 1);
    srv->start_ms = srv->cfg.clock_ms();
    return srv;
}

void redis_server_destroy(redis_server *srv)
{
    if (srv == NULL)
        return;
    ks_destroy(srv->ks);
    redis_aligned_free(srv->loops);
    free(srv);
}

keyspace *redis_server_keyspace(redis_server *srv)
{
    return srv->ks;
}

int64_t redis_server_now(const redis_server *srv)
{
    return srv->cfg.clock_ms();
}

void redis_client_init(redis_server *srv, redis_client *c, unsigned loop)
{
    memset(c, 0, sizeof(*c));
    c->id = atomic_fetch_add_explicit(&srv->next_client_id, 1, memory_order_relaxed);
    c->loop = loop < srv->cfg.nloops ? loop : 0;
}

void redis_batch_begin(redis_client *c)
{
    c->batch = true;
    c->batch_now = 0;
}

void redis_batch_end(redis_client *c)
{
    c->batch = false;
    c->batch_now = 0;
}

void redis_client_free(redis_client *c)
{
    free(c->name);
    free(c->lib_name);
    free(c->lib_ver);
    c->name = c->lib_name = c->lib_ver = NULL;
}

size_t redis_tick(redis_server *srv, unsigned loop)
{
    (void)loop;
    /* About what Redis's fast expire cycle looks at per call, and never more. */
    return ks_sweep(srv->ks, srv->cfg.clock_ms(), 200);
}

/* ---- dispatch ---- */

static const char *quote(const uint8_t *s, size_t n, char *buf)
{
    weft_escape(buf, QUOTE_BUF, s, n < QUOTE_MAX ? n : QUOTE_MAX);
    return buf;
}

static void reply_unknown_command(reply_buf *out, int argc, const uint8_t *const *argv,
                                  const size_t *lens)
{
    /* Redis: "unknown command '%.128s', with args beginning with: 'a' 'b' ", the args
     * listed while the list is shorter than 128 bytes, each cut to what is left. The bytes
     * are counted before escaping, so the list is the one Redis would show. */
    char name[QUOTE_BUF], args[QUOTE_MAX * 5 + 1], msg[sizeof(name) + sizeof(args) + 64];
    size_t n = 0, o = 0;

    for (int i = 1; i < argc && n < QUOTE_MAX; i++) {
        size_t room = QUOTE_MAX - n, take = lens[i] < room ? lens[i] : room;
        args[o++] = '\'';
        o += weft_escape(args + o, sizeof(args) - o - 2, argv[i], take);
        args[o++] = '\'';
        args[o++] = ' ';
        n += take + 3;
    }
    args[o] = '\0';
    snprintf(msg, sizeof(msg), "ERR unknown command '%s', with args beginning with: %s",
             quote(argv[0], lens[0], name), args);
    reply_error(out, msg);
}

int redis_exec(redis_server *srv, redis_client *client, int argc, const uint8_t *const *argv,
               const size_t *lens, reply_buf *out)
{
    const redis_cmd *cmd;
    cmd_ctx c;
    atomic_uint_fast64_t *counter;

    if (argc <= 0)
        return REDIS_EXEC_OK;
    cmd = lookup(argv[0], lens[0]);
    if (cmd == NULL) {
        reply_unknown_command(out, argc, argv, lens);
        return REDIS_EXEC_OK;
    }
    if ((cmd->arity > 0 && argc != cmd->arity) || (cmd->arity < 0 && argc < -cmd->arity)) {
        reply_errorf(out, "ERR wrong number of arguments for '%s' command", cmd->name);
        return REDIS_EXEC_OK;
    }
    c.srv = srv;
    c.client = client;
    c.ks = srv->ks;
    c.argc = argc;
    c.argv = argv;
    c.lens = lens;
    c.out = out;
    c.now = 0;
    c.result = REDIS_EXEC_OK;
    c.cmd = cmd;
    cmd->fn(&c);
    /* One writer per loop in the server, so a plain relaxed load and store is enough and
     * avoids a locked instruction per command. */
    counter = &srv->loops[client->loop].commands;
    atomic_store_explicit(counter, atomic_load_explicit(counter, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    return c.result;
}

/* ---- helpers ---- */

int64_t cmd_now(cmd_ctx *c)
{
    redis_client *cl = c->client;

    if (c->now != 0)
        return c->now;
    if (cl->batch && cl->batch_now != 0) {
        c->now = cl->batch_now;
    } else {
        c->now = c->srv->cfg.clock_ms();
        if (cl->batch)
            cl->batch_now = c->now;
    }
    return c->now;
}

bool arg_is(const cmd_ctx *c, int i, const char *lower)
{
    size_t n = strlen(lower);
    if (c->lens[i] != n)
        return false;
    for (size_t j = 0; j < n; j++) {
        uint8_t ch = c->argv[i][j];
        if ((ch >= 'A' && ch <= 'Z' ? ch + 32 : ch) != (uint8_t)lower[j])
            return false;
    }
    return true;
}

bool arg_ll(cmd_ctx *c, int i, int64_t *out)
{
    if (num_parse_ll(c->argv[i], c->lens[i], out))
        return true;
    reply_not_int(c);
    return false;
}

void reply_wrongtype(cmd_ctx *c)
{
    reply_raw(c->out, "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n", 68);
}

void reply_syntax_error(cmd_ctx *c)
{
    reply_error(c->out, "ERR syntax error");
}

void reply_not_int(cmd_ctx *c)
{
    reply_error(c->out, "ERR value is not an integer or out of range");
}

void reply_arity(cmd_ctx *c, const char *name)
{
    reply_errorf(c->out, "ERR wrong number of arguments for '%s' command", name);
}

void reply_oom(cmd_ctx *c)
{
    reply_error(c->out, "OOM command not allowed when used memory > 'maxmemory'.");
}

const char *arg_quote(const cmd_ctx *c, int i, char *buf)
{
    return quote(c->argv[i], c->lens[i], buf);
}

void key_lock(cmd_ctx *c, int i, key_ref *k)
{
    k->key = c->argv[i];
    k->len = c->lens[i];
    k->h = ks_hash(k->key, k->len);
    k->sh = ks_lock(c->ks, k->h);
    k->e = ks_find(c->ks, k->sh, k->h, k->key, k->len, cmd_now(c));
}

void key_unlock(key_ref *k)
{
    ks_unlock(k->sh);
}

ks_entry *key_find_locked(cmd_ctx *c, int i, uint64_t *h)
{
    uint64_t hh = ks_hash(c->argv[i], c->lens[i]);
    if (h != NULL)
        *h = hh;
    return ks_find(c->ks, ks_shard_of(c->ks, hh), hh, c->argv[i], c->lens[i], cmd_now(c));
}

uint64_t keys_mask(cmd_ctx *c, int first, int last, int step)
{
    uint64_t mask = 0;
    for (int i = first; i <= last; i += step)
        mask |= UINT64_C(1) << ks_shard_index(ks_hash(c->argv[i], c->lens[i]));
    return mask;
}

bool key_set_string(cmd_ctx *c, ks_shard *sh, uint64_t h, const uint8_t *key, size_t klen,
                    ks_entry *old, const uint8_t *val, size_t vlen, int64_t expire_ms)
{
    (void)c;
    if (old != NULL && old->type != KS_STRING) {
        ks_remove(sh, old);
        old = NULL;
    }
    if (old == NULL) {
        old = ks_add(sh, h, key, klen, KS_STRING);
        if (old == NULL)
            return false;
    }
    if (!ks_str_set(old, val, vlen)) {
        if (old->v.str.data == NULL)
            ks_remove(sh, old);
        return false;
    }
    ks_set_expire(sh, old, expire_ms);
    return true;
}

ks_entry *key_for_write(cmd_ctx *c, key_ref *k, ks_type t)
{
    if (k->e != NULL) {
        if (k->e->type != t) {
            reply_wrongtype(c);
            return NULL;
        }
        return k->e;
    }
    k->e = ks_add(k->sh, k->h, k->key, k->len, t);
    if (k->e == NULL)
        reply_oom(c);
    return k->e;
}

bool key_check_type(cmd_ctx *c, const key_ref *k, ks_type t)
{
    if (k->e != NULL && k->e->type != t) {
        reply_wrongtype(c);
        return false;
    }
    return true;
}

void key_drop_if_empty(key_ref *k)
{
    ks_entry *e = k->e;
    if (e == NULL)
        return;
    if ((e->type == KS_LIST && e->v.list.len == 0) ||
        ((e->type == KS_HASH || e->type == KS_SET) && e->v.dict.count == 0)) {
        ks_remove(k->sh, e);
        k->e = NULL;
    }
}
