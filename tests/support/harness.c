/* Test harness for loopback integration tests; see harness.h. */
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef _WIN32
#include <windows.h>
#include <psapi.h>
#else
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/time.h>
#endif

#include "platform.h" /* core's: sockets and their errors on either system */

#ifndef SOCK_CLOEXEC
#define SOCK_CLOEXEC 0 /* Windows: sockets are not inherited unless asked */
#endif

int wt_close(int fd)
{
    return weft__sock_close((weft__sock)fd);
}

int wt_sock_errno(void)
{
    return -weft__sock_err();
}

#ifdef _WIN32
int wt_poll(struct pollfd *p, wt_nfds n, int timeout_ms)
{
    return WSAPoll(p, n, timeout_ms);
}

/* Non-blocking for this one call: the tests' sockets are blocking with timeouts. */
ssize_t wt_recv_now(int fd, void *buf, size_t n)
{
    (void)weft__sock_nonblock((weft__sock)fd, NULL);
    int r = recv((weft__sock)fd, buf, n > INT32_MAX ? INT32_MAX : (int)n, 0);
    int err = r < 0 ? WSAGetLastError() : 0;
    (void)weft__sock_blocking((weft__sock)fd);
    WSASetLastError(err);
    return r;
}

ssize_t wt_send_now(int fd, const void *buf, size_t n)
{
    (void)weft__sock_nonblock((weft__sock)fd, NULL);
    int w = send((weft__sock)fd, buf, n > INT32_MAX ? INT32_MAX : (int)n, 0);
    int err = w < 0 ? WSAGetLastError() : 0;
    (void)weft__sock_blocking((weft__sock)fd);
    WSASetLastError(err);
    return w;
}

ssize_t wt_peek_now(int fd, void *buf, size_t n)
{
    (void)weft__sock_nonblock((weft__sock)fd, NULL);
    int r = recv((weft__sock)fd, buf, n > INT32_MAX ? INT32_MAX : (int)n, MSG_PEEK);
    int err = r < 0 ? WSAGetLastError() : 0;
    (void)weft__sock_blocking((weft__sock)fd);
    WSASetLastError(err);
    return r;
}

ssize_t wt_recv(int fd, void *buf, size_t n)
{
    return recv((weft__sock)fd, buf, n > INT32_MAX ? INT32_MAX : (int)n, 0);
}

ssize_t wt_send(int fd, const void *buf, size_t n)
{
    return send((weft__sock)fd, buf, n > INT32_MAX ? INT32_MAX : (int)n, 0);
}

int wt_shutdown_wr(int fd)
{
    return shutdown((weft__sock)fd, SD_SEND);
}

int wt_send_timeout_ms(int fd, int ms)
{
    DWORD tv = (DWORD)ms;
    return setsockopt((weft__sock)fd, SOL_SOCKET, SO_SNDTIMEO, (const char *)&tv, sizeof(tv));
}

int wt_temp_dir(char *buf, size_t len, const char *tag)
{
    static atomic_int counter;
    char tmp[MAX_PATH + 1];
    DWORD n = GetTempPathA(sizeof(tmp), tmp);
    if (n == 0 || n > sizeof(tmp)) {
        fprintf(stderr, "wt_temp_dir: GetTempPath failed (%lu)\n", (unsigned long)GetLastError());
        return -1;
    }
    for (int i = 0; i < 100; i++) {
        snprintf(buf, len, "%sweft-%s-%lu-%d", tmp, tag, (unsigned long)GetCurrentProcessId(),
                 atomic_fetch_add(&counter, 1));
        if (CreateDirectoryA(buf, NULL))
            return 0;
        if (GetLastError() != ERROR_ALREADY_EXISTS)
            break;
    }
    fprintf(stderr, "wt_temp_dir: CreateDirectory %s failed (%lu)\n", buf,
            (unsigned long)GetLastError());
    return -1;
}

int wt_temp_dir_remove(const char *dir)
{
    return RemoveDirectoryA(dir) ? 0 : -1;
}

int wt_setsockopt_int(int fd, int level, int name, int value)
{
    return setsockopt((weft__sock)fd, level, name, (const char *)&value, sizeof(value));
}

int wt_linger_reset(int fd)
{
    struct linger lg = {1, 0};
    return setsockopt((weft__sock)fd, SOL_SOCKET, SO_LINGER, (const char *)&lg, sizeof(lg));
}

bool wt_fd_limit_at_least(unsigned long need)
{
    (void)need;
    return true;
}

