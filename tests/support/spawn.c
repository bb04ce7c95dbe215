/* Child processes and shell commands for the tests; see spawn.h. */
#include "spawn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHELL_OUT_MAX (1 << 20)

#ifdef _WIN32
#include <windows.h>
#include <psapi.h>

/* Appends arg to the command line at *p (room up to end) quoted as CommandLineToArgvW and
 * the CRT read it back: in double quotes when it has a blank or a quote, a quote escaped,
 * the backslashes before a quote (or the closing one) doubled. */
static bool quote_arg(wchar_t **p, const wchar_t *end, const wchar_t *arg)
{
    bool plain = arg[0] != L'\0' && wcspbrk(arg, L" \t\"") == NULL;
    wchar_t *o = *p;
#define PUT(ch)           \
    do {                  \
        if (o >= end)     \
            return false; \
        *o++ = (ch);      \
    } while (0)
    if (plain) {
        for (const wchar_t *a = arg; *a != L'\0'; a++)
            PUT(*a);
    } else {
        PUT(L'"');
        for (const wchar_t *a = arg;; a++) {
            size_t slashes = 0;
            while (*a == L'\\') {
                slashes++;
                a++;
            }
            if (*a == L'\0' || *a == L'"') {
                for (size_t i = 0; i < slashes * 2; i++)
                    PUT(L'\\');
                if (*a == L'\0')
                    break;
                PUT(L'\\');
                PUT(L'"');
            } else {
                for (size_t i = 0; i < slashes; i++)
                    PUT(L'\\');
                PUT(*a);
            }
        }
        PUT(L'"');
    }
#undef PUT
    *p = o;
    return true;
}

/* UTF-8 to a malloc'd wide string, or NULL. */
static wchar_t *widen(const char *s)
{
    int n = MultiByteToWideChar(CP_UTF8, 0, s, -1, NULL, 0);
    wchar_t *w = n > 0 ? malloc((size_t)n * sizeof(wchar_t)) : NULL;
    if (w != NULL && MultiByteToWideChar(CP_UTF8, 0, s, -1, w, n) != n) {
        free(w);
        w = NULL;
    }
    return w;
}

/* args joined into one command line (malloc'd), or NULL. */
static wchar_t *command_line(const char *const *args)
{
    size_t cap = 2; /* the terminator, and one to spare */
    for (const char *const *a = args; *a != NULL; a++)
        cap += strlen(*a) * 2 + 3;
    wchar_t *line = malloc(cap * sizeof(wchar_t)), *p = line, *end = line + cap - 1;
    if (line == NULL)
        return NULL;
    for (const char *const *a = args; *a != NULL; a++) {
        wchar_t *w = widen(*a);
        if (a != args)
            *p++ = L' ';
        bool ok = w != NULL && quote_arg(&p, end, w);
        free(w);
        if (!ok) {
            free(line);
            return NULL;
        }
    }
    *p = L'\0';
    return line;
}

/* A file in the temporary directory that nothing else has: its name in name. */
static bool temp_name(wchar_t *name)
{
    wchar_t dir[MAX_PATH];
    DWORD n = GetTempPathW(MAX_PATH, dir);
    return n > 0 && n < MAX_PATH && GetTempFileNameW(dir, L"wft", 0, name) != 0;
}

typedef char *(CDECL *unix_name_fn)(const wchar_t *);
typedef wchar_t *(CDECL *dos_name_fn)(const char *);

/* Wine's own conversions between its paths and Linux ones (kernel32), or NULL elsewhere. */
static unix_name_fn unix_name(void)
{
    return (unix_name_fn)(void (*)(void))GetProcAddress(GetModuleHandleA("kernel32.dll"),
                                                        "wine_get_unix_file_name");
}

static dos_name_fn dos_name(void)
{
    return (dos_name_fn)(void (*)(void))GetProcAddress(GetModuleHandleA("kernel32.dll"),
                                                       "wine_get_dos_file_name");
}

/* path as Windows names it: a Linux one (CMake's, for a test run under Wine) becomes Wine's
 * name for it. Malloc'd, or NULL. */
static wchar_t *windows_path(const char *path)
{
    dos_name_fn dos = path[0] == '/' ? dos_name() : NULL;
    wchar_t *w = dos != NULL ? dos(path) : NULL, *copy;
    if (w == NULL)
        return widen(path);
    copy = _wcsdup(w);
    HeapFree(GetProcessHeap(), 0, w);
    return copy;
}

