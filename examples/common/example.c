#include "example.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#ifdef _WIN32
#define WIN32_LEAN_AND_MEAN
#include <windows.h> /* after weft.h's Winsock headers, as Winsock wants */
#else
#include <netdb.h>
#include <unistd.h>
#endif

#ifdef _WIN32
/* Windows has neither sigwait nor SIGUSR1: Ctrl+C, Ctrl+Break or the console closing stop
 * the engine (weft_engine_wait_signals), and there are no statistics on demand. */
int example_serve(const weft_config *cfg, const char *name, example_stats_cb stats, void *arg)
{
    (void)stats;
    (void)arg;
    weft_engine *e;
    int rc = weft_engine_start(cfg, &e);
    if (rc != 0) {
        fprintf(stderr, "%s: %s\n", name, weft_strerror(rc));
        return 1;
    }
    rc = weft_engine_wait_signals(e);
    return rc < 0 ? 1 : 0;
}
#else
int example_serve(const weft_config *cfg, const char *name, example_stats_cb stats, void *arg)
{
    /* The engine sends with MSG_NOSIGNAL; this covers whatever else the example writes to. */
    signal(SIGPIPE, SIG_IGN);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (stats != NULL)
        sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    weft_engine *e;
    int rc = weft_engine_start(cfg, &e);
    if (rc != 0) {
        fprintf(stderr, "%s: %s\n", name, weft_strerror(rc));
        return 1;
    }
    for (;;) {
        int sig;
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig != SIGUSR1)
            break;
        stats(e, arg);
    }
    weft_engine_stop(e);
    weft_engine_wait(e);
    return 0;
}
#endif

int example_parse_lb(const char *s, weft_lb_kind *out)
{
    static const struct {
        const char *name;
        weft_lb_kind kind;
    } names[] = {{"rr", WEFT_LB_ROUND_ROBIN},
                 {"lc", WEFT_LB_LEAST_CONNECTIONS},
                 {"ch", WEFT_LB_CONSISTENT_HASH},
                 {"random", WEFT_LB_RANDOM}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(s, names[i].name) == 0) {
            *out = names[i].kind;
            return 0;
        }
    }
    return -1;
}

#ifdef _WIN32
unsigned example_cpu_count(void)
{
    SYSTEM_INFO si;
    GetSystemInfo(&si);
    return si.dwNumberOfProcessors > 0 ? (unsigned)si.dwNumberOfProcessors : 1;
}
#else
unsigned example_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}
#endif

void example_peer_name(weft_conn *conn, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char host[NI_MAXHOST], port[NI_MAXSERV];

    snprintf(buf, len, "?");
    if (weft_conn_get_peer_addr(conn, &ss, &sl) != 0)
        return;
    if (ss.ss_family == AF_UNIX) {
        snprintf(buf, len, "unix");
        return;
    }
    if (getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), port, sizeof(port),
                    NI_NUMERICHOST | NI_NUMERICSERV) == 0)
        snprintf(buf, len, ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, port);
}
