/* A workload's own checks (include after workload.h): fail() adds a reason to `failures`; in a tree of processes
   each child ends with child_done() (its reasons into DIR/fail-NAME, exit 1) and its parent reap()s it, noting a
   child that did not exit 0. The verdict is the root's: PASS, or FAIL with every reason. */
#pragma once
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char failures[4096];

static void fail(const char *what, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *what, ...)
{
    va_list ap;
    va_start(ap, what);
    size_t n = strlen(failures);
    if (n < sizeof failures - 2) {
        vsnprintf(failures + n, sizeof failures - n - 1, what, ap);
        strcat(failures, "; ");
    }
    va_end(ap);
}

/* Waits for child CHILD (named NAME) and records a failure unless it exited 0. */
static inline void reap(const char *name, pid_t child)
{
    int status;
    pid_t r;
    while ((r = waitpid(child, &status, 0)) < 0 && errno == EINTR) { }
    if (r != child)
        fail("waitpid(%s %d) gave %d: %s", name, child, r, strerror(errno));
    else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail("%s %d ended with status 0x%x", name, child, status);
}

/* A child's end: its reasons, if any, into DIR/fail-NAME and exit 1; else exit 0. */
static inline void child_done(const char *dir, const char *name)
{
    if (failures[0]) {
        char file[64];
        snprintf(file, sizeof file, "fail-%s", name);
        write_file(dir, file, failures);
        _exit(1);
    }
    _exit(0);
}