unsigned long wt_fd_limit_raise(unsigned long want)
{
    return want;
}
#else
int wt_poll(struct pollfd *p, wt_nfds n, int timeout_ms)
{
    return poll(p, n, timeout_ms);
}

ssize_t wt_recv_now(int fd, void *buf, size_t n)
{
    return recv(fd, buf, n, MSG_DONTWAIT);
}

ssize_t wt_send_now(int fd, const void *buf, size_t n)
{
    return send(fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
}

ssize_t wt_peek_now(int fd, void *buf, size_t n)
{
    return recv(fd, buf, n, MSG_PEEK | MSG_DONTWAIT);
}

ssize_t wt_recv(int fd, void *buf, size_t n)
{
    return recv(fd, buf, n, 0);
}

ssize_t wt_send(int fd, const void *buf, size_t n)
{
    return send(fd, buf, n, MSG_NOSIGNAL);
}

int wt_shutdown_wr(int fd)
{
    return shutdown(fd, SHUT_WR);
}

int wt_send_timeout_ms(int fd, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

int wt_temp_dir(char *buf, size_t len, const char *tag)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(buf, len, "%s/weft-%s-XXXXXX", tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp", tag);
    if (mkdtemp(buf) == NULL) {
        perror("wt_temp_dir: mkdtemp");
        return -1;
    }
    return 0;
}

int wt_temp_dir_remove(const char *dir)
{
    return rmdir(dir);
}

int wt_setsockopt_int(int fd, int level, int name, int value)
{
    return setsockopt(fd, level, name, &value, sizeof(value));
}

int wt_linger_reset(int fd)
{
    struct linger lg = {1, 0};
    return setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

bool wt_fd_limit_at_least(unsigned long need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return false;
    if (rl.rlim_cur >= need)
        return true;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need)
        return false;
    rl.rlim_cur = need;
    return setrlimit(RLIMIT_NOFILE, &rl) == 0;
}

unsigned long wt_fd_limit_raise(unsigned long want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    if (rl.rlim_cur < want) {
        rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
        (void)getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur > ULONG_MAX ? ULONG_MAX : (unsigned long)rl.rlim_cur;
}
#endif

int wt_set_nonblocking(int fd)
{
    int rc = weft__sock_nonblock((weft__sock)fd, NULL);
    return rc == 0 ? 0 : -1;
}

int wt_set_blocking(int fd)
{
    return weft__sock_blocking((weft__sock)fd) == 0 ? 0 : -1;
}

const char *wt_missing_unix(void)
{
    return weft__sock_missing_unix();
}

const char *wt_missing_reuse_port(void)
{
    return weft__sock_missing_reuse_port();
}

#ifdef _WIN32
static bool under_wine(void)
{
    HMODULE ntdll = GetModuleHandleA("ntdll.dll");
    return ntdll != NULL && GetProcAddress(ntdll, "wine_get_version") != NULL;
}
#else
static bool under_wine(void)
{
    return false;
}
#endif

const char *wt_missing_reset(void)
{
    return under_wine() ? "Wine closes a socket with SO_LINGER {1, 0} in order (FIN), so no "
                          "peer is ever shown a reset"
                        : NULL;
}

const char *wt_missing_send_backpressure(void)
{
    return under_wine() ? "Wine completes every overlapped send in full at once, so a peer "
                          "that does not read never holds back what the server sends"
                        : NULL;
}

const char *wt_missing_bulk_loopback(void)
{
    return under_wine() ? "Wine moves loopback bytes through wineserver at tens of MB/s, too "
                          "slow for hundreds of MiB within the test's deadline"
                        : NULL;
}

const char *wt_missing_fd_count(void)
{
    return wt_fd_count() > 0 ? NULL
                             : "this system does not count the process's descriptors or handles "
                               "(Wine: GetProcessHandleCount)";
}

const char *wt_missing_tcp_maxseg(void)
{
#ifdef TCP_MAXSEG
    return NULL;
#else
    return "Winsock has no TCP_MAXSEG to ask for small segments with, so the server's kernel "
           "sizes its send buffer for large ones";
#endif
}

bool wt_slow(void)
{
    const char *v = getenv("WEFT_TEST_SLOW");
    return v != NULL && v[0] != '\0' && strcmp(v, "0") != 0;
}

bool wt_valgrind(void)
{
    const char *v = getenv("WEFT_TEST_VALGRIND");
    return v != NULL && v[0] != '\0' && strcmp(v, "0") != 0;
}

bool wt_buffers_back(void *engine)
{
    weft_stats st;
    return weft_engine_get_stats(engine, &st, NULL) == 0 && st.total.buffers_out == 0 &&
           st.total.buffer_bytes == 0;
}

bool wt_uring(void)
{
    const char *v = getenv("WEFT_BACKEND");
    if (v != NULL && strcmp(v, "epoll") == 0)
        return false;
    return weft_backend_is_supported(WEFT_BACKEND_IO_URING, NULL);
}

int wt_timeout_ms(void)
{
    return wt_slow() ? 60000 : 10000;
}

int wt_grace_ms(int ms)
{
    return wt_slow() ? ms * WT_SLOW_FACTOR : ms;
}

int64_t wt_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void wt_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

bool wt_wait_for(bool (*pred)(void *arg), void *arg, int timeout_ms)
{
    int64_t end = wt_now_ms() + timeout_ms;
    for (;;) {
        if (pred(arg))
            return true;
        if (wt_now_ms() > end)
            return false;
        wt_sleep_ms(1);
    }
}

bool wt_wait_count(const _Atomic long *counter, long want, int timeout_ms)
{
    int64_t end = wt_now_ms() + timeout_ms;
    while (atomic_load(counter) < want) {
        if (wt_now_ms() > end)
            return false;
        wt_sleep_ms(1);
    }
    return true;
}

static void quiet_log(void *ctx, weft_log_level level, const char *msg)
{
    (void)ctx;
    (void)level;
    (void)msg;
}

void wt_config(weft_config *cfg, weft_action (*on_traffic)(weft_conn *), unsigned loops)
{
    weft_config_init(cfg);
    cfg->loops = loops;
    cfg->handler.on_traffic = on_traffic;
    cfg->log_cb = quiet_log; /* tests provoke errors on purpose; keep the output readable */
    cfg->stop_timeout_ms = 2000;
}

int wt_server_start(wt_server *s, const weft_config *cfg)
{
    memset(s, 0, sizeof(*s));
    weft_config c = *cfg;
    if (c.listen[0] == NULL)
        c.listen[0] = "tcp://127.0.0.1:0";
    int rc = weft_engine_start(&c, &s->engine);
    if (rc != 0)
        return rc;
    if (weft_engine_get_listen_addr(s->engine, 0, s->url, sizeof(s->url)) < 0)
        s->url[0] = '\0';
    int port = weft_engine_get_listen_port(s->engine, 0);
    s->port = port > 0 ? port : 0;
    return 0;
}

void wt_server_stop(wt_server *s)
{
    if (s->engine == NULL)
        return;
    weft_engine_stop(s->engine);
    weft_engine_wait(s->engine);
    s->engine = NULL;
}

static void set_timeouts(int fd)
{
#ifdef _WIN32
    DWORD tv = (DWORD)WT_TIMEOUT_MS; /* Winsock's is in milliseconds */
#else
    struct timeval tv = {WT_TIMEOUT_MS / 1000, (WT_TIMEOUT_MS % 1000) * 1000};
#endif
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, (const void *)&tv, sizeof(tv));
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, (const void *)&tv, sizeof(tv));
}

static int unix_addr(struct sockaddr_un *sa, const char *path)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa->sun_path))
        return -ENAMETOOLONG;
    strcpy(sa->sun_path, path);
    return weft__net_init() != 0 ? -EINVAL : 0;
}

