/* soak_client — the load for benchmarks/soak.sh: a mix of well-behaved and misbehaving
 * peers against weft-echo --codec line, for a fixed time.
 *
 *   soak_client --port P [--seconds N] [--echo C] [--churn T] [--slow S]
 *
 * - echo: C connections (default 50) in one poll loop, each sending lines of varying length
 *   and checking that every line comes back intact, in order;
 * - churn: T threads (default 2) that connect, echo one line and close with a reset, over
 *   and over;
 * - slow: S connections (default 50) that trickle one byte every 100 ms and never finish a
 *   line; the server's read timeout closes them and they connect again.
 *
 * Prints a line of counters every 10 s and a summary at the end. Exits 1 if an echo came
 * back wrong or a well-behaved connection was closed by the server, 0 otherwise.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

static int port;
static _Atomic bool done;
static _Atomic long echo_lines, echo_errors, churn_cycles, churn_errors, slow_bytes, slow_cut;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int connect_to(void)
{
    return bench_connect_loopback(port, 5);
}

static void reset_close(int fd)
{
    struct linger lg = {1, 0};
    (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
}

/* ---- echo ---- */

typedef struct echo_conn {
    int fd;
    char line[1100];
    size_t len, got;
    bool waiting;
    uint32_t rng;
} echo_conn;

static void make_line(echo_conn *c)
{
    c->rng = c->rng * 1103515245u + 12345u;
    size_t n = 8 + (c->rng >> 16) % 1000;
    for (size_t i = 0; i < n; i++)
        c->line[i] = (char)('a' + (c->rng + i * 7) % 26);
    c->line[n] = '\n';
    c->len = n + 1;
    c->got = 0;
}

static void *echo_main(void *arg)
{
    int n = *(int *)arg;
    echo_conn *cs = calloc((size_t)n, sizeof(*cs));
    struct pollfd *p = calloc((size_t)n, sizeof(*p));
    if (cs == NULL || p == NULL)
        exit(2);
    for (int i = 0; i < n; i++) {
        cs[i].fd = connect_to();
        cs[i].rng = (uint32_t)i + 1;
        if (cs[i].fd < 0) {
            fprintf(stderr, "soak_client: echo connect failed: %s\n", strerror(errno));
            exit(2);
        }
    }
    while (!atomic_load(&done)) {
        for (int i = 0; i < n; i++) {
            echo_conn *c = &cs[i];
            if (!c->waiting) {
                make_line(c);
                if (send(c->fd, c->line, c->len, MSG_NOSIGNAL) != (ssize_t)c->len)
                    atomic_fetch_add(&echo_errors, 1);
                c->waiting = true;
            }
            p[i] = (struct pollfd){c->fd, POLLIN, 0};
        }
        if (poll(p, (nfds_t)n, 100) <= 0)
            continue;
        for (int i = 0; i < n; i++) {
            echo_conn *c = &cs[i];
            if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char buf[2048];
            ssize_t r = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
            if (r <= 0) {
                if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                    /* The server closed a well-behaved connection: an error. Reconnect so
                     * the soak goes on. */
                    atomic_fetch_add(&echo_errors, 1);
                    close(c->fd);
                    c->fd = connect_to();
                    c->waiting = false;
                    if (c->fd < 0)
                        exit(2);
                }
                continue;
            }
            if (c->got + (size_t)r > c->len || memcmp(buf, c->line + c->got, (size_t)r) != 0) {
                atomic_fetch_add(&echo_errors, 1);
                c->got = c->len;
            } else {
                c->got += (size_t)r;
            }
            if (c->got == c->len) {
                atomic_fetch_add(&echo_lines, 1);
                c->waiting = false;
            }
        }
    }
    for (int i = 0; i < n; i++)
        close(cs[i].fd);
    free(cs);
    free(p);
    return NULL;
}

/* ---- churn ---- */

static void *churn_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&done)) {
        int fd = connect_to();
        if (fd < 0) {
            atomic_fetch_add(&churn_errors, 1);
            usleep(10000);
            continue;
        }
        char back[8];
        if (send(fd, "churn\n", 6, MSG_NOSIGNAL) != 6 || recv(fd, back, 6, MSG_WAITALL) != 6 ||
            memcmp(back, "churn\n", 6) != 0)
            atomic_fetch_add(&churn_errors, 1);
        reset_close(fd);
        atomic_fetch_add(&churn_cycles, 1);
    }
    return NULL;
}

