/* weft — the test-only cap on the bytes of one send (send_cap.h). */
#include <stdlib.h>

#include "internal.h"
#include "send_cap.h"

size_t weft__send_cap_env(weft_engine *e)
{
    const char *v = getenv("WEFT_TEST_SEND_CAP");
    if (v == NULL || *v == '\0')
        return 0;
    char *end;
    unsigned long long n = strtoull(v, &end, 10);
    if (*end != '\0' || *v == '-' || n > SIZE_MAX) {
        weft__log(e, WEFT_LOG_ERROR, "WEFT_TEST_SEND_CAP=%s: not a byte count; ignored", v);
        return 0;
    }
    if (n != 0)
        weft__log(e, WEFT_LOG_WARN,
                  "WEFT_TEST_SEND_CAP=%llu: no send carries more than %llu bytes (a test-only "
                  "setting that makes every large write slow)",
                  n, n);
    return (size_t)n;
}

int weft__send_cap_apply(weft__loop *loop, const struct iovec *iov, int iovcnt, struct iovec *out)
{
    size_t left = loop->send_cap;
    int n = 0;
    bool cut = false;
    for (int i = 0; i < iovcnt; i++) {
        if (left == 0) {
            cut = true;
            break;
        }
        size_t len = iov[i].iov_len < left ? iov[i].iov_len : left;
        out[n].iov_base = iov[i].iov_base;
        out[n].iov_len = len;
        n++;
        left -= len;
        if (len < iov[i].iov_len) {
            cut = true;
            break;
        }
    }
    if (cut)
        WEFT__STAT_ADD(loop->stats.capped_sends, 1);
    return n;
}

uint64_t weft__send_cap_cuts(weft_engine *e)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < e->nloops; i++)
        n += atomic_load_explicit(&e->loops[i].stats.capped_sends, memory_order_relaxed);
    return n;
}
