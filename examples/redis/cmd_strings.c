/* weft-redis — string commands. */
#include <math.h>
#include <string.h>

#include "cmd.h"
#include "number.h"

void cmd_get(cmd_ctx *c)
{
    key_ref k;
    key_lock(c, 1, &k);
    if (k.e == NULL)
        reply_null(c->out);
    else if (k.e->type != KS_STRING)
        reply_wrongtype(c);
    else
        reply_bulk(c->out, k.e->v.str.data, k.e->v.str.len);
    key_unlock(&k);
}

#define SET_NX      (1 << 0)
#define SET_XX      (1 << 1)
#define SET_GET     (1 << 2)
#define SET_KEEPTTL (1 << 3)
#define SET_EX      (1 << 4)
#define SET_PX      (1 << 5)
#define SET_EXAT    (1 << 6)
#define SET_PXAT    (1 << 7)
#define SET_EXPIRES (SET_EX | SET_PX | SET_EXAT | SET_PXAT)

/* Turns an expire argument into an absolute unix time in ms, as Redis's getExpireMillis
 * does. Replies and returns false on a bad value. */
static bool expire_at(cmd_ctx *c, int i, int unit_flag, const char *cmdname, int64_t *when)
{
    int64_t v;
    if (!arg_ll(c, i, &v))
        return false;
    if (v <= 0 || ((unit_flag & (SET_EX | SET_EXAT)) && v > INT64_MAX / 1000))
        goto invalid;
    if (unit_flag & (SET_EX | SET_EXAT))
        v *= 1000;
    if (unit_flag & (SET_EX | SET_PX)) {
        if (v > INT64_MAX - cmd_now(c))
            goto invalid;
        v += cmd_now(c);
    }
    *when = v;
    return true;
invalid:
    reply_errorf(c->out, "ERR invalid expire time in '%s' command", cmdname);
    return false;
}

/* The shared core of SET, SETNX, SETEX and PSETEX. */
static void set_generic(cmd_ctx *c, int flags, int64_t when, bool reply_int_result)
{
    key_ref k;
    int64_t expire;

    key_lock(c, 1, &k);
    if (flags & SET_GET) {
        if (k.e != NULL && k.e->type != KS_STRING) {
            reply_wrongtype(c);
            goto out;
        }
        if (k.e == NULL)
            reply_null(c->out);
        else
            reply_bulk(c->out, k.e->v.str.data, k.e->v.str.len);
    }
    if (((flags & SET_NX) && k.e != NULL) || ((flags & SET_XX) && k.e == NULL)) {
        if (reply_int_result)
            reply_int(c->out, 0);
        else if (!(flags & SET_GET))
            reply_null(c->out);
        goto out;
    }
    expire = (flags & SET_KEEPTTL) && k.e != NULL ? k.e->expire_ms : when;
    if (!key_set_string(c, k.sh, k.h, k.key, k.len, k.e, c->argv[2], c->lens[2], expire)) {
        if (!(flags & SET_GET))
            reply_oom(c);
        goto out;
    }
    if (reply_int_result)
        reply_int(c->out, 1);
    else if (!(flags & SET_GET))
        reply_ok(c->out);
out:
    key_unlock(&k);
}

void cmd_set(cmd_ctx *c)
{
    int flags = 0, expire_arg = 0, unit = 0;
    int64_t when = 0;

    for (int j = 3; j < c->argc; j++) {
        bool has_next = j + 1 < c->argc;
        if (arg_is(c, j, "nx") && !(flags & SET_XX)) {
            flags |= SET_NX;
        } else if (arg_is(c, j, "xx") && !(flags & SET_NX)) {
            flags |= SET_XX;
        } else if (arg_is(c, j, "get")) {
            flags |= SET_GET;
        } else if (arg_is(c, j, "keepttl") && !(flags & SET_EXPIRES)) {
            flags |= SET_KEEPTTL;
        } else if (has_next && !(flags & (SET_KEEPTTL | SET_EXPIRES)) &&
                   (arg_is(c, j, "ex") || arg_is(c, j, "px") || arg_is(c, j, "exat") ||
                    arg_is(c, j, "pxat"))) {
            unit = arg_is(c, j, "ex")     ? SET_EX
                   : arg_is(c, j, "px")   ? SET_PX
                   : arg_is(c, j, "exat") ? SET_EXAT
                                          : SET_PXAT;
            flags |= unit;
            expire_arg = ++j;
        } else {
            reply_syntax_error(c);
            return;
        }
    }
    if (expire_arg != 0 && !expire_at(c, expire_arg, unit, "set", &when))
        return;
    set_generic(c, flags, when, false);
}

void cmd_setnx(cmd_ctx *c)
{
    set_generic(c, SET_NX, 0, true);
}

static void setex_generic(cmd_ctx *c, int unit, const char *name)
{
    int64_t when;
    const uint8_t *argv[3] = {c->argv[0], c->argv[1], c->argv[3]};
    size_t lens[3] = {c->lens[0], c->lens[1], c->lens[3]};
    cmd_ctx shifted = *c;

    if (!expire_at(c, 2, unit, name, &when))
        return;
    /* set_generic reads the value from argument 2. */
    shifted.argv = argv;
    shifted.lens = lens;
    shifted.argc = 3;
    set_generic(&shifted, 0, when, false);
}

