/* weft-redis — generic key commands. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "glob.h"
#include "number.h"

void cmd_del(cmd_ctx *c)
{
    int64_t n = 0;
    for (int i = 1; i < c->argc; i++) {
        key_ref k;
        key_lock(c, i, &k);
        if (k.e != NULL) {
            ks_remove(k.sh, k.e);
            n++;
        }
        key_unlock(&k);
    }
    reply_int(c->out, n);
}

void cmd_exists(cmd_ctx *c)
{
    int64_t n = 0;
    for (int i = 1; i < c->argc; i++) {
        key_ref k;
        key_lock(c, i, &k);
        n += k.e != NULL;
        key_unlock(&k);
    }
    reply_int(c->out, n);
}

#define EXP_NX (1 << 0)
#define EXP_XX (1 << 1)
#define EXP_GT (1 << 2)
#define EXP_LT (1 << 3)

/* Redis's expireGenericCommand: basetime is now for EXPIRE/PEXPIRE and 0 for the *AT
 * forms; seconds says whether the argument is in seconds. */
static void expire_generic(cmd_ctx *c, bool relative, bool seconds)
{
    int64_t when, current;
    int flags = 0;
    key_ref k;

    if (!arg_ll(c, 2, &when))
        return;
    for (int j = 3; j < c->argc; j++) {
        if (arg_is(c, j, "nx")) {
            flags |= EXP_NX;
        } else if (arg_is(c, j, "xx")) {
            flags |= EXP_XX;
        } else if (arg_is(c, j, "gt")) {
            flags |= EXP_GT;
        } else if (arg_is(c, j, "lt")) {
            flags |= EXP_LT;
        } else {
            char q[QUOTE_BUF];
            reply_errorf(c->out, "ERR Unsupported option %s", arg_quote(c, j, q));
            return;
        }
    }
    if ((flags & EXP_NX) && (flags & (EXP_XX | EXP_GT | EXP_LT))) {
        reply_error(c->out, "ERR NX and XX, GT or LT options at the same time are not compatible");
        return;
    }
    if ((flags & EXP_GT) && (flags & EXP_LT)) {
        reply_error(c->out, "ERR GT and LT options at the same time are not compatible");
        return;
    }
    if (seconds) {
        if (when > INT64_MAX / 1000 || when < INT64_MIN / 1000)
            goto invalid;
        when *= 1000;
    }
    if (relative) {
        if (when > INT64_MAX - cmd_now(c))
            goto invalid;
        when += cmd_now(c);
    }
    key_lock(c, 1, &k);
    if (k.e == NULL) {
        reply_int(c->out, 0);
        goto out;
    }
    current = k.e->expire_ms != 0 ? k.e->expire_ms : -1;
    if (((flags & EXP_NX) && current != -1) || ((flags & EXP_XX) && current == -1) ||
        ((flags & EXP_GT) && (when <= current || current == -1)) ||
        ((flags & EXP_LT) && current != -1 && when >= current)) {
        reply_int(c->out, 0);
        goto out;
    }
    if (when <= cmd_now(c))
        ks_remove(k.sh, k.e); /* Already in the past: the key goes now, as in Redis. */
    else
        ks_set_expire(k.sh, k.e, when);
    reply_int(c->out, 1);
out:
    key_unlock(&k);
    return;
invalid:
    reply_errorf(c->out, "ERR invalid expire time in '%s' command", c->cmd->name);
}

void cmd_expire(cmd_ctx *c)
{
    expire_generic(c, true, true);
}

void cmd_pexpire(cmd_ctx *c)
{
    expire_generic(c, true, false);
}

void cmd_expireat(cmd_ctx *c)
{
    expire_generic(c, false, true);
}

void cmd_pexpireat(cmd_ctx *c)
{
    expire_generic(c, false, false);
}

static void ttl_generic(cmd_ctx *c, bool ms)
{
    key_ref k;
    key_lock(c, 1, &k);
    if (k.e == NULL) {
        reply_int(c->out, -2);
    } else if (k.e->expire_ms == 0) {
        reply_int(c->out, -1);
    } else {
        int64_t ttl = k.e->expire_ms - cmd_now(c);
        if (ttl < 0)
            ttl = 0;
        reply_int(c->out, ms ? ttl : (ttl + 500) / 1000);
    }
    key_unlock(&k);
}

void cmd_ttl(cmd_ctx *c)
{
    ttl_generic(c, false);
}

void cmd_pttl(cmd_ctx *c)
{
    ttl_generic(c, true);
}

void cmd_persist(cmd_ctx *c)
{
    key_ref k;
    key_lock(c, 1, &k);
    if (k.e == NULL || k.e->expire_ms == 0) {
        reply_int(c->out, 0);
    } else {
        ks_set_expire(k.sh, k.e, 0);
        reply_int(c->out, 1);
    }
    key_unlock(&k);
}

static const char *type_name(const ks_entry *e)
{
    if (e == NULL)
        return "none";
    switch ((ks_type)e->type) {
    case KS_STRING:
        return "string";
    case KS_LIST:
        return "list";
    case KS_HASH:
        return "hash";
    case KS_SET:
        return "set";
    }
    return "none";
}

void cmd_type(cmd_ctx *c)
{
    key_ref k;
    key_lock(c, 1, &k);
    reply_simple(c->out, type_name(k.e));
    key_unlock(&k);
}

