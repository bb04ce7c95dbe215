/* weft-lfclient: a client for `weft-echo --codec length-field`, in plain sockets.
 *
 *   weft-lfclient --addr tcp://127.0.0.1:9000 --frames 1000 --size 0,64,65536
 *
 * The two ends agree on the framing and nothing else: every frame is a 4-byte big-endian
 * payload length followed by the payload. The server says so in its config
 * (WEFT_CODEC_LENGTH_FIELD, length_field_length 4, initial_bytes_to_strip 4), so its
 * on_traffic sees bare payloads and weft_conn_write_frame puts the length back; this client
 * writes and parses the same 4 bytes by hand. It needs nothing from weft to talk to it.
 *
 * Frames go one at a time: send one, read its echo, check it byte for byte, then the next.
 * Their sizes cycle through the --size list; each payload depends on its frame number, so a
 * lost, reordered or altered frame is caught. Prints one summary line; exits 0 when every
 * echo was intact, 1 on a mismatch or an I/O error, 2 on bad arguments.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tcp_client.h"

#define MAX_SIZES  64
#define TIMEOUT_S  10
#define MAX_LENGTH UINT32_MAX /* what 4 bytes can say; the server's max_frame_length is lower */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: weft-lfclient [--addr tcp://HOST:PORT] [--frames N] [--size BYTES[,BYTES...]]\n"
            "  --addr   the server (default tcp://127.0.0.1:9000)\n"
            "  --frames frames to send (default 1000)\n"
            "  --size   payload bytes per frame; a list is cycled (default 64). weft-echo takes\n"
            "           frames up to 4 MiB, length field included\n"
            "Talks to: weft-echo --codec length-field\n");
}

/* Splits "tcp://host:port" or "tcp://[v6]:port" into host and port. */
static int parse_addr(const char *url, char *host, size_t hostlen, char *port, size_t portlen)
{
    const char *p = url;
    if (strncmp(p, "tcp://", 6) == 0)
        p += 6;
    const char *colon;
    const char *h = p;
    size_t hl;
    if (*p == '[') {
        const char *close = strchr(p, ']');
        if (close == NULL || close[1] != ':')
            return -1;
        h = p + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(p, ':');
        if (colon == NULL)
            return -1;
        hl = (size_t)(colon - p);
    }
    if (hl == 0 || hl >= hostlen || strlen(colon + 1) == 0 || strlen(colon + 1) >= portlen)
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    strcpy(port, colon + 1);
    return 0;
}

static int parse_sizes(const char *s, size_t *sizes, size_t *n)
{
    *n = 0;
    while (*s != '\0') {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (end == s || errno != 0 || v > MAX_LENGTH || *n == MAX_SIZES || *s == '-')
            return -1;
        sizes[(*n)++] = (size_t)v;
        if (*end == ',')
            end++;
        else if (*end != '\0')
            return -1;
        s = end;
    }
    return *n > 0 ? 0 : -1;
}

/* The payload of frame i: a pattern that differs from frame to frame. */
static void fill(uint8_t *p, size_t n, uint64_t i)
{
    uint32_t x = (uint32_t)(i * 2654435761u) ^ 0x9e3779b9u;
    for (size_t k = 0; k < n; k++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[k] = (uint8_t)x;
    }
}

int main(int argc, char **argv)
{
    const char *addr = "tcp://127.0.0.1:9000";
    unsigned long long frames = 1000;
    size_t sizes[MAX_SIZES] = {64};
    size_t nsizes = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end;
        if (strcmp(a, "--addr") == 0 && v != NULL) {
            addr = v;
            i++;
        } else if (strcmp(a, "--frames") == 0 && v != NULL && *v != '-') {
            frames = strtoull(v, &end, 10);
            if (end == v || *end != '\0') {
                usage(stderr);
                return 2;
            }
            i++;
        } else if (strcmp(a, "--size") == 0 && v != NULL && parse_sizes(v, sizes, &nsizes) == 0) {
            i++;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    char host[256], port[32];
    if (parse_addr(addr, host, sizeof(host), port, sizeof(port)) != 0) {
        fprintf(stderr, "weft-lfclient: bad address \"%s\" (want tcp://HOST:PORT)\n", addr);
        return 2;
    }

    size_t biggest = 0;
    for (size_t k = 0; k < nsizes; k++)
        biggest = sizes[k] > biggest ? sizes[k] : biggest;
    uint8_t *out = malloc(biggest ? biggest : 1);
    uint8_t *in = malloc(biggest ? biggest : 1);
    if (out == NULL || in == NULL) {
        fprintf(stderr, "weft-lfclient: out of memory for %zu-byte frames\n", biggest);
        return 1;
    }
    char why[256];
    example_tcp *t = example_tcp_dial(host, port, TIMEOUT_S, why, sizeof(why));
    if (t == NULL) {
        fprintf(stderr, "weft-lfclient: %s\n", why);
        return 1;
    }

    int status = 0;
    unsigned long long done = 0, bytes = 0;
    double start = example_now_s();
    for (; done < frames; done++) {
        size_t len = sizes[done % nsizes];
        fill(out, len, done);
        /* The framing both ends agree on: 4 bytes, big-endian, the payload's length. */
        uint8_t head[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
                           (uint8_t)len};
        /* Header and payload as one write where the system allows. */
        if (example_tcp_send2(t, head, 4, out, len) != 0) {
            fprintf(stderr, "weft-lfclient: frame %llu: send: %s\n", done, example_tcp_error(t));
            status = 1;
            break;
        }
        uint8_t back[4];
        int rc = example_tcp_recv_exact(t, back, 4);
        if (rc != 0) {
            fprintf(stderr, "weft-lfclient: frame %llu: no answer: %s\n", done,
                    rc > 0 ? "the server closed the connection" : example_tcp_error(t));
            status = 1;
            break;
        }
        uint32_t echoed = (uint32_t)back[0] << 24 | (uint32_t)back[1] << 16 |
                          (uint32_t)back[2] << 8 | (uint32_t)back[3];
        if (echoed != len) {
            fprintf(stderr, "weft-lfclient: frame %llu: sent %zu bytes, the echo says %u\n", done,
                    len, echoed);
            status = 1;
            break;
        }
        if ((rc = example_tcp_recv_exact(t, in, len)) != 0) {
            fprintf(stderr, "weft-lfclient: frame %llu: echo cut short: %s\n", done,
                    rc > 0 ? "the server closed the connection" : example_tcp_error(t));
            status = 1;
            break;
        }
        if (len > 0 && memcmp(in, out, len) != 0) {
            size_t at = 0;
            while (in[at] == out[at])
                at++;
            fprintf(stderr, "weft-lfclient: frame %llu: echo differs at byte %zu of %zu\n", done,
                    at, len);
            status = 1;
            break;
        }
        bytes += len;
    }
    double secs = example_now_s() - start;
    example_tcp_close(t);
    free(out);
    free(in);

    if (secs <= 0)
        secs = 1e-9;
    printf("weft-lfclient: %s: %llu/%llu frames echoed intact, %llu payload bytes, %.1f ms, "
           "%.0f frames/s%s\n",
           addr, done, frames, bytes, secs * 1e3, (double)done / secs,
           status == 0 ? "" : " (FAILED)");
    return status;
}
