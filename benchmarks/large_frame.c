/* large_frame — one large length-field frame at a time, through weft and through a plain
 * socket, to see what assembling a big frame costs over just moving its bytes.
 *
 *   large_frame serve --port PORT          weft, 1 loop, length-field codec (4-byte length)
 *   large_frame sink  --port PORT          the same protocol on a blocking socket: reads
 *                                          into one 256 KiB buffer and drops the bytes, as
 *                                          cat into /dev/null would
 *   large_frame hold  --port PORT          as sink, but reads each frame whole into a fresh
 *                                          mapping of its size, unmapped after the answer:
 *                                          the floor for a server that holds the frame
 *   large_frame push  --port PORT --size BYTES [--count N]
 *
 * A frame is a 4-byte big-endian length and that many payload bytes; both servers answer
 * each frame with its length as 8 big-endian bytes, after checking one byte in every 4093
 * against the pusher's pattern (UINT64_MAX if one is wrong). The weft server gets the whole
 * frame as one span (next_frame), so its buffer holds the entire frame; the sink never does.
 * push sends COUNT frames of BYTES on one connection, each after the previous answer, and
 * prints "RESULT seconds=... mb_per_s=... first_s=... rest_avg_s=... errors=..." (MB = 10^6
 * bytes of payload; first_s is the first frame's round trip, rest_avg_s the others' mean).
 *
 * The servers stop on SIGINT or SIGTERM. Errors go to stderr; push exits 1 on a wrong or
 * missing answer, 2 when it cannot connect.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <weft/weft.h>

#include "bench_util.h"

#define PATTERN_SIZE ((size_t)1 << 20)
#define CHECK_STEP   4093u
#define MAX_FRAME    ((uint64_t)1 << 30)
#define SINK_BUF     ((size_t)256 << 10)

static uint8_t g_pattern[PATTERN_SIZE];

static void pattern_init(void)
{
    for (size_t i = 0; i < PATTERN_SIZE; i++)
        g_pattern[i] = (uint8_t)((i * 2654435761u) >> 24);
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

/* ---- weft server ---- */

static weft_action on_frames(weft_conn *c)
{
    const uint8_t *f;
    size_t len;
    while (weft_conn_next_frame(c, &f, &len) == 1) {
        uint64_t answer = len;
        for (size_t i = 0; i < len; i += CHECK_STEP) {
            if (f[i] != g_pattern[i % PATTERN_SIZE]) {
                answer = UINT64_MAX;
                break;
            }
        }
        uint8_t a[8];
        put_be64(a, answer);
        if (weft_conn_write(c, a, sizeof(a)) != 0)
            return WEFT_ACTION_CLOSE;
    }
    return WEFT_ACTION_NONE;
}

static int serve(int port)
{
    char url[64];
    snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.listen[0] = url;
    cfg.loops = 1;
    cfg.log_cb = bench_quiet_log;
    cfg.handler.on_traffic = on_frames;
    cfg.codec.kind = WEFT_CODEC_LENGTH_FIELD;
    cfg.codec.length_field.length_field_length = 4;
    cfg.codec.length_field.initial_bytes_to_strip = 4;
    cfg.codec.length_field.max_frame_length = MAX_FRAME + 4;
    cfg.max_inbound = (size_t)MAX_FRAME + (1u << 20);

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    weft_engine *e;
    int rc = weft_engine_start(&cfg, &e);
    if (rc != 0) {
        fprintf(stderr, "large_frame: %s\n", weft_strerror(rc));
        return 1;
    }
    int sig;
    while (sigwait(&set, &sig) != 0)
        ;
    weft_engine_stop(e);
    weft_engine_wait(e);
    return 0;
}