int wt_socket_tcp(void)
{
    if (weft__net_init() != 0)
        return -EINVAL;
    int fd = (int)socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return weft__sock_err();
    set_timeouts(fd);
    (void)wt_setsockopt_int(fd, IPPROTO_TCP, TCP_NODELAY, 1);
    return fd;
}

int wt_connect_fd(int fd, int port)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 ? 0 : weft__sock_err();
}

/* Connects fd, or closes it: fd or -errno (rc, when it is not 0, or the connect's). */
static int connect_or_close(int fd, int rc, int port)
{
    if (rc == 0)
        rc = wt_connect_fd(fd, port);
    if (rc != 0) {
        wt_close(fd);
        return rc;
    }
    return fd;
}

int wt_connect_tcp(int port)
{
    return wt_connect_tcp_from(NULL, port);
}

int wt_connect_tcp_small(int port, int rcvbuf, int mss)
{
    int fd = wt_socket_tcp();
    if (fd < 0)
        return fd;
    int rc = 0;
#ifdef TCP_MAXSEG
    if (wt_setsockopt_int(fd, IPPROTO_TCP, TCP_MAXSEG, mss) != 0)
        rc = weft__sock_err();
#else
    (void)mss; /* Winsock: a segment size cannot be asked for */
#endif
    if (rc == 0 && wt_setsockopt_int(fd, SOL_SOCKET, SO_RCVBUF, rcvbuf) != 0)
        rc = weft__sock_err();
    return connect_or_close(fd, rc, port);
}

