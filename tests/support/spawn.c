#include "spawn.h"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

int wt_spawn_ready(const char *path, const char *const *args, int err_fd, pid_t *pid, char *line,
                   size_t cap, int timeout_ms)
{
    int fds[2];
    size_t n = 0;
    int rc = 0;
    *pid = -1;
    if (cap == 0 || pipe(fds) != 0)
        return -1;
    *pid = fork();
    if (*pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (*pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        if (err_fd >= 0)
            dup2(err_fd, STDERR_FILENO);
        close(fds[0]);
        close(fds[1]);
        execv(path, (char *const *)args);
        _exit(127);
    }
    close(fds[1]);
    while (n < cap - 1) {
        struct pollfd p = {.fd = fds[0], .events = POLLIN};
        if (poll(&p, 1, timeout_ms) != 1 || read(fds[0], line + n, 1) != 1) {
            rc = -1;
            break;
        }
        if (line[n++] == '\n')
            break;
    }
    line[n] = '\0';
    close(fds[0]);
    return rc;
}

void wt_spawn_kill(pid_t *pid)
{
    if (*pid > 0) {
        kill(*pid, SIGKILL);
        waitpid(*pid, NULL, 0);
        *pid = 0;
    }
}