/* A job that ends with this process: a child that a killed test (a ctest timeout) left
 * behind goes with it, rather than holding the test's output open. NULL where there is none. */
static HANDLE kill_on_close_job(void)
{
    static HANDLE job;
    if (job == NULL) {
        JOBOBJECT_EXTENDED_LIMIT_INFORMATION info;
        memset(&info, 0, sizeof(info));
        info.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
        job = CreateJobObjectW(NULL, NULL);
        if (job != NULL &&
            !SetInformationJobObject(job, JobObjectExtendedLimitInformation, &info, sizeof(info))) {
            CloseHandle(job);
            job = NULL;
        }
        if (job == NULL)
            job = INVALID_HANDLE_VALUE;
    }
    return job == INVALID_HANDLE_VALUE ? NULL : job;
}

int wt_child_start(wt_child *c, const char *path, const char *const *args, bool capture_log,
                   char *line, size_t cap, int timeout_ms)
{
    SECURITY_ATTRIBUTES inherit = {sizeof(inherit), NULL, TRUE};
    HANDLE rd = NULL, wr = NULL, err = GetStdHandle(STD_ERROR_HANDLE), child_log = NULL;
    STARTUPINFOW si;
    PROCESS_INFORMATION pi;
    wchar_t *cmd = command_line(args), *app = windows_path(path);
    int rc = -1;

    c->process = NULL;
    c->log = NULL;
    if (cap == 0 || cmd == NULL || app == NULL || !CreatePipe(&rd, &wr, &inherit, 0) ||
        !SetHandleInformation(rd, HANDLE_FLAG_INHERIT, 0))
        goto out;
    if (capture_log) {
        /* The child appends through a handle of its own; ours reads at offsets, and the file
         * goes when ours is closed. */
        wchar_t name[MAX_PATH];
        DWORD share = FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE;
        if (!temp_name(name))
            goto out;
        child_log = CreateFileW(name, FILE_APPEND_DATA | SYNCHRONIZE, share, &inherit,
                                OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL);
        c->log = CreateFileW(name, GENERIC_READ, share, NULL, OPEN_EXISTING,
                             FILE_FLAG_DELETE_ON_CLOSE, NULL);
        if (child_log == INVALID_HANDLE_VALUE || c->log == INVALID_HANDLE_VALUE) {
            if (c->log == INVALID_HANDLE_VALUE)
                DeleteFileW(name);
            child_log = child_log == INVALID_HANDLE_VALUE ? NULL : child_log;
            c->log = c->log == INVALID_HANDLE_VALUE ? NULL : c->log;
            goto out;
        }
        err = child_log;
    }
    memset(&si, 0, sizeof(si));
    si.cb = sizeof(si);
    si.dwFlags = STARTF_USESTDHANDLES;
    si.hStdInput = NULL;
    si.hStdOutput = wr;
    si.hStdError = err;
    /* A console of its own, which wt_child_stop attaches to for its Ctrl+C: an event reaches
     * only the processes of one console, and the test may have none (its output on pipes). */
    if (!CreateProcessW(app, cmd, NULL, NULL, TRUE, CREATE_NEW_CONSOLE, NULL, NULL, &si, &pi))
        goto out;
    CloseHandle(pi.hThread);
    c->process = pi.hProcess;
    if (kill_on_close_job() != NULL)
        (void)AssignProcessToJobObject(kill_on_close_job(), pi.hProcess);
    CloseHandle(wr);
    wr = NULL;

    size_t n = 0;
    rc = 0;
    while (n < cap - 1) {
        DWORD avail = 0, got = 0;
        int waited = 0;
        while (PeekNamedPipe(rd, NULL, 0, NULL, &avail, NULL) && avail == 0 &&
               waited < timeout_ms) {
            Sleep(5);
            waited += 5;
        }
        if (avail == 0 || !ReadFile(rd, line + n, 1, &got, NULL) || got != 1) {
            rc = -1;
            break;
        }
        if (line[n++] == '\n')
            break;
    }
    line[n] = '\0';
out:
    if (rc != 0 && cap > 0)
        line[0] = '\0';
    if (rd != NULL)
        CloseHandle(rd);
    if (wr != NULL)
        CloseHandle(wr);
    if (child_log != NULL)
        CloseHandle(child_log);
    free(cmd);
    free(app);
    return rc;
}