int wt_connect_tcp_from(const char *src_ip, int port)
{
    int fd = wt_socket_tcp();
    if (fd < 0 || src_ip == NULL)
        return fd < 0 ? fd : connect_or_close(fd, 0, port);
    struct sockaddr_in src;
    memset(&src, 0, sizeof(src));
    src.sin_family = AF_INET;
    int rc = 0;
    if (inet_pton(AF_INET, src_ip, &src.sin_addr) != 1)
        rc = -EINVAL;
    else if (bind(fd, (struct sockaddr *)&src, sizeof(src)) != 0)
        rc = weft__sock_err();
    return connect_or_close(fd, rc, port);
}

/* A blocking unix stream socket, and path's address in *sa; or a negated errno. */
static int unix_socket(const char *path, struct sockaddr_un *sa)
{
    int rc = unix_addr(sa, path);
    if (rc != 0)
        return rc;
    int fd = (int)socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    return fd < 0 ? weft__sock_err() : fd;
}

int wt_connect_unix(const char *path)
{
    struct sockaddr_un sa;
    int fd = unix_socket(path, &sa);
    if (fd < 0)
        return fd;
    set_timeouts(fd);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        int err = weft__sock_err();
        wt_close(fd);
        return err;
    }
    return fd;
}

int wt_listen_unix(const char *path, int backlog)
{
    struct sockaddr_un sa;
    int fd = unix_socket(path, &sa);
    if (fd < 0)
        return fd;
    (void)unlink(path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, backlog) != 0) {
        int err = weft__sock_err();
        wt_close(fd);
        return err;
    }
    return fd;
}

int wt_connect_unix_now(const char *path)
{
    struct sockaddr_un sa;
    int rc = unix_addr(&sa, path);
    if (rc != 0)
        return rc;
    weft__sock s;
    rc = weft__sock_open(AF_UNIX, SOCK_STREAM, &s);
    if (rc != 0)
        return rc;
    rc = weft__sock_connect(s, (struct sockaddr *)&sa, sizeof(sa));
    if (rc != 0) {
        weft__sock_close(s);
        return rc;
    }
    return (int)s;
}

/* Waits for events on fd until end; 0 when ready, -ETIMEDOUT otherwise. */
static int wait_fd(int fd, short events, int64_t end)
{
    for (;;) {
        int64_t left = end - wt_now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd p = {fd, events, 0};
        int n = wt_poll(&p, 1, (int)left);
        if (n > 0)
            return 0;
        if (n < 0 && wt_sock_errno() != EINTR)
            return -wt_sock_errno();
    }
}

/* A blocking TCP socket bound to 127.0.0.1 on a free port, listening if backlog > 0. */
static int bound_tcp(int backlog, int *port)
{
    if (weft__net_init() != 0)
        return -EINVAL;
    int fd = (int)socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return weft__sock_err();
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(sa);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        (backlog > 0 && listen(fd, backlog) != 0) ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        int err = weft__sock_err();
        wt_close(fd);
        return err;
    }
    *port = ntohs(sa.sin_port);
    return fd;
}

int wt_bind_tcp(int *port)
{
    return bound_tcp(0, port);
}

int wt_listen_tcp(int backlog, int *port)
{
    return bound_tcp(backlog > 0 ? backlog : 1, port);
}

int wt_accept(int lfd, int timeout_ms)
{
    int rc = wait_fd(lfd, POLLIN, wt_now_ms() + timeout_ms);
    if (rc != 0)
        return rc;
    int fd = (int)accept((weft__sock)lfd, NULL, NULL);
    if (fd < 0)
        return weft__sock_err();
#ifndef _WIN32
    (void)fcntl(fd, F_SETFD, FD_CLOEXEC); /* as the listener's */
#endif
    set_timeouts(fd);
    return fd;
}

