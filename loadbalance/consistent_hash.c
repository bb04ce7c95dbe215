/* weft — consistent hash: one client address always lands on the same loop.
 *
 * Each loop owns cfg->vnodes points on a 64-bit ring; a point is the XXH3 hash of
 * (loop, replica), so it depends on nothing else and a loop added later only adds points.
 * A peer is hashed with XXH3 (seeded with cfg->seed) over its IP bytes, plus the port when
 * cfg->hash_port is set, and goes to the owner of the first point at or after its hash,
 * wrapping round; the ring is sorted once at create and searched by bisection.
 *
 * An IPv4-mapped IPv6 peer (::ffff:a.b.c.d, what a dual-stack listener reports) hashes as
 * the IPv4 address it carries, so a client lands on the same loop whichever way it came in.
 * A peer with no IP address (NULL, a Unix socket) cannot be placed and goes round-robin.
 */
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "weft/balancer.h"

typedef struct ch_point {
    uint64_t hash;
    uint32_t loop;
} ch_point;

typedef struct ch_state {
    ch_point *ring;
    size_t npoints;
    size_t nloops;
    size_t next; /* round-robin cursor for peers without an IP address */
    uint64_t seed;
    bool hash_port;
} ch_state;

static void put_le32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

/* The ring point of one virtual node. The bytes are spelled out little-endian so the ring,
 * and with it every client's loop, is the same on every host. */
static uint64_t vnode_hash(uint32_t loop, uint32_t replica, uint64_t seed)
{
    unsigned char key[8];
    put_le32(key, loop);
    put_le32(key + 4, replica);
    return XXH3_64bits_withSeed(key, sizeof(key), seed);
}

static int point_cmp(const void *a, const void *b)
{
    const ch_point *x = a;
    const ch_point *y = b;
    if (x->hash != y->hash)
        return x->hash < y->hash ? -1 : 1;
    /* Equal points (vanishingly rare) still sort the same way on every run. */
    return (x->loop > y->loop) - (x->loop < y->loop);
}

static int ch_create(const weft_lb_config *cfg, size_t nloops, void **state)
{
    if (cfg->vnodes == 0 || nloops > UINT32_MAX)
        return WEFT_EINVAL;
    if (nloops > SIZE_MAX / sizeof(ch_point) / cfg->vnodes)
        return WEFT_ENOMEM;

    ch_state *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return WEFT_ENOMEM;
    s->npoints = nloops * cfg->vnodes;
    s->ring = malloc(s->npoints * sizeof(ch_point));
    if (s->ring == NULL) {
        free(s);
        return WEFT_ENOMEM;
    }
    s->nloops = nloops;
    s->seed = cfg->seed;
    s->hash_port = cfg->hash_port;

    size_t i = 0;
    for (uint32_t loop = 0; loop < nloops; loop++) {
        for (uint32_t r = 0; r < cfg->vnodes; r++) {
            s->ring[i].hash = vnode_hash(loop, r, cfg->seed);
            s->ring[i].loop = loop;
            i++;
        }
    }
    qsort(s->ring, s->npoints, sizeof(ch_point), point_cmp);
    *state = s;
    return 0;
}

static void ch_destroy(void *state)
{
    ch_state *s = state;
    if (s == NULL)
        return;
    free(s->ring);
    free(s);
}

/* Writes the bytes that identify the peer into key (at most 18) and returns how many, or 0
 * when the peer has no IP address. The structs are copied out because a struct sockaddr
 * pointer promises neither the alignment nor the type of the storage behind it. */
static size_t peer_key(const struct sockaddr *peer, socklen_t peer_len, bool with_port,
                       unsigned char key[18])
{
    static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    const unsigned char *addr;
    size_t addr_len;
    uint16_t port; /* in_port_t: network order, 16 bits everywhere (u_short on Windows) */
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
    struct sockaddr head; /* for its sa_family (sa_family_t; ADDRESS_FAMILY on Windows) */

    if (peer == NULL || peer_len < (socklen_t)sizeof(head.sa_family))
        return 0;
    memcpy(&head.sa_family, (const char *)peer + offsetof(struct sockaddr, sa_family),
           sizeof(head.sa_family));
    int family = head.sa_family;

    if (family == AF_INET && peer_len >= (socklen_t)sizeof(in4)) {
        memcpy(&in4, peer, sizeof(in4));
        addr = (const unsigned char *)&in4.sin_addr;
        addr_len = 4;
        port = in4.sin_port;
    } else if (family == AF_INET6 && peer_len >= (socklen_t)sizeof(in6)) {
        memcpy(&in6, peer, sizeof(in6));
        addr = in6.sin6_addr.s6_addr;
        addr_len = 16;
        if (memcmp(addr, v4mapped, sizeof(v4mapped)) == 0) {
            addr += sizeof(v4mapped);
            addr_len = 4;
        }
        port = in6.sin6_port;
    } else {
        return 0;
    }

    memcpy(key, addr, addr_len);
    if (!with_port)
        return addr_len;
    memcpy(key + addr_len, &port, sizeof(port)); /* network byte order: host-independent */
    return addr_len + sizeof(port);
}

static size_t ch_pick(void *state, const struct sockaddr *peer, socklen_t peer_len,
                      const weft_lb_view *view)
{
    (void)view;
    ch_state *s = state;
    unsigned char key[18];
    size_t key_len = peer_key(peer, peer_len, s->hash_port, key);
    if (key_len == 0) {
        size_t k = s->next;
        s->next = k + 1 == s->nloops ? 0 : k + 1;
        return k;
    }

    uint64_t h = XXH3_64bits_withSeed(key, key_len, s->seed);
    /* First point with hash >= h; past the last point wraps to the first. The bisection has
     * no data-dependent branch (the compiler makes the select a cmov): the hash is random,
     * so a branch on it would be mispredicted half the time at every step. */
    const ch_point *base = s->ring;
    size_t n = s->npoints;
    while (n > 1) {
        size_t half = n / 2;
        base = base[half - 1].hash < h ? base + half : base;
        n -= half;
    }
    size_t i = (size_t)(base - s->ring) + (base->hash < h);
    return s->ring[i == s->npoints ? 0 : i].loop;
}

const weft_balancer_vtable weft_lb_consistent_hash = {
    .name = "consistent-hash",
    .flags = 0,
    .create = ch_create,
    .destroy = ch_destroy,
    .pick = ch_pick,
    .on_open = NULL,
    .on_close = NULL,
};
