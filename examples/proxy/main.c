/* weft-proxy: accepts connections and pipes each to a backend, both ways, with backpressure.
 *
 *   weft-proxy --listen tcp://127.0.0.1:9001 --backend tcp://127.0.0.1:9000 --loops 2
 *
 * SIGINT/SIGTERM stop it cleanly; SIGUSR1 prints what it did to stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example.h"
#include "proxy.h"

static void print_stats(weft_engine *e, void *arg)
{
    proxy_state *ps = arg;
    weft_stats s;
    weft_engine_get_stats(e, &s, NULL);
    fprintf(stderr,
            "pairs %llu (live %llu), dial failures %llu, pauses %llu; connections %llu, "
            "bytes in %llu, out %llu, buffered %llu\n",
            (unsigned long long)atomic_load(&ps->pairs),
            (unsigned long long)atomic_load(&ps->live_pairs),
            (unsigned long long)atomic_load(&ps->dial_failures),
            (unsigned long long)atomic_load(&ps->pauses), (unsigned long long)s.total.live,
            (unsigned long long)s.total.bytes_in, (unsigned long long)s.total.bytes_out,
            (unsigned long long)s.total.buffer_bytes);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: weft-proxy --backend URL [--listen URL]... [--loops N] [--mark KIB]\n"
               "  --listen URL   where clients connect: tcp://host:port or unix:///path\n"
               "                 (default tcp://127.0.0.1:9001)\n"
               "  --backend URL  where each client is piped to: tcp://host:port or unix:///path\n"
               "  --loops N      event loops; 0 = one per CPU (default 1)\n"
               "  --mark KIB     bytes queued toward one end that pause reading the other "
               "(default 256)\n"
               "  --connect-timeout-ms MS   backend dial timeout (default 5000)\n");
    fputs(EXAMPLE_STOP_HELP, f);
}

int main(int argc, char **argv)
{
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.loops = 1;
    proxy_state ps;
    memset(&ps, 0, sizeof(ps));
    proxy_options_init(&ps.opt);
    size_t nlisten = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--listen") == 0 && v != NULL && nlisten < WEFT_LISTEN_MAX) {
            cfg.listen[nlisten++] = v;
            i++;
        } else if (strcmp(a, "--backend") == 0 && v != NULL) {
            ps.opt.backend = v;
            i++;
        } else if (strcmp(a, "--loops") == 0 && v != NULL) {
            cfg.loops = (unsigned)strtoul(v, NULL, 10);
            i++;
        } else if (strcmp(a, "--mark") == 0 && v != NULL) {
            ps.opt.high_mark = (size_t)strtoul(v, NULL, 10) * 1024u;
            i++;
        } else if (strcmp(a, "--connect-timeout-ms") == 0 && v != NULL) {
            ps.opt.connect_timeout_ms = (unsigned)strtoul(v, NULL, 10);
            i++;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (ps.opt.backend == NULL) {
        usage(stderr);
        return 2;
    }
    if (nlisten == 0)
        cfg.listen[0] = "tcp://127.0.0.1:9001";
    if (proxy_configure(&cfg, &ps) != 0) {
        usage(stderr);
        return 2;
    }

    return example_serve(&cfg, "weft-proxy", print_stats, &ps);
}
