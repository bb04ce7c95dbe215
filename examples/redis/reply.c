/* weft-redis — RESP2 reply encoding. */
#include "reply.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "number.h"

void reply_init(reply_buf *rb)
{
    memset(rb, 0, sizeof(*rb));
}

void reply_free(reply_buf *rb)
{
    free(rb->data);
    memset(rb, 0, sizeof(*rb));
}

void reply_reset(reply_buf *rb, size_t keep)
{
    rb->len = 0;
    rb->oom = false;
    if (rb->cap > keep) {
        free(rb->data);
        rb->data = NULL;
        rb->cap = 0;
    }
}

char *reply_reserve(reply_buf *rb, size_t n)
{
    if (rb->oom)
        return NULL;
    if (rb->cap - rb->len < n) {
        size_t cap = rb->cap ? rb->cap : 4096;
        char *d;
        while (cap - rb->len < n) {
            if (cap > SIZE_MAX / 2) {
                rb->oom = true;
                return NULL;
            }
            cap *= 2;
        }
        d = realloc(rb->data, cap);
        if (d == NULL) {
            rb->oom = true;
            return NULL;
        }
        rb->data = d;
        rb->cap = cap;
    }
    return rb->data + rb->len;
}

void reply_raw(reply_buf *rb, const void *data, size_t len)
{
    char *p;
    if (len == 0)
        return;
    p = reply_reserve(rb, len);
    if (p == NULL)
        return;
    memcpy(p, data, len);
    rb->len += len;
}

/* Writes prefix, a decimal number and CRLF: the head of an integer, bulk or array. */
static void reply_prefixed_ll(reply_buf *rb, char prefix, int64_t v)
{
    char *p = reply_reserve(rb, NUM_LL_BUF + 3);
    size_t n;
    if (p == NULL)
        return;
    p[0] = prefix;
    n = num_format_ll(p + 1, v);
    p[n + 1] = '\r';
    p[n + 2] = '\n';
    rb->len += n + 3;
}

void reply_simple(reply_buf *rb, const char *s)
{
    size_t n = strlen(s);
    char *p = reply_reserve(rb, n + 3);
    if (p == NULL)
        return;
    p[0] = '+';
    memcpy(p + 1, s, n);
    p[n + 1] = '\r';
    p[n + 2] = '\n';
    rb->len += n + 3;
}

void reply_error(reply_buf *rb, const char *msg)
{
    size_t n = strlen(msg);
    char *p = reply_reserve(rb, n + 3);
    if (p == NULL)
        return;
    p[0] = '-';
    for (size_t i = 0; i < n; i++)
        p[i + 1] = (msg[i] == '\r' || msg[i] == '\n') ? ' ' : msg[i];
    p[n + 1] = '\r';
    p[n + 2] = '\n';
    rb->len += n + 3;
}

void reply_errorf(reply_buf *rb, const char *fmt, ...)
{
    /* Room for a message quoting a peer's 128 bytes escaped (up to 512 characters). */
    char buf[1024];
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    reply_error(rb, buf);
}

void reply_int(reply_buf *rb, int64_t v)
{
    if (v == 0 || v == 1) {
        reply_raw(rb, v ? ":1\r\n" : ":0\r\n", 4);
        return;
    }
    reply_prefixed_ll(rb, ':', v);
}

void reply_bulk(reply_buf *rb, const void *data, size_t len)
{
    char *p = reply_reserve(rb, NUM_LL_BUF + 5 + len);
    size_t n;
    if (p == NULL)
        return;
    p[0] = '$';
    n = num_format_ll(p + 1, (int64_t)len) + 1;
    p[n++] = '\r';
    p[n++] = '\n';
    if (len > 0)
        memcpy(p + n, data, len);
    n += len;
    p[n++] = '\r';
    p[n++] = '\n';
    rb->len += n;
}

void reply_bulk_cstr(reply_buf *rb, const char *s)
{
    reply_bulk(rb, s, strlen(s));
}

void reply_bulk_ll(reply_buf *rb, int64_t v)
{
    char buf[NUM_LL_BUF];
    reply_bulk(rb, buf, num_format_ll(buf, v));
}

void reply_null(reply_buf *rb)
{
    reply_raw(rb, "$-1\r\n", 5);
}

void reply_array(reply_buf *rb, int64_t n)
{
    reply_prefixed_ll(rb, '*', n);
}

void reply_null_array(reply_buf *rb)
{
    reply_raw(rb, "*-1\r\n", 5);
}

void reply_ok(reply_buf *rb)
{
    reply_raw(rb, "+OK\r\n", 5);
}
