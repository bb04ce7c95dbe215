/* UDP echo load generator for benchmarks/udp.sh.
 *
 * Opens --socks connected UDP sockets to an echo server and keeps --window datagrams of
 * --size bytes in flight on each for --duration seconds, from one thread with one epoll: a
 * reply lets one more datagram go. Every reply must be exactly one request (its length and
 * its socket's pattern); anything else is an error and the exit status is 1. A socket that
 * hears nothing for 200 ms counts what it had in flight as lost and sends a fresh window,
 * so loss slows the run down but never stalls it.
 *
 *   udp_echo --port PORT [--host ADDR] [--socks N] [--window W] [--size BYTES] [--duration S]
 *
 * Prints a human line and one machine-readable line:
 *   RESULT dgrams_per_s=... mb_per_s=... dgrams=... lost=... errors=0
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH     64
#define SIZE_MAX_ 65507
#define LOSS_MS   200

typedef struct usock {
    int fd;
    int inflight;
    int64_t last_ms; /* last reply, or the last fresh window */
    uint8_t pattern[SIZE_MAX_];
} usock;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sends n copies of the socket's datagram; returns how many left. */
static int send_some(usock *u, size_t size, int n)
{
    struct iovec iov = {u->pattern, size};
    struct mmsghdr msgs[BATCH];
    int sent = 0;
    while (sent < n) {
        int k = n - sent < BATCH ? n - sent : BATCH;
        for (int i = 0; i < k; i++) {
            memset(&msgs[i], 0, sizeof(msgs[i]));
            msgs[i].msg_hdr.msg_iov = &iov;
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        int r = sendmmsg(u->fd, msgs, (unsigned)k, MSG_DONTWAIT);
        if (r <= 0)
            break; /* a full buffer: the loss timer sends a fresh window later */
        sent += r;
    }
    u->inflight += sent;
    return sent;
}

static void usage(void)
{
    fprintf(stderr, "usage: udp_echo --port PORT [--host ADDR] [--socks N] [--window W] "
                    "[--size BYTES] [--duration S]\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {{"port", required_argument, NULL, 'p'},
                                             {"host", required_argument, NULL, 'h'},
                                             {"socks", required_argument, NULL, 's'},
                                             {"window", required_argument, NULL, 'w'},
                                             {"size", required_argument, NULL, 'z'},
                                             {"duration", required_argument, NULL, 'd'},
                                             {NULL, 0, NULL, 0}};
    const char *host = "127.0.0.1";
    int port = -1, nsocks = 8, window = 32, ch;
    size_t size = 64;
    double duration = 3;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'p':
            port = atoi(optarg);
            break;
        case 'h':
            host = optarg;
            break;
        case 's':
            nsocks = atoi(optarg);
            break;
        case 'w':
            window = atoi(optarg);
            break;
        case 'z':
            size = (size_t)atol(optarg);
            break;
        case 'd':
            duration = atof(optarg);
            break;
        default:
            usage();
            return 2;
        }
    }
    if (port < 0 || port > 65535 || nsocks < 1 || nsocks > 1024 || window < 1 || size < 1 ||
        size > SIZE_MAX_ || duration <= 0) {
        usage();
        return 2;
    }
    struct sockaddr_in srv = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &srv.sin_addr) != 1) {
        usage();
        return 2;
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    usock *socks = calloc((size_t)nsocks, sizeof(*socks));
    if (ep < 0 || socks == NULL)
        return 1;
    for (int i = 0; i < nsocks; i++) {
        usock *u = &socks[i];
        u->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (u->fd < 0 || connect(u->fd, (struct sockaddr *)&srv, sizeof(srv)) != 0) {
            perror("udp_echo: connect");
            return 1;
        }
        for (size_t k = 0; k < size; k++)
            u->pattern[k] = (uint8_t)(i * 131 + k * 7 + 1);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = u};
        epoll_ctl(ep, EPOLL_CTL_ADD, u->fd, &ev);
    }
    int64_t start = now_ms();
    int64_t end = start + (int64_t)(duration * 1000);
    for (int i = 0; i < nsocks; i++) {
        socks[i].last_ms = start;
        send_some(&socks[i], size, window);
    }
    uint64_t got = 0, lost = 0, errors = 0;
    static uint8_t bufs[BATCH][SIZE_MAX_ + 1];
    struct iovec iov[BATCH];
    struct mmsghdr msgs[BATCH];
    struct epoll_event evs[64];
    int64_t now = start;
    while ((now = now_ms()) < end) {
        int n = epoll_wait(ep, evs, 64, 10);
        for (int e = 0; e < n; e++) {
            usock *u = evs[e].data.ptr;
            for (int i = 0; i < BATCH; i++) {
                iov[i].iov_base = bufs[i];
                iov[i].iov_len = sizeof(bufs[i]);
                memset(&msgs[i], 0, sizeof(msgs[i]));
                msgs[i].msg_hdr.msg_iov = &iov[i];
                msgs[i].msg_hdr.msg_iovlen = 1;
            }
            int r = recvmmsg(u->fd, msgs, BATCH, MSG_DONTWAIT, NULL);
            if (r <= 0)
                continue;
            for (int i = 0; i < r; i++) {
                if (msgs[i].msg_len != size || memcmp(bufs[i], u->pattern, size) != 0)
                    errors++;
            }
            got += (uint64_t)r;
            u->inflight -= r;
            if (u->inflight < 0)
                u->inflight = 0; /* a late reply to a window already counted lost */
            u->last_ms = now;
            send_some(u, size, window - u->inflight);
        }
        for (int i = 0; i < nsocks; i++) {
            usock *u = &socks[i];
            if (now - u->last_ms > LOSS_MS) {
                lost += (uint64_t)u->inflight;
                u->inflight = 0;
                u->last_ms = now;
                send_some(u, size, window);
            }
        }
    }
    double secs = (double)(now - start) / 1000.0;
    double rate = (double)got / secs;
    printf("udp_echo: %d sockets x window %d x %zu B: %.0f datagrams/s, %.1f MB/s, %llu lost, "
           "%llu errors\n",
           nsocks, window, size, rate, rate * (double)size / 1e6, (unsigned long long)lost,
           (unsigned long long)errors);
    printf("RESULT dgrams_per_s=%.0f mb_per_s=%.2f dgrams=%llu lost=%llu errors=%llu\n", rate,
           rate * (double)size / 1e6, (unsigned long long)got, (unsigned long long)lost,
           (unsigned long long)errors);
    return errors == 0 ? 0 : 1;
}
