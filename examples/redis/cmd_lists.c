/* weft-redis — list commands. */
#include <stdlib.h>

#include "cmd.h"
#include "number.h"

static void push_generic(cmd_ctx *c, bool left)
{
    key_ref k;
    key_lock(c, 1, &k);
    if (key_for_write(c, &k, KS_LIST) == NULL)
        goto out;
    for (int i = 2; i < c->argc; i++) {
        ks_blob *b = ks_blob_new(c->argv[i], c->lens[i]);
        if (b == NULL || !ks_list_push(&k.e->v.list, b, left)) {
            free(b);
            key_drop_if_empty(&k);
            reply_oom(c);
            goto out;
        }
    }
    reply_int(c->out, (int64_t)k.e->v.list.len);
out:
    key_unlock(&k);
}

void cmd_lpush(cmd_ctx *c)
{
    push_generic(c, true);
}

void cmd_rpush(cmd_ctx *c)
{
    push_generic(c, false);
}

static void pop_generic(cmd_ctx *c, bool left)
{
    key_ref k;
    int64_t count = 1;
    bool has_count = c->argc == 3;

    if (c->argc > 3) {
        reply_arity(c, left ? "lpop" : "rpop");
        return;
    }
    if (has_count && (!num_parse_ll(c->argv[2], c->lens[2], &count) || count < 0)) {
        reply_error(c->out, "ERR value is out of range, must be positive");
        return;
    }
    key_lock(c, 1, &k);
    if (k.e == NULL) {
        if (has_count)
            reply_null_array(c->out);
        else
            reply_null(c->out);
        goto out;
    }
    if (!key_check_type(c, &k, KS_LIST))
        goto out;
    if (!has_count) {
        ks_blob *b = ks_list_pop(&k.e->v.list, left);
        reply_bulk(c->out, b->data, b->len);
        free(b);
    } else {
        size_t n = (size_t)count < k.e->v.list.len ? (size_t)count : k.e->v.list.len;
        reply_array(c->out, (int64_t)n);
        for (size_t i = 0; i < n; i++) {
            ks_blob *b = ks_list_pop(&k.e->v.list, left);
            reply_bulk(c->out, b->data, b->len);
            free(b);
        }
    }
    key_drop_if_empty(&k);
out:
    key_unlock(&k);
}

void cmd_lpop(cmd_ctx *c)
{
    pop_generic(c, true);
}

void cmd_rpop(cmd_ctx *c)
{
    pop_generic(c, false);
}

void cmd_llen(cmd_ctx *c)
{
    key_ref k;
    key_lock(c, 1, &k);
    if (key_check_type(c, &k, KS_LIST))
        reply_int(c->out, k.e != NULL ? (int64_t)k.e->v.list.len : 0);
    key_unlock(&k);
}

void cmd_lrange(cmd_ctx *c)
{
    key_ref k;
    int64_t start, end, len;

    if (!arg_ll(c, 2, &start) || !arg_ll(c, 3, &end))
        return;
    key_lock(c, 1, &k);
    if (!key_check_type(c, &k, KS_LIST))
        goto out;
    len = k.e != NULL ? (int64_t)k.e->v.list.len : 0;
    if (start < 0)
        start = len + start;
    if (end < 0)
        end = len + end;
    if (start < 0)
        start = 0;
    if (start > end || start >= len) {
        reply_array(c->out, 0);
        goto out;
    }
    if (end >= len)
        end = len - 1;
    reply_array(c->out, end - start + 1);
    for (int64_t i = start; i <= end; i++) {
        ks_blob *b = ks_list_at(&k.e->v.list, (size_t)i);
        reply_bulk(c->out, b->data, b->len);
    }
out:
    key_unlock(&k);
}

void cmd_lindex(cmd_ctx *c)
{
    key_ref k;
    int64_t idx, len;

    if (!arg_ll(c, 2, &idx))
        return;
    key_lock(c, 1, &k);
    if (!key_check_type(c, &k, KS_LIST))
        goto out;
    len = k.e != NULL ? (int64_t)k.e->v.list.len : 0;
    if (idx < 0)
        idx = len + idx;
    if (idx < 0 || idx >= len) {
        reply_null(c->out);
    } else {
        ks_blob *b = ks_list_at(&k.e->v.list, (size_t)idx);
        reply_bulk(c->out, b->data, b->len);
    }
out:
    key_unlock(&k);
}