static bool has_log(const wt_child *c)
{
    return c->log != NULL;
}

/* Up to n bytes of c's captured stderr from offset off: the count, 0 at its end. */
static size_t log_read_at(const wt_child *c, char *p, size_t n, size_t off)
{
    OVERLAPPED at;
    DWORD got = 0;
    memset(&at, 0, sizeof(at));
    at.Offset = (DWORD)off;
    if (!ReadFile(c->log, p, n > MAXDWORD ? MAXDWORD : (DWORD)n, &got, &at))
        return 0;
    return got;
}

static void forget(wt_child *c)
{
    if (c->process != NULL)
        CloseHandle(c->process);
    if (c->log != NULL)
        CloseHandle(c->log);
    c->process = NULL;
    c->log = NULL;
}

/* Takes the Ctrl+C this process sends itself with its child's. A handler rather than
 * SetConsoleCtrlHandler(NULL, TRUE), whose "ignore Ctrl+C" the next child would inherit. */
static BOOL WINAPI swallow_ctrl_c(DWORD type)
{
    return type == CTRL_C_EVENT;
}

int wt_child_stop(wt_child *c, int timeout_ms)
{
    static bool handler;
    DWORD code = 0;
    int rc;
    if (c->process == NULL)
        return -1;
    /* Ctrl+C on the child's console, which weft takes for SIGINT, sent while attached to it
     * for the moment: an event goes to every process of a console (CTRL_BREAK_EVENT can name
     * a process group, which Wine 8 does not deliver to). */
    if (!handler)
        handler = SetConsoleCtrlHandler(swallow_ctrl_c, TRUE);
    (void)FreeConsole();
    if (AttachConsole(GetProcessId(c->process))) {
        (void)GenerateConsoleCtrlEvent(CTRL_C_EVENT, 0);
        (void)FreeConsole();
    }
    if (WaitForSingleObject(c->process, (DWORD)timeout_ms) != WAIT_OBJECT_0) {
        wt_child_kill(c);
        return -2;
    }
    rc = GetExitCodeProcess(c->process, &code) && code <= 255 ? (int)code : -1;
    forget(c);
    return rc;
}

void wt_child_kill(wt_child *c)
{
    if (c->process != NULL) {
        (void)TerminateProcess(c->process, 137);
        (void)WaitForSingleObject(c->process, 30000);
    }
    forget(c);
}

static bool memory(const wt_child *c, PROCESS_MEMORY_COUNTERS *m)
{
    memset(m, 0, sizeof(*m));
    return c->process != NULL && K32GetProcessMemoryInfo(c->process, m, sizeof(*m));
}

long wt_child_rss_kb(const wt_child *c)
{
    PROCESS_MEMORY_COUNTERS m;
    return memory(c, &m) ? (long)(m.WorkingSetSize / 1024) : -1;
}

long wt_child_peak_kb(const wt_child *c)
{
    PROCESS_MEMORY_COUNTERS m;
    return memory(c, &m) ? (long)(m.PeakWorkingSetSize / 1024) : -1;
}

bool wt_child_reset_peak(const wt_child *c)
{
    (void)c;
    return false;
}

unsigned long wt_child_faults(const wt_child *c)
{
    PROCESS_MEMORY_COUNTERS m;
    return memory(c, &m) ? (unsigned long)m.PageFaultCount : 0;
}

const char *wt_missing_child_faults(const wt_child *c)
{
    return wt_child_faults(c) > 0 ? NULL
                                  : "this system counts no page faults of another process "
                                    "(Wine: GetProcessMemoryInfo's PageFaultCount is 0)";
}

/* The Linux /bin/sh as a Wine path (malloc'd), or NULL. */
static wchar_t *linux_sh(void)
{
    dos_name_fn dos = dos_name();
    wchar_t *w = dos != NULL && unix_name() != NULL ? dos("/bin/sh") : NULL, *copy;
    if (w == NULL)
        return NULL;
    copy = _wcsdup(w);
    HeapFree(GetProcessHeap(), 0, w);
    if (copy != NULL && GetFileAttributesW(copy) == INVALID_FILE_ATTRIBUTES) {
        free(copy);
        copy = NULL;
    }
    return copy;
}

const char *wt_missing_shell(void)
{
    wchar_t *sh = linux_sh();
    free(sh);
    return sh != NULL ? NULL
                      : "no Linux shell to run the Linux clients with (not under Wine, or Wine "
                        "shows no /bin/sh)";
}