void cmd_setex(cmd_ctx *c)
{
    setex_generic(c, SET_EX, "setex");
}

void cmd_psetex(cmd_ctx *c)
{
    setex_generic(c, SET_PX, "psetex");
}

void cmd_getset(cmd_ctx *c)
{
    set_generic(c, SET_GET, 0, false);
}

void cmd_getdel(cmd_ctx *c)
{
    key_ref k;
    key_lock(c, 1, &k);
    if (k.e == NULL) {
        reply_null(c->out);
    } else if (k.e->type != KS_STRING) {
        reply_wrongtype(c);
    } else {
        reply_bulk(c->out, k.e->v.str.data, k.e->v.str.len);
        ks_remove(k.sh, k.e);
    }
    key_unlock(&k);
}

void cmd_mget(cmd_ctx *c)
{
    uint64_t mask = keys_mask(c, 1, c->argc - 1, 1);

    /* Every shard at once, so MGET sees all of an MSET or none of it. */
    ks_lock_mask(c->ks, mask);
    reply_array(c->out, c->argc - 1);
    for (int i = 1; i < c->argc; i++) {
        ks_entry *e = key_find_locked(c, i, NULL);
        if (e == NULL || e->type != KS_STRING)
            reply_null(c->out);
        else
            reply_bulk(c->out, e->v.str.data, e->v.str.len);
    }
    ks_unlock_mask(c->ks, mask);
}

static void mset_generic(cmd_ctx *c, bool nx)
{
    uint64_t mask;
    bool oom = false;

    if (c->argc % 2 == 0) {
        reply_arity(c, nx ? "msetnx" : "mset");
        return;
    }
    mask = keys_mask(c, 1, c->argc - 2, 2);
    ks_lock_mask(c->ks, mask);
    if (nx) {
        for (int i = 1; i < c->argc; i += 2) {
            if (key_find_locked(c, i, NULL) != NULL) {
                ks_unlock_mask(c->ks, mask);
                reply_int(c->out, 0);
                return;
            }
        }
    }
    for (int i = 1; i < c->argc; i += 2) {
        uint64_t h;
        ks_entry *e = key_find_locked(c, i, &h);
        if (!key_set_string(c, ks_shard_of(c->ks, h), h, c->argv[i], c->lens[i], e, c->argv[i + 1],
                            c->lens[i + 1], 0))
            oom = true;
    }
    ks_unlock_mask(c->ks, mask);
    if (oom)
        reply_oom(c);
    else if (nx)
        reply_int(c->out, 1);
    else
        reply_ok(c->out);
}

void cmd_mset(cmd_ctx *c)
{
    mset_generic(c, false);
}

void cmd_msetnx(cmd_ctx *c)
{
    mset_generic(c, true);
}

/* Stores a number as a string value, keeping the key's TTL. */
static bool store_number(key_ref *k, const char *buf, size_t len)
{
    if (k->e == NULL) {
        k->e = ks_add(k->sh, k->h, k->key, k->len, KS_STRING);
        if (k->e == NULL)
            return false;
    }
    if (!ks_str_set(k->e, buf, len)) {
        if (k->e->v.str.data == NULL) {
            ks_remove(k->sh, k->e);
            k->e = NULL;
        }
        return false;
    }
    return true;
}

static void incr_generic(cmd_ctx *c, int64_t delta)
{
    key_ref k;
    int64_t old = 0, v;
    char buf[NUM_LL_BUF];

    key_lock(c, 1, &k);
    if (k.e != NULL && k.e->type != KS_STRING) {
        reply_wrongtype(c);
        goto out;
    }
    if (k.e != NULL && !num_parse_ll(k.e->v.str.data, k.e->v.str.len, &old)) {
        reply_not_int(c);
        goto out;
    }
    if ((delta < 0 && old < 0 && delta < INT64_MIN - old) ||
        (delta > 0 && old > 0 && delta > INT64_MAX - old)) {
        reply_error(c->out, "ERR increment or decrement would overflow");
        goto out;
    }
    v = old + delta;
    if (!store_number(&k, buf, num_format_ll(buf, v))) {
        reply_oom(c);
        goto out;
    }
    reply_int(c->out, v);
out:
    key_unlock(&k);
}

void cmd_incr(cmd_ctx *c)
{
    incr_generic(c, 1);
}

void cmd_decr(cmd_ctx *c)
{
    incr_generic(c, -1);
}

void cmd_incrby(cmd_ctx *c)
{
    int64_t d;
    if (arg_ll(c, 2, &d))
        incr_generic(c, d);
}

void cmd_decrby(cmd_ctx *c)
{
    int64_t d;
    if (!arg_ll(c, 2, &d))
        return;
    if (d == INT64_MIN) {
        reply_error(c->out, "ERR decrement would overflow");
        return;
    }
    incr_generic(c, -d);
}

