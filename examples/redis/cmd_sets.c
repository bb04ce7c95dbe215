/* weft-redis — set commands. */
#include "cmd.h"

void cmd_sadd(cmd_ctx *c)
{
    key_ref k;
    int64_t added = 0;
    key_lock(c, 1, &k);
    if (key_for_write(c, &k, KS_SET) == NULL)
        goto out;
    for (int i = 2; i < c->argc; i++) {
        int rc = ks_dict_set(&k.e->v.dict, c->argv[i], c->lens[i], NULL, 0);
        if (rc < 0) {
            key_drop_if_empty(&k);
            reply_oom(c);
            goto out;
        }
        added += rc;
    }
    reply_int(c->out, added);
out:
    key_unlock(&k);
}

void cmd_srem(cmd_ctx *c)
{
    key_ref k;
    int64_t n = 0;
    key_lock(c, 1, &k);
    if (key_check_type(c, &k, KS_SET)) {
        for (int i = 2; k.e != NULL && i < c->argc; i++)
            n += ks_dict_del(&k.e->v.dict, c->argv[i], c->lens[i]);
        key_drop_if_empty(&k);
        reply_int(c->out, n);
    }
    key_unlock(&k);
}

void cmd_smembers(cmd_ctx *c)
{
    key_ref k;
    key_lock(c, 1, &k);
    if (key_check_type(c, &k, KS_SET)) {
        if (k.e == NULL) {
            reply_array(c->out, 0);
        } else {
            const ks_dict *d = &k.e->v.dict;
            reply_array(c->out, (int64_t)d->count);
            for (size_t i = 0; d->buckets != NULL && i <= d->mask; i++)
                for (const ks_dnode *n = d->buckets[i]; n != NULL; n = n->next)
                    reply_bulk(c->out, n->field, n->flen);
        }
    }
    key_unlock(&k);
}

void cmd_sismember(cmd_ctx *c)
{
    key_ref k;
    key_lock(c, 1, &k);
    if (key_check_type(c, &k, KS_SET))
        reply_int(c->out,
                  k.e != NULL && ks_dict_find(&k.e->v.dict, c->argv[2], c->lens[2]) != NULL);
    key_unlock(&k);
}

void cmd_scard(cmd_ctx *c)
{
    key_ref k;
    key_lock(c, 1, &k);
    if (key_check_type(c, &k, KS_SET))
        reply_int(c->out, k.e ? (int64_t)k.e->v.dict.count : 0);
    key_unlock(&k);
}