int wt_exchange(int fd, const void *out, size_t out_len, void *in, size_t in_len, int timeout_ms)
{
    int64_t end = wt_now_ms() + timeout_ms;
    const uint8_t *o = out;
    uint8_t *i = in;
    size_t sent = 0, got = 0;
    while (sent < out_len || got < in_len) {
        int64_t left = end - wt_now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd p = {fd, 0, 0};
        if (sent < out_len)
            p.events |= POLLOUT;
        if (got < in_len)
            p.events |= POLLIN;
        int n = wt_poll(&p, 1, (int)left);
        if (n < 0) {
            int err = wt_sock_errno();
            if (err == EINTR)
                continue;
            return -err;
        }
        if (n == 0)
            continue;
        if ((p.revents & (POLLIN | POLLHUP | POLLERR)) && got < in_len) {
            ssize_t r = wt_recv_now(fd, i + got, in_len - got);
            int err = r < 0 ? wt_sock_errno() : 0;
            if (r == 0)
                return -EPIPE;
            if (r < 0 && err != EAGAIN && err != EINTR)
                return -err;
            if (r > 0)
                got += (size_t)r;
        }
        if ((p.revents & (POLLOUT | POLLERR | POLLHUP)) && sent < out_len) {
            ssize_t w = wt_send_now(fd, o + sent, out_len - sent);
            int err = w < 0 ? wt_sock_errno() : 0;
            if (w < 0 && err != EAGAIN && err != EINTR)
                return -err;
            if (w > 0)
                sent += (size_t)w;
        }
    }
    return 0;
}

int wt_send_all(int fd, const void *data, size_t n, int timeout_ms)
{
    return wt_exchange(fd, data, n, NULL, 0, timeout_ms);
}

int wt_recv_exact(int fd, void *buf, size_t n, int timeout_ms)
{
    return wt_exchange(fd, NULL, 0, buf, n, timeout_ms);
}

int wt_recv_eof(int fd, int timeout_ms)
{
    int64_t end = wt_now_ms() + timeout_ms;
    for (;;) {
        int rc = wait_fd(fd, POLLIN, end);
        if (rc != 0)
            return rc;
        char c;
        ssize_t r = wt_recv_now(fd, &c, 1);
        if (r == 0)
            return 0;
        if (r > 0)
            return 1;
        int err = wt_sock_errno();
        if (err != EAGAIN && err != EINTR)
            return -err;
    }
}

void wt_unix_path(char *buf, size_t len, const char *tag)
{
    static atomic_int counter;
    snprintf(buf, len, "/tmp/weft-test-%ld-%s-%d.sock", (long)getpid(), tag,
             atomic_fetch_add(&counter, 1));
}

void wt_fill(uint8_t *p, size_t n, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 0x9e3779b9u;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)x;
    }
}

weft_loop_stats wt_stats(weft_engine *e)
{
    weft_stats s;
    memset(&s, 0, sizeof(s));
    weft_engine_get_stats(e, &s, NULL);
    return s.total;
}

weft_action wt_echo_on_traffic(weft_conn *c)
{
    const uint8_t *p;
    int n = weft_conn_peek(c, 0, &p);
    if (n > 0 && weft_conn_write(c, p, (size_t)n) == 0)
        weft_conn_discard(c, (size_t)n);
    return WEFT_ACTION_NONE;
}

_Atomic long wt_amplified;

weft_action wt_amplify_on_traffic(weft_conn *c)
{
    static uint8_t reply[WT_AMPLIFY_BYTES];
    const uint8_t *f;
    size_t len;
    while (weft_conn_next_frame(c, &f, &len) == WEFT_FRAME) {
        memcpy(reply, f, len < sizeof(reply) ? len : sizeof(reply));
        if (weft_conn_write(c, reply, sizeof(reply)) != 0)
            return WEFT_ACTION_CLOSE;
        atomic_fetch_add(&wt_amplified, 1);
    }
    return WEFT_ACTION_NONE;
}

#ifdef _WIN32
long wt_rss_kb(void)
{
    PROCESS_MEMORY_COUNTERS pmc;
    if (!K32GetProcessMemoryInfo(GetCurrentProcess(), &pmc, sizeof(pmc)))
        return -1;
    return (long)(pmc.WorkingSetSize / 1024);
}
#else
long wt_rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb;
}
#endif

#ifdef _WIN32
int wt_fd_count(void)
{
    DWORD n = 0;
    return GetProcessHandleCount(GetCurrentProcess(), &n) && n > 0 ? (int)n : -1;
}
#else
int wt_fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] != '.')
            n++;
    }
    closedir(d);
    return n - 1; /* the directory stream's own descriptor */
}
#endif
