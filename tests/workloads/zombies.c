// A parent with two zombie children (one exited with status 7, one killed by SIGTERM) and one
// child stopped by SIGSTOP. It prints "ready <pid> <z1> <z2> <stopped>" once all three are in those
// states, then waits for SIGUSR1 and checks, as its program would see it: each zombie is reaped with
// the same status, the stopped child is still stopped ('T') and runs on after SIGCONT.
// Prints PASS or FAIL <why> on stdout and exits 0 / 1.
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t go;
static void on_usr1(int s) { (void)s; go = 1; }

static char state_of(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return '?';
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    return p && p[1] == ' ' ? p[2] : '?';
}

#define FAIL(...) do { printf("FAIL "); printf(__VA_ARGS__); printf("\n"); fflush(stdout); exit(1); } while (0)

int main(void)
{
    int pipefd[2];
    if (pipe(pipefd)) return 2;
    struct sigaction sa = { .sa_handler = on_usr1 };
    sigaction(SIGUSR1, &sa, NULL);
    /* SIGUSR1 opens only inside sigsuspend: a pause() loop loses one that lands between its flag check
     * and the call. */
    sigset_t usr1, outside;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, &outside);

    pid_t z1 = fork();
    if (z1 == 0) _exit(7);
    pid_t z2 = fork();
    if (z2 == 0) { signal(SIGTERM, SIG_DFL); kill(getpid(), SIGTERM); pause(); _exit(99); }
    pid_t st = fork();
    if (st == 0) {
        close(pipefd[0]);
        raise(SIGSTOP);
        // Only after SIGCONT:
        if (write(pipefd[1], "cont", 4) != 4) _exit(3);
        _exit(0);
    }
    close(pipefd[1]);

    siginfo_t si;
    if (waitid(P_PID, z1, &si, WEXITED | WNOWAIT)) return 2;
    if (waitid(P_PID, z2, &si, WEXITED | WNOWAIT)) return 2;
    if (waitid(P_PID, st, &si, WSTOPPED | WNOWAIT)) return 2;
    printf("ready %d %d %d %d\n", getpid(), z1, z2, st);
    fflush(stdout);

    while (!go)
        sigsuspend(&outside);

    if (state_of(z1) != 'Z') FAIL("child %d is in state %c, not a zombie", z1, state_of(z1));
    if (state_of(z2) != 'Z') FAIL("child %d is in state %c, not a zombie", z2, state_of(z2));
    if (state_of(st) != 'T') FAIL("child %d is in state %c, not stopped", st, state_of(st));
    int status;
    if (waitpid(z1, &status, WNOHANG) != z1) FAIL("zombie %d could not be reaped", z1);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 7) FAIL("zombie %d: status 0x%x, expected exit 7", z1, status);
    if (waitpid(z2, &status, WNOHANG) != z2) FAIL("zombie %d could not be reaped", z2);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGTERM) FAIL("zombie %d: status 0x%x, expected SIGTERM", z2, status);
    char buf[8] = {0};
    kill(st, SIGCONT);
    if (read(pipefd[0], buf, 4) != 4 || strcmp(buf, "cont")) FAIL("stopped child %d did not run on after SIGCONT", st);
    if (waitpid(st, &status, 0) != st || !WIFEXITED(status) || WEXITSTATUS(status) != 0) FAIL("child %d: status 0x%x", st, status);
    printf("PASS\n");
    fflush(stdout);
    return 0;
}
