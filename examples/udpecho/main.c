/* weft-udpecho: sends every datagram back to its sender, unchanged.
 *
 *   weft-udpecho --addr udp://127.0.0.1:9002 --loops 2
 *
 * Each loop has its own SO_REUSEPORT socket on the address and the kernel spreads senders
 * over them (Windows has no SO_REUSEPORT: one socket, served by loop 0). unixgram:///path
 * works too (served by loop 0), except on Windows. A datagram larger than the read
 * buffer (--rbuf, default 64 KiB) is dropped and counted.
 *
 * SIGINT/SIGTERM stop it cleanly; SIGUSR1 prints datagram counts to stderr.
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
    if (n >= 0)
        (void)weft_conn_write(c, p, (size_t)n); /* a full socket buffer drops the reply */
    return WEFT_ACTION_NONE;
}

static void print_stats(weft_engine *e, void *arg)
{
    (void)arg;
    weft_stats s;
    weft_engine_get_stats(e, &s, NULL);
    fprintf(stderr, "datagrams in %llu, out %llu, dropped %llu; bytes in %llu, out %llu\n",
            (unsigned long long)s.total.datagrams_in, (unsigned long long)s.total.datagrams_out,
            (unsigned long long)s.total.datagrams_dropped, (unsigned long long)s.total.bytes_in,
            (unsigned long long)s.total.bytes_out);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: weft-udpecho [--addr URL]... [--loops N] [--rbuf BYTES]\n"
               "  --addr URL    udp://host:port or unixgram:///path (default "
               "udp://127.0.0.1:9002)\n"
               "  --loops N     event loops; 0 = one per CPU (default 1)\n"
               "  --rbuf BYTES  read buffer per loop: the largest datagram taken (default "
               "65536)\n");
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
        } else if (strcmp(a, "--rbuf") == 0 && v != NULL) {
            cfg.read_buffer_size = (size_t)strtoul(v, NULL, 10);
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
        cfg.listen[0] = "udp://127.0.0.1:9002";

    return example_serve(&cfg, "weft-udpecho", print_stats, NULL);
}
