/* Fuzzes the weft-redis RESP decoder: whatever the bytes, decoding them in one piece and
 * decoding them fed in random-sized pieces (as reads arrive) must give the same requests
 * and the same verdict, and no read may leave the buffer; nor may the parser's footprint
 * after the last request exceed what a small request leaves. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "resp.h"

typedef struct result {
    uint8_t *text; /* the requests, serialised */
    size_t len;
    int rc; /* 0 all consumed, 1 bytes left, < 0 error */
} result;

static void append(result *r, const void *p, size_t n)
{
    r->text = realloc(r->text, r->len + n + 1);
    if (n > 0)
        memcpy(r->text + r->len, p, n);
    r->len += n;
}

/* Splits come from the first bytes of the input when chunked is set. */
static result decode_all(const uint8_t *in, size_t n, const uint8_t *splits, size_t nsplits,
                         int chunked)
{
    weft_codec codec = {.vtable = &resp_codec};
    weft_codec_state st = {0};
    resp_limits lim;
    result r = {0};
    size_t start = 0, avail = 0, si = 0;

    resp_limits_init(&lim);
    lim.max_inline = 1024; /* small, so the too-long paths are reachable */
    codec.ctx = &lim;
    while (avail < n && r.rc >= 0) {
        size_t step = chunked && nsplits ? (size_t)splits[si++ % nsplits] + 1 : n;
        avail = avail + step < n ? avail + step : n;
        for (;;) {
            weft_frame fr;
            /* A private copy of exactly the visible bytes: ASan catches any over-read. */
            size_t len = avail - start;
            uint8_t *copy = malloc(len ? len : 1);
            int rc;
            memcpy(copy, in + start, len);
            memset(&fr, 0, sizeof(fr));
            rc = resp_codec.decode(&codec, &st, copy, len, &fr);
            if (fr.consumed > len)
                abort();
            if (rc < 0) {
                r.rc = rc;
                free(copy);
                break;
            }
            start += fr.consumed;
            if (rc == WEFT_FRAME) {
                const resp_request *req = fr.message;
                int argc = req->argc;
                if (fr.offset + fr.length > len)
                    abort();
                append(&r, &argc, sizeof(argc));
                for (int i = 0; i < argc; i++) {
                    append(&r, &req->lens[i], sizeof(req->lens[i]));
                    append(&r, req->argv[i], req->lens[i]);
                }
                /* One pass gives the request back at once, the other leaves that to the next
                 * decode: the parser's shrinking must not change what it decodes, and ASan
                 * catches a shrink that frees what a request still points to. */
                if (chunked)
                    resp_request_done(req);
            }
            free(copy);
            if (rc == WEFT_AGAIN || start == avail)
                break;
        }
    }
    if (r.rc >= 0)
        r.rc = start == n ? 0 : 1;
    /* Between requests, after a done, nothing a large request grew is left: at most what a
     * small one keeps (64 argument slots, 4 KiB of inline scratch, the parser itself). */
    if (chunked && r.rc == 0 && resp_state_footprint(&st) > 8192)
        abort();
    resp_codec.state_destroy(&codec, &st);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t nsplits = size > 0 ? data[0] % 8 : 0;
    const uint8_t *splits = data + (size > 0 ? 1 : 0);
    const uint8_t *in;
    size_t n;
    result whole, pieces;

    if (size < 1 + nsplits)
        return 0;
    in = data + 1 + nsplits;
    n = size - 1 - nsplits;
    whole = decode_all(in, n, splits, nsplits, 0);
    pieces = decode_all(in, n, splits, nsplits, 1);
    /* Same verdict; on success or need-more, the same requests. An error may come after a
     * different number of whole requests only if the bytes before it differ, which they
     * do not, so the requests must match in every case. */
    if (whole.rc != pieces.rc || whole.len != pieces.len ||
        (whole.len > 0 && memcmp(whole.text, pieces.text, whole.len) != 0))
        abort();
    free(whole.text);
    free(pieces.text);
    return 0;
}
