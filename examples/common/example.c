#include "example.h"

#include <signal.h>
#include <stdio.h>

int example_serve(const weft_config *cfg, const char *name, example_stats_cb stats, void *arg)
{
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
