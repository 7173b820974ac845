/*
 * pidfd_state -- pidfds of live tasks of the tree and of a process that has exited.
 *
 * argv[1] a directory (unused); argv[2] "outside" adds fd 8, a pidfd of the workload's parent (outside the tree).
 * Prints "ready PID CHILDPID\n", waits for SIGUSR1 (sigsuspend), checks, prints PASS or FAIL lines on
 * stderr; exit 0 on pass.
 *
 * Parent: fd 3 pidfd of the child, fd 4 another (PIDFD_NONBLOCK) of the child, fd 5 its own, fd 6 and 7
 * one pidfd (dup'ed) of a child that exited and was reaped. Child: fd 3 pidfd of the parent.
 * After restore: fdinfo names the right pids, fd 6 is readable at once (its process is gone) and
 * signalling through it fails with ESRCH; the parent wakes the child through fd 3 (pidfd_send_signal),
 * the child checks its pidfd of the parent, exits, and the parent sees that through fd 3 (poll, then
 * waitid(P_PIDFD)).
 */
#define _GNU_SOURCE
#define WORKLOAD_COUNTED_CHECKS
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "workload.h"

#ifndef PIDFD_NONBLOCK
#define PIDFD_NONBLOCK O_NONBLOCK
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

static int failures;
static volatile sig_atomic_t go;
static void on_usr1(int sig) { (void)sig; go = 1; }
#define DIE(what) do { perror(what); exit(2); } while (0)

static int pidfd_open(pid_t pid, unsigned flags) { return (int)syscall(SYS_pidfd_open, pid, flags); }
static int pidfd_signal(int fd, int sig) { return (int)syscall(SYS_pidfd_send_signal, fd, sig, NULL, 0); }

#define at(want, fd) workload_fd_at(want, fd, "pidfd_open")

/* fdinfo's "Pid:" of fd. */
static int fdinfo_pid(int fd)
{
    char path[64], line[128];
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
    FILE *f = fopen(path, "r");
    int pid = -2;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "Pid:", 4))
            pid = atoi(line + 4);
    if (f)
        fclose(f);
    return pid;
}

static int readable(int fd, int ms)
{
    struct pollfd p = { fd, POLLIN, 0 };
    return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

int main(int argc, char **argv)
{
    sigset_t mask;
    workload_begin(on_usr1, &mask);
    pid_t parent = getpid();

    pid_t dead = fork();
    if (dead == 0)
        _exit(0);
    at(6, pidfd_open(dead, 0));
    if (waitpid(dead, NULL, 0) != dead)
        DIE("waitpid");
    at(7, dup(6));

    pid_t child = fork();
    if (child == 0) {
        at(3, pidfd_open(parent, 0));
        while (!go)
            sigsuspend(&mask);
        CHECK("child's pidfd", fdinfo_pid(3) == parent, "names %d, not the parent %d", fdinfo_pid(3), parent);
        CHECK("child's pidfd", !readable(3, 0), "the parent reads as exited");
        CHECK("child's pidfd", pidfd_signal(3, 0) == 0, "signal 0 to the parent: %s", strerror(errno));
        return failures ? 1 : 0;
    }
    at(3, pidfd_open(child, 0));
    at(4, pidfd_open(child, PIDFD_NONBLOCK));
    at(5, pidfd_open(parent, 0));
    if (argc > 2 && !strcmp(argv[2], "outside"))
        at(8, pidfd_open(getppid(), 0));   /* a process the dump does not take: refused */
    while (fdinfo_pid(6) != -1)
        usleep(1000);
    printf("ready %d %d\n", parent, child);
    while (!go)
        sigsuspend(&mask);

    CHECK("pidfd of the child", fdinfo_pid(3) == child, "names %d, not %d", fdinfo_pid(3), child);
    CHECK("nonblocking pidfd", fdinfo_pid(4) == child && (fcntl(4, F_GETFL) & O_NONBLOCK), "pid %d, flags %#x", fdinfo_pid(4), fcntl(4, F_GETFL));
    CHECK("own pidfd", fdinfo_pid(5) == parent, "names %d, not %d", fdinfo_pid(5), parent);
    CHECK("dead pidfd", fdinfo_pid(6) == -1, "names %d", fdinfo_pid(6));
    CHECK("dead pidfd", readable(6, 0), "not readable");
    CHECK("dead pidfd", pidfd_signal(6, 0) < 0 && errno == ESRCH, "signal 0 did not fail with ESRCH");
    CHECK("dead pidfd, dup'ed", fdinfo_pid(7) == -1 && (fcntl(6, F_GETFL) == fcntl(7, F_GETFL)), "pid %d", fdinfo_pid(7));
    CHECK("pidfd of the child", !readable(3, 0), "the child reads as exited before it was woken");

    CHECK("pidfd of the child", pidfd_signal(3, SIGUSR1) == 0, "pidfd_send_signal: %s", strerror(errno));
    CHECK("pidfd of the child", readable(3, 10000), "the child's exit was not seen");
    siginfo_t si = {0};
    CHECK("waitid(P_PIDFD)", waitid(P_PIDFD, 3, &si, WEXITED) == 0 && si.si_pid == child && si.si_status == 0,
          "pid %d status %d: %s", si.si_pid, si.si_status, strerror(errno));
    fprintf(stderr, failures ? "FAIL\n" : "PASS\n");
    return failures ? 1 : 0;
}
