/* weft — logging: through the configured callback, or to stderr. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

#include "internal.h"

static const char *level_name(weft_log_level l)
{
    switch (l) {
    case WEFT_LOG_DEBUG:
        return "debug";
    case WEFT_LOG_INFO:
        return "info";
    case WEFT_LOG_WARN:
        return "warn";
    case WEFT_LOG_ERROR:
        return "error";
    default:
        return "log";
    }
}

static void vlog(weft_engine *e, weft_log_level level, const char *fmt, va_list ap)
{
    if (level < e->cfg.log_level || level >= WEFT_LOG_OFF)
        return;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (e->cfg.log_cb != NULL)
        e->cfg.log_cb(e->cfg.log_ctx, level, msg);
    else
        fprintf(stderr, "weft: %s: %s\n", level_name(level), msg);
}

void weft__log(weft_engine *e, weft_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(e, level, fmt, ap);
    va_end(ap);
}

void weft_engine_log(weft_engine *e, weft_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(e, level, fmt, ap);
    va_end(ap);
}

/* ---- what peers did: rate limited per loop ---- */

/* A second has passed since the loop's window opened: say how many lines it held back. */
static void peer_window(weft__loop *loop)
{
    uint64_t sec = loop->now64_ms / 1000u;
    if (sec == loop->peer_log_sec)
        return;
    if (loop->peer_log_dropped > 0) {
        /* At WARN, or at the configured level if that is higher: the lines it counts passed
         * that filter, so the summary must pass it too. */
        weft_log_level lv = loop->engine->cfg.log_level > WEFT_LOG_WARN
                                ? loop->engine->cfg.log_level
                                : WEFT_LOG_WARN;
        weft__log(loop->engine, lv, "loop %u: ... and %llu more in the last second", loop->index,
                  (unsigned long long)loop->peer_log_dropped);
    }
    loop->peer_log_sec = sec;
    loop->peer_log_lines = 0;
    loop->peer_log_dropped = 0;
}

static void vlog_peer(weft__loop *loop, weft_log_level level, const char *fmt, va_list ap)
{
    weft_engine *e = loop->engine;
    if (level < e->cfg.log_level || level >= WEFT_LOG_OFF)
        return;
    peer_window(loop);
    if (loop->peer_log_lines >= WEFT_PEER_LOG_PER_SEC) {
        loop->peer_log_dropped++;
        return;
    }
    loop->peer_log_lines++;
    vlog(e, level, fmt, ap);
}

void weft__log_peer(weft__loop *loop, weft_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog_peer(loop, level, fmt, ap);
    va_end(ap);
}

void weft__log_peer_tick(weft__loop *loop)
{
    if (loop->peer_log_dropped > 0)
        peer_window(loop);
}

void weft_conn_log(weft_conn *c, weft_log_level level, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    weft__log_peer(c->loop, level, "conn %u/%u: %s", c->loop->index, c->slot, msg);
}

size_t weft_escape(char *dst, size_t cap, const void *src, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *p = src;
    size_t o = 0;
    if (cap == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t b = p[i];
        size_t need = (b >= 0x20 && b < 0x7f) ? (b == '\\' ? 2 : 1) : 4;
        if (o + need >= cap)
            break;
        if (need == 1) {
            dst[o++] = (char)b;
        } else if (need == 2) {
            dst[o++] = '\\';
            dst[o++] = '\\';
        } else {
            dst[o++] = '\\';
            dst[o++] = 'x';
            dst[o++] = hex[b >> 4];
            dst[o++] = hex[b & 15];
        }
    }
    dst[o] = '\0';
    return o;
}
