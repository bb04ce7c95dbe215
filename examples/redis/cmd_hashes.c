/* weft-redis — hash commands. */
#include <string.h>

#include "cmd.h"
#include "number.h"

void cmd_hset(cmd_ctx *c)
{
    key_ref k;
    int64_t added = 0;
    bool hmset = c->cmd->name[1] == 'm';

    if (c->argc % 2 == 1) {
        reply_arity(c, c->cmd->name);
        return;
    }
    key_lock(c, 1, &k);
    if (key_for_write(c, &k, KS_HASH) == NULL)
        goto out;
    for (int i = 2; i < c->argc; i += 2) {
        int rc = ks_dict_set(&k.e->v.dict, c->argv[i], c->lens[i], c->argv[i + 1], c->lens[i + 1]);
        if (rc < 0) {
            key_drop_if_empty(&k);
            reply_oom(c);
            goto out;
        }
        added += rc;
    }
    if (hmset)
        reply_ok(c->out);
    else
        reply_int(c->out, added);
out:
    key_unlock(&k);
}

void cmd_hget(cmd_ctx *c)
{
    key_ref k;
    key_lock(c, 1, &k);
    if (key_check_type(c, &k, KS_HASH)) {
        ks_dnode *n = k.e ? ks_dict_find(&k.e->v.dict, c->argv[2], c->lens[2]) : NULL;
        if (n == NULL)
            reply_null(c->out);
        else
            reply_bulk(c->out, n->val->data, n->val->len);
    }
    key_unlock(&k);
}

void cmd_hdel(cmd_ctx *c)
{
    key_ref k;
    int64_t n = 0;
    key_lock(c, 1, &k);
    if (key_check_type(c, &k, KS_HASH)) {
        for (int i = 2; k.e != NULL && i < c->argc; i++)
            n += ks_dict_del(&k.e->v.dict, c->argv[i], c->lens[i]);
        key_drop_if_empty(&k);
        reply_int(c->out, n);
    }
    key_unlock(&k);
}

void cmd_hgetall(cmd_ctx *c)
{
    key_ref k;
    key_lock(c, 1, &k);
    if (key_check_type(c, &k, KS_HASH)) {
        if (k.e == NULL) {
            reply_array(c->out, 0);
        } else {
            const ks_dict *d = &k.e->v.dict;
            reply_array(c->out, (int64_t)d->count * 2);
            for (size_t i = 0; d->buckets != NULL && i <= d->mask; i++) {
                for (const ks_dnode *n = d->buckets[i]; n != NULL; n = n->next) {
                    reply_bulk(c->out, n->field, n->flen);
                    reply_bulk(c->out, n->val->data, n->val->len);
                }
            }
        }
    }
    key_unlock(&k);
}

void cmd_hlen(cmd_ctx *c)
{
    key_ref k;
    key_lock(c, 1, &k);
    if (key_check_type(c, &k, KS_HASH))
        reply_int(c->out, k.e ? (int64_t)k.e->v.dict.count : 0);
    key_unlock(&k);
}

void cmd_hexists(cmd_ctx *c)
{
    key_ref k;
    key_lock(c, 1, &k);
    if (key_check_type(c, &k, KS_HASH))
        reply_int(c->out,
                  k.e != NULL && ks_dict_find(&k.e->v.dict, c->argv[2], c->lens[2]) != NULL);
    key_unlock(&k);
}

void cmd_hincrby(cmd_ctx *c)
{
    key_ref k;
    int64_t incr, old = 0, v;
    ks_dnode *n;
    char buf[NUM_LL_BUF];

    if (!arg_ll(c, 3, &incr))
        return;
    key_lock(c, 1, &k);
    if (key_for_write(c, &k, KS_HASH) == NULL)
        goto out;
    n = ks_dict_find(&k.e->v.dict, c->argv[2], c->lens[2]);
    if (n != NULL && !num_parse_ll(n->val->data, n->val->len, &old)) {
        reply_error(c->out, "ERR hash value is not an integer");
        goto out;
    }
    if ((incr < 0 && old < 0 && incr < INT64_MIN - old) ||
        (incr > 0 && old > 0 && incr > INT64_MAX - old)) {
        reply_error(c->out, "ERR increment or decrement would overflow");
        goto out;
    }
    v = old + incr;
    if (ks_dict_set(&k.e->v.dict, c->argv[2], c->lens[2], buf, num_format_ll(buf, v)) < 0)
        reply_oom(c);
    else
        reply_int(c->out, v);
out:
    key_drop_if_empty(&k);
    key_unlock(&k);
}

void cmd_hmget(cmd_ctx *c)
{
    key_ref k;
    key_lock(c, 1, &k);
    if (key_check_type(c, &k, KS_HASH)) {
        reply_array(c->out, c->argc - 2);
        for (int i = 2; i < c->argc; i++) {
            ks_dnode *n = k.e ? ks_dict_find(&k.e->v.dict, c->argv[i], c->lens[i]) : NULL;
            if (n == NULL)
                reply_null(c->out);
            else
                reply_bulk(c->out, n->val->data, n->val->len);
        }
    }
    key_unlock(&k);
}