/* ---- slow peers ---- */

static void *slow_main(void *arg)
{
    int n = *(int *)arg;
    int *fds = calloc((size_t)n, sizeof(int));
    if (fds == NULL)
        exit(2);
    for (int i = 0; i < n; i++)
        fds[i] = connect_to();
    while (!atomic_load(&done)) {
        for (int i = 0; i < n; i++) {
            if (fds[i] >= 0) {
                char c;
                ssize_t r = recv(fds[i], &c, 1, MSG_DONTWAIT);
                if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
                    close(fds[i]);
                    fds[i] = -1;
                    atomic_fetch_add(&slow_cut, 1);
                } else if (send(fds[i], "s", 1, MSG_DONTWAIT | MSG_NOSIGNAL) == 1) {
                    atomic_fetch_add(&slow_bytes, 1);
                }
            }
            if (fds[i] < 0)
                fds[i] = connect_to();
        }
        usleep(100000);
    }
    for (int i = 0; i < n; i++) {
        if (fds[i] >= 0)
            close(fds[i]);
    }
    free(fds);
    return NULL;
}

static void usage(void)
{
    fprintf(stderr, "usage: soak_client --port P [--seconds N] [--echo C] [--churn T] "
                    "[--slow S]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int seconds = 60, nechos = 50, nchurn = 2, nslow = 50;
    for (int i = 1; i < argc; i += 2) { /* every option takes a value */
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL)
            usage();
        if (strcmp(argv[i], "--port") == 0)
            port = atoi(v);
        else if (strcmp(argv[i], "--seconds") == 0)
            seconds = atoi(v);
        else if (strcmp(argv[i], "--echo") == 0)
            nechos = atoi(v);
        else if (strcmp(argv[i], "--churn") == 0)
            nchurn = atoi(v);
        else if (strcmp(argv[i], "--slow") == 0)
            nslow = atoi(v);
        else
            usage();
    }
    if (port <= 0 || seconds <= 0 || nechos < 0 || nchurn < 0 || nslow < 0 || nchurn > 64)
        usage();
    pthread_t echo_th, slow_th, churn_th[64];
    if (nechos > 0)
        pthread_create(&echo_th, NULL, echo_main, &nechos);
    if (nslow > 0)
        pthread_create(&slow_th, NULL, slow_main, &nslow);
    for (int i = 0; i < nchurn; i++)
        pthread_create(&churn_th[i], NULL, churn_main, NULL);
    int64_t start = now_ms(), end = start + (int64_t)seconds * 1000;
    int64_t next = start + 10000;
    while (now_ms() < end) {
        usleep(50000);
        if (now_ms() >= next) {
            next += 10000;
            printf("client t=%llds: echo lines %ld (errors %ld), churn cycles %ld (errors %ld), "
                   "slow bytes %ld, slow peers cut %ld\n",
                   (long long)(now_ms() - start) / 1000, atomic_load(&echo_lines),
                   atomic_load(&echo_errors), atomic_load(&churn_cycles),
                   atomic_load(&churn_errors), atomic_load(&slow_bytes), atomic_load(&slow_cut));
            fflush(stdout);
        }
    }
    atomic_store(&done, true);
    if (nechos > 0)
        pthread_join(echo_th, NULL);
    if (nslow > 0)
        pthread_join(slow_th, NULL);
    for (int i = 0; i < nchurn; i++)
        pthread_join(churn_th[i], NULL);
    printf("client summary: %d s; echo lines %ld (errors %ld); churn cycles %ld (errors %ld); "
           "slow bytes %ld, slow peers closed by the server %ld\n",
           seconds, atomic_load(&echo_lines), atomic_load(&echo_errors), atomic_load(&churn_cycles),
           atomic_load(&churn_errors), atomic_load(&slow_bytes), atomic_load(&slow_cut));
    return atomic_load(&echo_errors) == 0 && atomic_load(&churn_errors) == 0 ? 0 : 1;
}
