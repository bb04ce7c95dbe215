/* The reference UDP echo server for benchmarks/udp.sh: the least a datagram echo can do.
 *
 * One thread, one blocking UDP socket: recvmmsg takes up to 64 datagrams per call, and
 * sendmmsg sends each back to its sender in one call. weft-udpecho (one loop) is measured
 * against it.
 *
 *   ref_udp_echo --port PORT [--host ADDR]
 *
 * SIGINT or SIGTERM stops it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH     64
#define DGRAM_MAX 65536

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static void usage(void)
{
    fprintf(stderr, "usage: ref_udp_echo --port PORT [--host ADDR]\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {{"port", required_argument, NULL, 'p'},
                                             {"host", required_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    const char *host = "127.0.0.1";
    int port = -1, ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (ch == 'p')
            port = atoi(optarg);
        else if (ch == 'h')
            host = optarg;
        else {
            usage();
            return 2;
        }
    }
    if (port < 0 || port > 65535) {
        usage();
        return 2;
    }
    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: recvmmsg sees EINTR */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (fd < 0 || inet_pton(AF_INET, host, &sin.sin_addr) != 1 ||
        bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
        perror("ref_udp_echo: bind");
        return 1;
    }
    static char bufs[BATCH][DGRAM_MAX];
    static struct sockaddr_storage peers[BATCH];
    struct iovec iov[BATCH];
    struct mmsghdr msgs[BATCH];
    while (!stopping) {
        for (int i = 0; i < BATCH; i++) {
            iov[i].iov_base = bufs[i];
            iov[i].iov_len = DGRAM_MAX;
            memset(&msgs[i], 0, sizeof(msgs[i]));
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_name = &peers[i];
            msgs[i].msg_hdr.msg_namelen = sizeof(peers[i]);
        }
        /* Block for the first datagram, then take whatever else is already queued. */
        int n = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("ref_udp_echo: recvmmsg");
            return 1;
        }
        for (int i = 0; i < n; i++)
            iov[i].iov_len = msgs[i].msg_len;
        int off = 0;
        while (off < n) {
            int s = sendmmsg(fd, msgs + off, (unsigned)(n - off), 0);
            if (s < 0) {
                if (errno == EINTR)
                    continue;
                break; /* a full buffer drops the rest, as a UDP server does */
            }
            off += s;
        }
    }
    close(fd);
    return 0;
}
