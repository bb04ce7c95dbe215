#include "flood.h"

#include <errno.h>

#include "harness.h"
#include "wt_sock.h"

void *wt_flood_main(void *arg)
{
    wt_flood *w = arg;
    int64_t end = wt_now_ms() + 3 * WT_TIMEOUT_MS;
    size_t sent = 0;
    while (sent < w->len && wt_now_ms() < end) {
        size_t chunk = w->len - sent < 256 * 1024 ? w->len - sent : 256 * 1024;
        ssize_t r = wt_send_now(w->fd, w->data + sent, chunk);
        int err = r < 0 ? wt_sock_errno() : 0;
        if (r < 0) {
            if (err == EAGAIN || err == EWOULDBLOCK) {
                atomic_fetch_add(&w->full, 1);
                struct pollfd p = {w->fd, POLLOUT, 0};
                (void)wt_poll(&p, 1, 10);
                continue;
            }
            if (err == EINTR)
                continue;
            atomic_store(&w->error, err);
            return NULL;
        }
        sent += (size_t)r;
        atomic_store(&w->sent, sent);
    }
    return NULL;
}

void wt_flood_watch_init(wt_flood_watch *watch)
{
    watch->full_mark = -1;
    watch->in_mark = 0;
    watch->since = 0;
}

bool wt_flood_stuck(wt_flood_watch *watch, wt_flood *w, uint64_t pauses, uint64_t bytes_in)
{
    if (pauses == 0)
        return false;
    long full = atomic_load(&w->full);
    if (watch->full_mark >= 0 && full > watch->full_mark && bytes_in == watch->in_mark &&
        wt_now_ms() - watch->since >= WT_FLOOD_STUCK_MS)
        return true;
    if (watch->full_mark < 0 || bytes_in != watch->in_mark) {
        watch->full_mark = full;
        watch->in_mark = bytes_in;
        watch->since = wt_now_ms();
    }
    return false;
}
