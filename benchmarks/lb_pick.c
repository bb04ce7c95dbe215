/* lb_pick — what one pick costs, per balancer, for IPv4 and IPv6 peers.
 *
 * Usage: lb_pick [nloops]   (default 8)
 *
 * Each row runs the public weft_balancer_pick, the call the acceptor makes, over 4,096
 * distinct peers for about 150 ms and reports nanoseconds per pick and the ratio to
 * round-robin. The live counts are updated after every pick for every balancer alike, so
 * least-connections sees moving counts and the bookkeeping cost is the same in each row.
 */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "weft/balancer.h"

#define NPEERS    4096
#define MAX_LOOPS 1024
#define ROW_NS    150000000.0

typedef struct row {
    const char *label;
    weft_lb_kind kind;
    unsigned vnodes;
    bool hash_port;
} row;

static struct sockaddr_in peers4[NPEERS];
static struct sockaddr_in6 peers6[NPEERS];
static uint64_t live[MAX_LOOPS];
static volatile size_t sink;

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void make_peers(void)
{
    uint64_t x = 1;
    for (size_t i = 0; i < NPEERS; i++) {
        uint64_t a = splitmix(&x);
        uint64_t b = splitmix(&x);
        peers4[i].sin_family = AF_INET;
        peers4[i].sin_port = (in_port_t)a;
        memcpy(&peers4[i].sin_addr, &b, 4);
        peers6[i].sin6_family = AF_INET6;
        peers6[i].sin6_port = (in_port_t)a;
        memcpy(peers6[i].sin6_addr.s6_addr, &a, 8);
        memcpy(peers6[i].sin6_addr.s6_addr + 8, &b, 8);
        peers6[i].sin6_addr.s6_addr[0] = 0x20; /* global unicast, never v4-mapped */
    }
}

/* Nanoseconds per pick, or a negative WEFT_E* code if the balancer cannot be made. */
static double measure(const row *r, size_t nloops, bool six)
{
    weft_lb_config cfg;
    weft_lb_config_init(&cfg);
    cfg.kind = r->kind;
    cfg.seed = 1;
    cfg.hash_port = r->hash_port;
    if (r->vnodes != 0)
        cfg.vnodes = r->vnodes;
    weft_balancer *b = NULL;
    int rc = weft_balancer_create(&cfg, nloops, &b);
    if (rc < 0)
        return rc;

    memset(live, 0, sizeof(live));
    weft_lb_view view = {nloops, weft_balancer_needs_live(b) ? live : NULL};
    const struct sockaddr *base =
        six ? (const struct sockaddr *)peers6 : (const struct sockaddr *)peers4;
    size_t stride = six ? sizeof(peers6[0]) : sizeof(peers4[0]);
    socklen_t len = (socklen_t)stride;

    size_t acc = 0;
    for (size_t i = 0; i < NPEERS; i++) /* warm the caches and the branch predictor */
        acc += weft_balancer_pick(b, (const struct sockaddr *)((const char *)base + i * stride),
                                  len, &view);

    uint64_t picks = 0;
    double start = now_ns();
    double elapsed;
    do {
        for (size_t i = 0; i < NPEERS; i++) {
            const struct sockaddr *p = (const struct sockaddr *)((const char *)base + i * stride);
            size_t k = weft_balancer_pick(b, p, len, &view);
            live[k]++;
            acc += k;
        }
        picks += NPEERS;
        elapsed = now_ns() - start;
    } while (elapsed < ROW_NS);
    sink = acc;
    weft_balancer_destroy(b);
    return elapsed / (double)picks;
}

int main(int argc, char **argv)
{
    size_t nloops = 8;
    if (argc > 1) {
        long n = strtol(argv[1], NULL, 10);
        if (n < 1 || n > MAX_LOOPS) {
            fprintf(stderr, "usage: %s [nloops 1..%d]\n", argv[0], MAX_LOOPS);
            return 2;
        }
        nloops = (size_t)n;
    }
    static const row rows[] = {
        {"round-robin", WEFT_LB_ROUND_ROBIN, 0, false},
        {"least-connections", WEFT_LB_LEAST_CONNECTIONS, 0, false},
        {"consistent-hash", WEFT_LB_CONSISTENT_HASH, 0, false},
        {"consistent-hash +port", WEFT_LB_CONSISTENT_HASH, 0, true},
        {"consistent-hash 640vn", WEFT_LB_CONSISTENT_HASH, 640, false},
        {"random", WEFT_LB_RANDOM, 0, false},
    };
    const size_t nrows = sizeof(rows) / sizeof(rows[0]);

    make_peers();
    printf("pick cost, %zu loops, %d distinct peers, ns per pick (ratio to round-robin)\n\n",
           nloops, NPEERS);
    printf("| %-22s | %14s | %14s |\n", "balancer", "IPv4", "IPv6");
    printf("|------------------------|----------------|----------------|\n");
    double rr[2] = {0, 0};
    for (size_t i = 0; i < nrows; i++) {
        double ns[2];
        for (int six = 0; six <= 1; six++) {
            ns[six] = measure(&rows[i], nloops, six);
            if (ns[six] < 0) {
                fprintf(stderr, "%s: cannot create: %d\n", rows[i].label, (int)ns[six]);
                return 1;
            }
            if (i == 0)
                rr[six] = ns[six];
        }
        printf("| %-22s | %5.1f (%5.2fx) | %5.1f (%5.2fx) |\n", rows[i].label, ns[0], ns[0] / rr[0],
               ns[1], ns[1] / rr[1]);
    }
    return 0;
}
