/* weft-redis — RESP2 reply encoding into a growable buffer.
 *
 * A server keeps one reply_buf per loop, appends the replies of every request in a batch,
 * and writes the lot with one weft_conn_write. Appending never fails loudly: when memory
 * runs out the buffer sets oom and ignores further appends, and the caller drops the
 * connection instead of sending a truncated stream.
 */
#ifndef WEFT_REDIS_REPLY_H
#define WEFT_REDIS_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <weft/version.h> /* WEFT_PRINTF */

typedef struct reply_buf {
    char *data; /* owned by the buffer */
    size_t len;
    size_t cap;
    bool oom;
} reply_buf;

void reply_init(reply_buf *rb);
void reply_free(reply_buf *rb);
/* Empties the buffer and keeps its memory, unless it grew past keep bytes. */
void reply_reset(reply_buf *rb, size_t keep);

/* Makes room for n more bytes; returns where they go, or NULL (and sets oom). */
char *reply_reserve(reply_buf *rb, size_t n);

void reply_raw(reply_buf *rb, const void *data, size_t len);
/* "+s\r\n". s must not contain CR or LF. */
void reply_simple(reply_buf *rb, const char *s);
/* "-msg\r\n"; msg carries its own prefix ("ERR ...", "WRONGTYPE ..."). CR and LF in msg
 * become spaces, as Redis does, so that an echoed argument cannot break the stream. */
void reply_error(reply_buf *rb, const char *msg);
void reply_errorf(reply_buf *rb, const char *fmt, ...) WEFT_PRINTF(2, 3);
void reply_int(reply_buf *rb, int64_t v);
void reply_bulk(reply_buf *rb, const void *data, size_t len);
void reply_bulk_cstr(reply_buf *rb, const char *s);
void reply_bulk_ll(reply_buf *rb, int64_t v);
void reply_null(reply_buf *rb);             /* "$-1\r\n" */
void reply_array(reply_buf *rb, int64_t n); /* "*n\r\n", followed by n replies */
void reply_null_array(reply_buf *rb);       /* "*-1\r\n" */

/* Shared replies. */
void reply_ok(reply_buf *rb);

#endif /* WEFT_REDIS_REPLY_H */
