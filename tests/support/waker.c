/* A loop's wakeup watched as a backend watches it; see waker.h. */
#include "waker.h"

#ifdef _WIN32
#include <windows.h>

#define WAKER_KEY 1 /* the completion key of a wakeup; nothing else is posted to the port */

int wt_waker_attach(weft__waker *w)
{
    HANDLE port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 1);
    if (port == NULL)
        return weft__sock_err_of(GetLastError());
    w->port = port;
    w->key = WAKER_KEY;
    return 0;
}

void wt_waker_detach(weft__waker *w)
{
    if (w->port != NULL)
        CloseHandle(w->port);
    w->port = NULL;
}

bool wt_waker_wait(weft__waker *w, int timeout_ms)
{
    DWORD n;
    ULONG_PTR key;
    OVERLAPPED *ov;
    return GetQueuedCompletionStatus(w->port, &n, &key, &ov, (DWORD)timeout_ms) && key == WAKER_KEY;
}

uint64_t wt_waker_take(weft__waker *w)
{
    uint64_t n = 0;
    while (wt_waker_wait(w, 0))
        n++;
    return n;
}
#else
#include <errno.h>
#include <poll.h>
#include <unistd.h>

int wt_waker_attach(weft__waker *w)
{
    (void)w; /* the eventfd is the waker's own */
    return 0;
}

void wt_waker_detach(weft__waker *w)
{
    (void)w;
}

bool wt_waker_wait(weft__waker *w, int timeout_ms)
{
    struct pollfd p = {w->fd, POLLIN, 0};
    int n;
    do {
        n = poll(&p, 1, timeout_ms);
    } while (n < 0 && errno == EINTR);
    return n == 1;
}

uint64_t wt_waker_take(weft__waker *w)
{
    uint64_t v = 0;
    if (read(w->fd, &v, sizeof(v)) != (ssize_t)sizeof(v))
        return 0;
    return v;
}
#endif