/* Reads a whole small file into a malloc'd NUL-terminated buffer of at most max bytes. */
static char *slurp(const wchar_t *name, size_t max)
{
    char *buf = calloc(1, max + 1);
    FILE *f = _wfopen(name, L"rb");
    if (buf != NULL && f != NULL)
        buf[fread(buf, 1, max, f)] = '\0';
    if (f != NULL)
        fclose(f);
    return buf;
}

char *wt_shell(int *rc, int timeout_ms, const char *cmd)
{
    static unsigned seq;
    wchar_t dir[MAX_PATH], base[MAX_PATH], out[MAX_PATH + 16], done[MAX_PATH + 16];
    wchar_t *sh = linux_sh(), *line = NULL, *wscript = NULL, *p;
    char *udir = NULL, *script = NULL, *text = NULL, *status;
    size_t slen;
    STARTUPINFOW si;
    PROCESS_INFORMATION pi;

    *rc = -1;
    unix_name_fn un = unix_name();
    DWORD n = GetTempPathW(MAX_PATH, dir);
    if (sh == NULL || un == NULL || n == 0 || n >= MAX_PATH - 40)
        goto out;
    /* Names of this process and call; the status file appears by a rename, whole. */
    swprintf(base, MAX_PATH, L"%lsweft-sh-%lu-%u", dir, (unsigned long)GetCurrentProcessId(),
             seq++);
    swprintf(out, MAX_PATH + 16, L"%ls.out", base);
    swprintf(done, MAX_PATH + 16, L"%ls.rc", base);
    DeleteFileW(out);
    DeleteFileW(done);
    udir = un(base);
    if (udir == NULL || strchr(udir, '\'') != NULL)
        goto out;
    slen = strlen(cmd) + 4 * strlen(udir) + 64;
    script = malloc(slen);
    if (script == NULL)
        goto out;
    snprintf(script, slen, "(%s) >'%s.out'; echo $? >'%s.tmp'; mv '%s.tmp' '%s.rc'", cmd, udir,
             udir, udir, udir);
    wscript = widen(script);
    line = wscript != NULL ? malloc((wcslen(wscript) * 2 + 16) * sizeof(wchar_t)) : NULL;
    if (line == NULL)
        goto out;
    wcscpy(line, L"sh -c ");
    p = line + wcslen(line);
    if (!quote_arg(&p, line + wcslen(wscript) * 2 + 15, wscript))
        goto out;
    *p = L'\0';
    memset(&si, 0, sizeof(si));
    si.cb = sizeof(si);
    memset(&pi, 0, sizeof(pi));
    /* Wine gives no handle back for a Linux program: nothing to close, nothing to wait on. */
    if (!CreateProcessW(sh, line, NULL, NULL, FALSE, 0, NULL, NULL, &si, &pi))
        goto out;
    if (pi.hThread != NULL)
        CloseHandle(pi.hThread);
    if (pi.hProcess != NULL)
        CloseHandle(pi.hProcess);
    for (int waited = 0; GetFileAttributesW(done) == INVALID_FILE_ATTRIBUTES; waited += 5) {
        if (waited >= timeout_ms)
            goto out;
        Sleep(5);
    }
    status = slurp(done, 32);
    if (status != NULL && status[0] >= '0' && status[0] <= '9')
        *rc = atoi(status);
    free(status);
    text = slurp(out, SHELL_OUT_MAX - 1);
out:
    if (text == NULL)
        text = calloc(1, 1);
    if (udir != NULL) {
        DeleteFileW(out);
        DeleteFileW(done);
        HeapFree(GetProcessHeap(), 0, udir);
    }
    free(sh);
    free(line);
    free(wscript);
    free(script);
    return text;
}

#else /* POSIX */
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

