/* weft-echo: sends every byte back. The smallest complete weft server.
 *
 *   weft-echo --addr tcp://127.0.0.1:9000 --loops 2 [--reuseport] [--lb rr|lc|ch|random]
 *             [--codec none|line|length-field] [--tls-cert FILE --tls-key FILE]
 *
 * With a codec it echoes whole frames: each decoded frame is framed again by the same codec
 * (a line gets its "\n" back, a length-field frame its 4-byte big-endian length).
 *
 * SIGINT/SIGTERM stop it cleanly; SIGUSR1 prints the engine's statistics to stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weft/weft.h>

#include "example.h"

static weft_action on_traffic(weft_conn *c)
{
    const uint8_t *p;
    int n = weft_conn_peek(c, 0, &p);
    if (n > 0 && weft_conn_write(c, p, (size_t)n) == 0)
        weft_conn_discard(c, (size_t)n);
    return WEFT_ACTION_NONE;
}

static weft_action on_frames(weft_conn *c)
{
    const uint8_t *f;
    size_t len;
    int rc;
    while ((rc = weft_conn_next_frame(c, &f, &len)) == 1) {
        if (weft_conn_write_frame(c, f, len) != 0)
            break;
    }
    return WEFT_ACTION_NONE;
}

static void print_stats(weft_engine *e, void *arg)
{
    (void)arg;
    unsigned n = weft_engine_get_loop_count(e);
    weft_loop_stats *per = calloc(n, sizeof(*per));
    weft_stats s;
    if (per == NULL || weft_engine_get_stats(e, &s, per) != 0) {
        free(per);
        return;
    }
    fprintf(stderr, "%-6s %8s %10s %10s %14s %14s %8s %10s %10s\n", "loop", "live", "accepted",
            "closed", "bytes_in", "bytes_out", "pauses", "sleeps", "zc_sends");
    for (unsigned i = 0; i <= n; i++) {
        const weft_loop_stats *l = i < n ? &per[i] : &s.total;
        char name[16];
        snprintf(name, sizeof(name), i < n ? "%u" : "total", i);
        fprintf(stderr, "%-6s %8llu %10llu %10llu %14llu %14llu %8llu %10llu %10llu\n", name,
                (unsigned long long)l->live, (unsigned long long)l->accepted,
                (unsigned long long)l->closed, (unsigned long long)l->bytes_in,
                (unsigned long long)l->bytes_out, (unsigned long long)l->backpressure_pauses,
                (unsigned long long)l->sleeps, (unsigned long long)l->zerocopy_sends);
    }
    free(per);
}

static int parse_codec(const char *s, weft_config *cfg)
{
    if (strcmp(s, "none") == 0) {
        cfg->codec.kind = WEFT_CODEC_NONE;
    } else if (strcmp(s, "line") == 0) {
        cfg->codec.kind = WEFT_CODEC_LINE;
        cfg->codec.line.max_length = 1u << 20;
    } else if (strcmp(s, "length-field") == 0) {
        /* A 4-byte big-endian length before each payload, stripped on decode and put back
         * by the encoder. */
        cfg->codec.kind = WEFT_CODEC_LENGTH_FIELD;
        cfg->codec.length_field.length_field_length = 4;
        cfg->codec.length_field.initial_bytes_to_strip = 4;
        cfg->codec.length_field.max_frame_length = 4u << 20;
    } else {
        return -1;
    }
    cfg->handler.on_traffic = cfg->codec.kind == WEFT_CODEC_NONE ? on_traffic : on_frames;
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: weft-echo [--addr URL]... [--loops N] [--reuseport] "
               "[--lb rr|lc|ch|random] [--codec none|line|length-field]\n"
               "  --addr URL   tcp://host:port or unix:///path (default tcp://127.0.0.1:9000)\n"
               "  --loops N    event loops; 0 = one per CPU (default 1)\n"
               "  --reuseport  one SO_REUSEPORT listener per loop\n"
               "  --lb NAME    balancer: round-robin, least-connections, consistent-hash, "
               "random\n"
               "  --codec NAME echo whole frames: none (raw bytes), line, length-field "
               "(4-byte big-endian length)\n"
               "  --idle-ms MS, --read-timeout-ms MS, --max-conns N   limits (0 = off)\n"
               "  --busy-poll US  poll this long before sleeping (default 0 = off)\n"
               "  --uring-zc-min BYTES  io_uring: sends of at least this many bytes go out\n"
               "               zero-copy (IORING_OP_SEND_ZC; default 0 = off)\n"
               "  --tls-cert FILE, --tls-key FILE  certificate (PEM chain) and key for the\n"
               "               tls:// addresses (--addr tls://127.0.0.1:9443)\n");
    fputs(EXAMPLE_STOP_HELP, f);
}

int main(int argc, char **argv)
{
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.loops = 1;
    cfg.handler.on_traffic = on_traffic;
    size_t naddr = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--addr") == 0 && v != NULL && naddr < WEFT_LISTEN_MAX) {
            cfg.listen[naddr++] = v;
            i++;
        } else if (strcmp(a, "--loops") == 0 && v != NULL) {
            cfg.loops = (unsigned)strtoul(v, NULL, 10);
            i++;
        } else if (strcmp(a, "--reuseport") == 0) {
            cfg.reuse_port = true;
        } else if (strcmp(a, "--lb") == 0 && v != NULL && example_parse_lb(v, &cfg.lb.kind) == 0) {
            i++;
        } else if (strcmp(a, "--idle-ms") == 0 && v != NULL) {
            cfg.idle_timeout_ms = (unsigned)strtoul(v, NULL, 10);
            i++;
        } else if (strcmp(a, "--read-timeout-ms") == 0 && v != NULL) {
            cfg.read_timeout_ms = (unsigned)strtoul(v, NULL, 10);
            i++;
        } else if (strcmp(a, "--max-conns") == 0 && v != NULL) {
            cfg.max_connections = (unsigned)strtoul(v, NULL, 10);
            i++;
        } else if (strcmp(a, "--busy-poll") == 0 && v != NULL) {
            cfg.busy_poll_us = (unsigned)strtoul(v, NULL, 10);
            i++;
        } else if (strcmp(a, "--uring-zc-min") == 0 && v != NULL) {
            cfg.uring_zc_min = (size_t)strtoull(v, NULL, 10);
            i++;
        } else if (strcmp(a, "--tls-cert") == 0 && v != NULL) {
            cfg.tls.cert_file = v;
            i++;
        } else if (strcmp(a, "--tls-key") == 0 && v != NULL) {
            cfg.tls.key_file = v;
            i++;
        } else if (strcmp(a, "--codec") == 0 && v != NULL && parse_codec(v, &cfg) == 0) {
            i++;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (naddr == 0)
        cfg.listen[0] = "tcp://127.0.0.1:9000";

    return example_serve(&cfg, "weft-echo", print_stats, NULL);
}