/* ---- plain sink ---- */

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static int read_full(int fd, uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t k = recv(fd, p, n, 0);
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Serves one connection. hold: each frame is read whole into a buffer of its own, mapped
 * for it and unmapped after, the least any server that hands out a frame as one span and
 * then gives the memory back must do; otherwise the bytes go through one small buffer. */
static void sink_conn(int fd, uint8_t *small, int hold)
{
    for (;;) {
        uint8_t h[4];
        if (read_full(fd, h, 4) != 0)
            return;
        uint64_t len = (uint64_t)h[0] << 24 | (uint64_t)h[1] << 16 | (uint64_t)h[2] << 8 | h[3];
        uint64_t answer = len, off = 0, next_check = 0;
        uint8_t *frame = NULL;
        if (hold && len > 0) {
            frame = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (frame == MAP_FAILED)
                return;
#ifdef MADV_HUGEPAGE
            (void)madvise(frame, len, MADV_HUGEPAGE); /* as weft does for large buffers */
#endif
        }
        while (off < len) {
            uint8_t *at = frame != NULL ? frame + off : small;
            size_t want = len - off;
            if (frame == NULL && want > SINK_BUF)
                want = SINK_BUF;
            ssize_t k = recv(fd, at, want, 0);
            if (k <= 0)
                break;
            for (; next_check < off + (uint64_t)k; next_check += CHECK_STEP) {
                if (at[next_check - off] != g_pattern[next_check % PATTERN_SIZE])
                    answer = UINT64_MAX;
            }
            off += (uint64_t)k;
        }
        if (frame != NULL)
            munmap(frame, len);
        if (off < len)
            return;
        uint8_t a[8];
        put_be64(a, answer);
        if (send(fd, a, sizeof(a), MSG_NOSIGNAL) != (ssize_t)sizeof(a))
            return;
    }
}

static int sink(int port, int hold)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal; /* no SA_RESTART: a blocked accept or recv returns EINTR */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int on = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(lfd, 16) != 0) {
        perror("large_frame: listen");
        return 1;
    }
    uint8_t *buf = malloc(SINK_BUF);
    if (buf == NULL)
        return 1;
    while (!g_stop) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0)
            continue;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
        sink_conn(fd, buf, hold);
        close(fd);
    }
    free(buf);
    close(lfd);
    return 0;
}

/* ---- pusher ---- */

static int push(int port, uint64_t size, unsigned count)
{
    int fd = bench_connect_loopback(port, 120);
    if (fd < 0) {
        fprintf(stderr, "large_frame: cannot connect to 127.0.0.1:%d\n", port);
        return 2;
    }
    unsigned errors = 0;
    double t0 = bench_now_s(), first = 0;
    for (unsigned r = 0; r < count && errors == 0; r++) {
        uint8_t h[4] = {(uint8_t)(size >> 24), (uint8_t)(size >> 16), (uint8_t)(size >> 8),
                        (uint8_t)size};
        if (send(fd, h, 4, MSG_NOSIGNAL | MSG_MORE) != 4) {
            errors++;
            break;
        }
        uint64_t off = 0;
        while (off < size) {
            size_t at = (size_t)(off % PATTERN_SIZE);
            size_t n = PATTERN_SIZE - at;
            if (n > size - off)
                n = (size_t)(size - off);
            ssize_t k = send(fd, g_pattern + at, n, MSG_NOSIGNAL);
            if (k <= 0) {
                fprintf(stderr, "large_frame: send: %s\n", k < 0 ? strerror(errno) : "EOF");
                errors++;
                break;
            }
            off += (uint64_t)k;
        }
        uint8_t a[8];
        if (errors != 0 || read_full(fd, a, 8) != 0) {
            fprintf(stderr, "large_frame: no answer for frame %u\n", r);
            errors++;
            break;
        }
        uint64_t got = 0;
        for (int i = 0; i < 8; i++)
            got = got << 8 | a[i];
        if (got != size) {
            fprintf(stderr, "large_frame: frame %u: answer %llu, want %llu\n", r,
                    (unsigned long long)got, (unsigned long long)size);
            errors++;
        }
        if (r == 0)
            first = bench_now_s() - t0;
    }
    double secs = bench_now_s() - t0;
    close(fd);
    double mb = (double)size * count / 1e6;
    /* The first frame apart: a server's memory for it may be fresh from the system, what
     * follows may reuse it. */
    double rest = count > 1 ? (secs - first) / (count - 1) : 0;
    printf("RESULT seconds=%.4f mb_per_s=%.1f first_s=%.4f rest_avg_s=%.4f errors=%u\n", secs,
           secs > 0 ? mb / secs : 0.0, first, rest, errors);
    return errors == 0 ? 0 : 1;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: large_frame serve|sink|hold --port PORT\n"
               "       large_frame push --port PORT --size BYTES [--count N]\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    int port = 0;
    uint64_t size = 0;
    unsigned count = 1;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--port") == 0)
            port = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--size") == 0)
            size = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--count") == 0)
            count = (unsigned)strtoul(argv[i + 1], NULL, 10);
        else {
            usage(stderr);
            return 2;
        }
    }
    if (port <= 0 || port > 65535) {
        usage(stderr);
        return 2;
    }
    pattern_init();
    if (strcmp(argv[1], "serve") == 0)
        return serve(port);
    if (strcmp(argv[1], "sink") == 0)
        return sink(port, 0);
    if (strcmp(argv[1], "hold") == 0)
        return sink(port, 1);
    if (strcmp(argv[1], "push") == 0 && size > 0 && size <= MAX_FRAME && count > 0)
        return push(port, size, count);
    usage(stderr);
    return 2;
}