int wt_child_start(wt_child *c, const char *path, const char *const *args, bool capture_log,
                   char *line, size_t cap, int timeout_ms)
{
    int fds[2];
    size_t n = 0;
    int rc = 0;
    c->pid = -1;
    c->log_fd = -1;
    if (cap == 0)
        return -1;
    line[0] = '\0';
    if (capture_log) {
        FILE *f = tmpfile();
        if (f == NULL)
            return -1;
        c->log_fd = dup(fileno(f));
        fclose(f);
        if (c->log_fd < 0)
            return -1;
    }
    if (pipe(fds) != 0)
        return -1;
    c->pid = fork();
    if (c->pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (c->pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        if (c->log_fd >= 0)
            dup2(c->log_fd, STDERR_FILENO);
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

static bool has_log(const wt_child *c)
{
    return c->log_fd >= 0;
}

/* Up to n bytes of c's captured stderr from offset off: the count, 0 at its end. */
static size_t log_read_at(const wt_child *c, char *p, size_t n, size_t off)
{
    ssize_t r = pread(c->log_fd, p, n, (off_t)off);
    return r > 0 ? (size_t)r : 0;
}

static void forget(wt_child *c)
{
    if (c->log_fd >= 0)
        close(c->log_fd);
    c->pid = 0;
    c->log_fd = -1;
}

int wt_child_stop(wt_child *c, int timeout_ms)
{
    int status = 0;
    if (c->pid <= 0)
        return -1;
    kill(c->pid, SIGTERM);
    for (int waited = 0; waited < timeout_ms; waited += 20) {
        if (waitpid(c->pid, &status, WNOHANG) == c->pid) {
            forget(c);
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        }
        usleep(20 * 1000);
    }
    wt_child_kill(c);
    return -2;
}

void wt_child_kill(wt_child *c)
{
    if (c->pid > 0) {
        kill(c->pid, SIGKILL);
        waitpid(c->pid, NULL, 0);
    }
    forget(c);
}

/* A field of the child's /proc status in kB ("VmRSS", "VmHWM"), or -1. */
static long status_kb(const wt_child *c, const char *field)
{
    char path[64], line[256];
    long kb = -1;
    size_t flen = strlen(field);
    FILE *f;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)c->pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, field, flen) == 0 && line[flen] == ':')
            kb = strtol(line + flen + 1, NULL, 10);
    fclose(f);
    return kb;
}

long wt_child_rss_kb(const wt_child *c)
{
    return status_kb(c, "VmRSS");
}

long wt_child_peak_kb(const wt_child *c)
{
    return status_kb(c, "VmHWM");
}

bool wt_child_reset_peak(const wt_child *c)
{
    /* proc(5): writing 5 to clear_refs resets the peak resident set (VmHWM). */
    char path[64];
    FILE *f;
    bool ok;
    snprintf(path, sizeof(path), "/proc/%d/clear_refs", (int)c->pid);
    f = fopen(path, "w");
    if (f == NULL)
        return false;
    ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok;
}

unsigned long wt_child_faults(const wt_child *c)
{
    char path[64], buf[1024], *p;
    unsigned long v = 0;
    FILE *f;
    size_t n;
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)c->pid);
    f = fopen(path, "r");
    if (f == NULL)
        return 0;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* After the ")" that ends the name: state ppid pgrp session tty tpgid flags minflt. */
    p = strrchr(buf, ')');
    if (p == NULL || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %lu", &v) != 1)
        return 0;
    return v;
}

const char *wt_missing_child_faults(const wt_child *c)
{
    return wt_child_faults(c) > 0 ? NULL : "this system shows no page faults of the child";
}

const char *wt_missing_shell(void)
{
    return NULL;
}

char *wt_shell(int *rc, int timeout_ms, const char *cmd)
{
    char *out = calloc(1, SHELL_OUT_MAX);
    size_t n = 0, r;
    FILE *f;
    int st;

    (void)timeout_ms; /* pclose waits; the command bounds itself */
    *rc = -1;
    if (out == NULL)
        return NULL;
    f = popen(cmd, "r");
    if (f == NULL)
        return out;
    while ((r = fread(out + n, 1, SHELL_OUT_MAX - 1 - n, f)) > 0)
        n += r;
    st = pclose(f);
    *rc = st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return out;
}
#endif

char *wt_child_log(const wt_child *c)
{
    size_t cap = 1 << 16, n = 0;
    char *buf;
    if (!has_log(c) || (buf = malloc(cap)) == NULL)
        return NULL;
    for (;;) {
        if (n == cap - 1) {
            char *bigger = realloc(buf, cap * 2);
            if (bigger == NULL)
                break;
            buf = bigger;
            cap *= 2;
        }
        size_t got = log_read_at(c, buf + n, cap - 1 - n, n);
        if (got == 0)
            break;
        n += got;
    }
    buf[n] = '\0';
    return buf;
}
