/* The stop signal a test sends itself; see stop_signal.h. */
#include "stop_signal.h"

#ifdef _WIN32
#include <windows.h>

void wt_stop_signal_block(void)
{
}

void wt_stop_signal_unblock(void)
{
}

int wt_stop_signal_send(void)
{
    /* Group 0: every process on this console. A test run with its output on pipes may
     * have no console yet: it gets one of its own. */
    if (GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, 0))
        return 0;
    return AllocConsole() && GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, 0) ? 0 : -1;
}
#else
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

static sigset_t saved;

void wt_stop_signal_block(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, &saved);
}

void wt_stop_signal_unblock(void)
{
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
}

int wt_stop_signal_send(void)
{
    return kill(getpid(), SIGTERM);
}
#endif