/* Collects matching keys into a side buffer while shards are locked; the array header is
 * written once the count is known. */
typedef struct key_collector {
    reply_buf buf;
    int64_t count;
    const uint8_t *pat;
    size_t plen;
    const char *type; /* SCAN TYPE, or NULL */
} key_collector;

static void collect_key(void *arg, const ks_entry *e)
{
    key_collector *kc = arg;
    if (kc->type != NULL && strcmp(kc->type, type_name(e)) != 0)
        return;
    if (kc->pat != NULL && !(kc->plen == 1 && kc->pat[0] == '*') &&
        !glob_match(kc->pat, kc->plen, e->key, e->klen, false))
        return;
    reply_bulk(&kc->buf, e->key, e->klen);
    kc->count++;
}

static void reply_collected(cmd_ctx *c, key_collector *kc)
{
    if (kc->buf.oom) {
        reply_oom(c);
    } else {
        reply_array(c->out, kc->count);
        reply_raw(c->out, kc->buf.data, kc->buf.len);
    }
    reply_free(&kc->buf);
}

void cmd_keys(cmd_ctx *c)
{
    key_collector kc = {.pat = c->argv[1], .plen = c->lens[1]};
    uint64_t cursor = 0;

    reply_init(&kc.buf);
    /* KEYS is O(N) in Redis too; shards are locked one at a time, so it is not a
     * snapshot across shards, but every key present throughout is listed once. */
    do
        cursor = ks_scan(c->ks, cursor, SIZE_MAX, cmd_now(c), collect_key, &kc);
    while (cursor != 0);
    reply_collected(c, &kc);
}

void cmd_scan(cmd_ctx *c)
{
    key_collector kc = {0};
    uint64_t cursor = 0;
    int64_t count = 10;
    char *end;
    char num[32];

    if (c->lens[1] == 0 || c->lens[1] >= sizeof(num) || c->argv[1][0] == '-') {
        reply_error(c->out, "ERR invalid cursor");
        return;
    }
    memcpy(num, c->argv[1], c->lens[1]);
    num[c->lens[1]] = '\0';
    errno = 0;
    cursor = strtoull(num, &end, 10);
    if (*end != '\0' || errno == ERANGE) {
        reply_error(c->out, "ERR invalid cursor");
        return;
    }
    for (int j = 2; j < c->argc; j++) {
        bool more = j + 1 < c->argc;
        if (more && arg_is(c, j, "count")) {
            if (!arg_ll(c, j + 1, &count))
                return;
            if (count < 1) {
                reply_syntax_error(c);
                return;
            }
            j++;
        } else if (more && arg_is(c, j, "match")) {
            kc.pat = c->argv[j + 1];
            kc.plen = c->lens[j + 1];
            j++;
        } else if (more && arg_is(c, j, "type")) {
            static const char *const types[] = {"string", "list", "hash", "set"};
            kc.type = "unknown-type";
            for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++)
                if (arg_is(c, j + 1, types[t]))
                    kc.type = types[t];
            j++;
        } else {
            reply_syntax_error(c);
            return;
        }
    }
    reply_init(&kc.buf);
    cursor = ks_scan(c->ks, cursor, (size_t)count, cmd_now(c), collect_key, &kc);
    reply_array(c->out, 2);
    {
        char cur[NUM_LL_BUF];
        size_t n = (size_t)snprintf(cur, sizeof(cur), "%llu", (unsigned long long)cursor);
        reply_bulk(c->out, cur, n);
    }
    reply_collected(c, &kc);
}

void cmd_rename(cmd_ctx *c)
{
    uint64_t mask = keys_mask(c, 1, 2, 1), hs, hd;
    ks_entry *src, *dst, *moved;
    ks_shard *ssh, *dsh;

    ks_lock_mask(c->ks, mask);
    src = key_find_locked(c, 1, &hs);
    if (src == NULL) {
        reply_error(c->out, "ERR no such key");
        goto out;
    }
    if (c->lens[1] == c->lens[2] && memcmp(c->argv[1], c->argv[2], c->lens[1]) == 0) {
        reply_ok(c->out);
        goto out;
    }
    dst = key_find_locked(c, 2, &hd);
    ssh = ks_shard_of(c->ks, hs);
    dsh = ks_shard_of(c->ks, hd);
    /* The key bytes live in the entry, so the value moves into a new entry. */
    moved = ks_add(dsh, hd, c->argv[2], c->lens[2], (ks_type)src->type);
    if (moved == NULL) {
        reply_oom(c);
        goto out;
    }
    if (dst != NULL)
        ks_remove(dsh, dst);
    moved->v = src->v;
    ks_set_expire(dsh, moved, src->expire_ms);
    src->type = KS_STRING;
    memset(&src->v, 0, sizeof(src->v));
    ks_remove(ssh, src);
    reply_ok(c->out);
out:
    ks_unlock_mask(c->ks, mask);
}

void cmd_dbsize(cmd_ctx *c)
{
    reply_int(c->out, (int64_t)ks_size(c->ks, NULL));
}

void cmd_flushdb(cmd_ctx *c)
{
    if (c->argc > 2 || (c->argc == 2 && !arg_is(c, 1, "async") && !arg_is(c, 1, "sync"))) {
        reply_syntax_error(c);
        return;
    }
    ks_flush(c->ks);
    reply_ok(c->out);
}