void cmd_incrbyfloat(cmd_ctx *c)
{
    key_ref k;
    long double old = 0, incr, v;
    char buf[5 * 1024 + 64];
    size_t n;

    if (!num_parse_ld(c->argv[2], c->lens[2], &incr)) {
        reply_error(c->out, "ERR value is not a valid float");
        return;
    }
    key_lock(c, 1, &k);
    if (k.e != NULL && k.e->type != KS_STRING) {
        reply_wrongtype(c);
        goto out;
    }
    if (k.e != NULL && !num_parse_ld(k.e->v.str.data, k.e->v.str.len, &old)) {
        reply_error(c->out, "ERR value is not a valid float");
        goto out;
    }
    v = old + incr;
    if (isnan(v) || isinf(v)) {
        reply_error(c->out, "ERR increment would produce NaN or Infinity");
        goto out;
    }
    n = num_format_ld(buf, sizeof(buf), v);
    if (n == 0 || !store_number(&k, buf, n)) {
        reply_oom(c);
        goto out;
    }
    reply_bulk(c->out, buf, n);
out:
    key_unlock(&k);
}

static bool check_string_length(cmd_ctx *c, uint64_t len)
{
    if (len > c->srv->cfg.max_bulk) {
        reply_error(c->out, "ERR string exceeds maximum allowed size (proto-max-bulk-len)");
        return false;
    }
    return true;
}

void cmd_append(cmd_ctx *c)
{
    key_ref k;
    size_t add = c->lens[2];

    key_lock(c, 1, &k);
    if (k.e == NULL) {
        if (!key_set_string(c, k.sh, k.h, k.key, k.len, NULL, c->argv[2], add, 0))
            reply_oom(c);
        else
            reply_int(c->out, (int64_t)add);
    } else if (k.e->type != KS_STRING) {
        reply_wrongtype(c);
    } else if (check_string_length(c, (uint64_t)k.e->v.str.len + add)) {
        if (!ks_str_reserve(k.e, k.e->v.str.len + add)) {
            reply_oom(c);
        } else {
            if (add > 0)
                memcpy(k.e->v.str.data + k.e->v.str.len, c->argv[2], add);
            k.e->v.str.len += add;
            reply_int(c->out, (int64_t)k.e->v.str.len);
        }
    }
    key_unlock(&k);
}

void cmd_strlen(cmd_ctx *c)
{
    key_ref k;
    key_lock(c, 1, &k);
    if (k.e == NULL)
        reply_int(c->out, 0);
    else if (k.e->type != KS_STRING)
        reply_wrongtype(c);
    else
        reply_int(c->out, (int64_t)k.e->v.str.len);
    key_unlock(&k);
}

void cmd_getrange(cmd_ctx *c)
{
    key_ref k;
    int64_t start, end, len;

    if (!arg_ll(c, 2, &start) || !arg_ll(c, 3, &end))
        return;
    key_lock(c, 1, &k);
    if (k.e == NULL) {
        reply_bulk(c->out, "", 0);
        goto out;
    }
    if (k.e->type != KS_STRING) {
        reply_wrongtype(c);
        goto out;
    }
    /* Redis's getrangeCommand, step by step. */
    len = (int64_t)k.e->v.str.len;
    if (start < 0 && end < 0 && start > end) {
        reply_bulk(c->out, "", 0);
        goto out;
    }
    if (start < 0)
        start = len + start;
    if (end < 0)
        end = len + end;
    if (start < 0)
        start = 0;
    if (end < 0)
        end = 0;
    if (end >= len)
        end = len - 1;
    if (start > end || len == 0)
        reply_bulk(c->out, "", 0);
    else
        reply_bulk(c->out, k.e->v.str.data + start, (size_t)(end - start + 1));
out:
    key_unlock(&k);
}

void cmd_setrange(cmd_ctx *c)
{
    key_ref k;
    int64_t off;
    size_t vlen = c->lens[3], olen;

    if (!arg_ll(c, 2, &off))
        return;
    if (off < 0) {
        reply_error(c->out, "ERR offset is out of range");
        return;
    }
    key_lock(c, 1, &k);
    if (k.e != NULL && k.e->type != KS_STRING) {
        reply_wrongtype(c);
        goto out;
    }
    olen = k.e != NULL ? k.e->v.str.len : 0;
    if (vlen == 0) {
        reply_int(c->out, (int64_t)olen);
        goto out;
    }
    if (!check_string_length(c, (uint64_t)off + vlen))
        goto out;
    if (k.e == NULL) {
        k.e = ks_add(k.sh, k.h, k.key, k.len, KS_STRING);
        if (k.e == NULL) {
            reply_oom(c);
            goto out;
        }
    }
    if ((size_t)off + vlen > olen) {
        if (!ks_str_reserve(k.e, (size_t)off + vlen)) {
            if (olen == 0)
                ks_remove(k.sh, k.e);
            reply_oom(c);
            goto out;
        }
        if ((size_t)off > olen)
            memset(k.e->v.str.data + olen, 0, (size_t)off - olen);
        k.e->v.str.len = (size_t)off + vlen;
    }
    memcpy(k.e->v.str.data + off, c->argv[3], vlen);
    reply_int(c->out, (int64_t)k.e->v.str.len);
out:
    key_unlock(&k);
}
