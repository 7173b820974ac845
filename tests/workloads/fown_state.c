/*
 * fown_state -- SIGIO owners (F_SETOWN, F_SETSIG) naming tasks of the tree, in or out of a pid namespace.
 *
 * Prints "ready PID CHILDPID\n" (the pids as the task sees them), waits for SIGUSR1 (sigsuspend), checks,
 * prints PASS or FAIL lines on stderr; exit 0 on pass. argv[1] (a directory) is not used.
 *
 * The pipe's read end (O_ASYNC) signals the child with SIGRTMIN+1 (F_SETOWN child, F_SETSIG); an eventfd
 * is owned by the task itself. After restore the owners must read back as before, and a write into the
 * pipe must reach the child as SIGRTMIN+1 carrying the fd (si_fd) — the child waits for it.
 */
#define _GNU_SOURCE
#define WORKLOAD_COUNTED_CHECKS
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <time.h>
#include "workload.h"

static int failures;
static volatile sig_atomic_t go;
static void on_usr1(int sig) { (void)sig; go = 1; }

int main(void)
{
    int sig = SIGRTMIN + 1;
    sigset_t rt, mask;
    sigemptyset(&rt);
    sigaddset(&rt, sig);
    sigprocmask(SIG_BLOCK, &rt, NULL);   /* the child takes it with sigtimedwait */
    workload_begin(on_usr1, &mask);
    setsid();   /* as PID 1 of a pid namespace its session must be its own (or the dump's leader is outside) */
    int p[2], e = eventfd(0, 0);
    if (pipe(p) || e < 0)
        return 2;

    pid_t child = fork();
    if (child == 0) {
        close(p[1]);
        while (!go)
            sigsuspend(&mask);
        struct timespec ts = { 10, 0 };
        siginfo_t si = {0};
        int got = sigtimedwait(&rt, &si, &ts);
        CHECK("child", got == sig && si.si_fd == p[0], "no SIGRTMIN+1 for fd %d (got %d, si_fd %d: %s)", p[0], got, si.si_fd, strerror(errno));
        return failures ? 1 : 0;
    }
    if (fcntl(p[0], F_SETOWN, child) || fcntl(p[0], F_SETSIG, sig) || fcntl(p[0], F_SETFL, O_ASYNC | O_NONBLOCK)
        || fcntl(e, F_SETOWN, getpid()))
        return 2;
    printf("ready %d %d\n", getpid(), child);
    while (!go)
        sigsuspend(&mask);

    CHECK("pipe owner", fcntl(p[0], F_GETOWN) == child && fcntl(p[0], F_GETSIG) == sig, "%d signal %d, expected %d %d",
          fcntl(p[0], F_GETOWN), fcntl(p[0], F_GETSIG), child, sig);
    CHECK("eventfd owner", fcntl(e, F_GETOWN) == getpid(), "%d, expected %d", fcntl(e, F_GETOWN), getpid());
    kill(child, SIGUSR1);
    usleep(100000);
    CHECK("pipe", write(p[1], "x", 1) == 1, "write");
    int status;
    CHECK("child", waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "did not get its SIGIO signal (status %#x)", status);
    fprintf(stderr, failures ? "FAIL\n" : "PASS\n");
    return failures ? 1 : 0;
}
