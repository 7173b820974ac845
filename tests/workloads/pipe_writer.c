/*
 * pipe_writer -- writes to a stdout that is a pipe held outside the tree (a container's stdio, say).
 *
 * Writes "ready PID\n" to fd 1, then on each SIGUSR1 (blocked outside sigsuspend) "line N\n"; exits 0 once
 * N reaches 3, or 1 if a write fails.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "workload.h"

static volatile sig_atomic_t go;
static void on_usr1(int sig) { (void)sig; go = 1; }

static int say(const char *text) { return write(1, text, strlen(text)) == (ssize_t)strlen(text) ? 0 : -1; }

int main(void)
{
    sigset_t old;
    usr1_only_in_sigsuspend(on_usr1, &old);
    char line[64];
    snprintf(line, sizeof line, "ready %d\n", getpid());
    if (say(line))
        return 1;
    for (int n = 1; n <= 3; n++) {
        while (!go)
            sigsuspend(&old);
        go = 0;
        snprintf(line, sizeof line, "line %d\n", n);
        if (say(line))
            return 1;
    }
    return 0;
}
