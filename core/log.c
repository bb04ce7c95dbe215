/* weft — logging: through the configured callback, or to stderr. */
#include <stdarg.h>
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
