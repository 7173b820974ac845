/*
 * pause_eintr DIR -- interrupted syscalls that a handled signal must end the way the kernel ends them.
 *
 *   leader   pause() once; SIGUSR1 (handler, no SA_RESTART) must make it return -1/EINTR,
 *   "slp"    nanosleep(1 h, &rem) once; SIGUSR2 (handler) must make it fail with EINTR, rem > 50 min,
 *   "rd"     read() on a pipe; SIGWINCH (handler, SA_RESTART) must run and the read go on, returning
 *            the byte the leader writes after its pause returned.
 * Each thread blocks the others' signals. Writes DIR/ready ("ready PID SLP_TID RD_TID") and waits; the test
 * stops the process, queues the three signals (tgkill) while it is stopped, and continues it: each call
 * then sees its handler ran while it was interrupted. A restore that re-runs the calls from user mode
 * runs the handlers first and then sleeps again (pause and the hour-long sleep never return).
 * Verdict in DIR/verdict: "PASS" or "FAIL: ..." lines; exit 0 on pass, 1 on fail, 2 on setup error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "workload.h"

static volatile int usr1, usr2, winch;
static volatile pid_t slp_tid, rd_tid;
static int pipefd[2];
static char fails[1024];

static void on_usr1(int s) { (void)s; usr1++; }
static void on_usr2(int s) { (void)s; usr2++; }
static void on_winch(int s) { (void)s; winch++; }

#define FAIL(...) do { size_t l = strlen(fails); snprintf(fails + l, sizeof fails - l, "FAIL: " __VA_ARGS__); } while (0)

static void only(int sig)
{
    sigset_t m;
    sigfillset(&m);
    sigdelset(&m, sig);
    pthread_sigmask(SIG_SETMASK, &m, NULL);
}

static void *sleeper(void *arg)
{
    (void)arg;
    only(SIGUSR2);
    slp_tid = (pid_t)syscall(SYS_gettid);
    struct timespec req = { 3600, 0 }, rem = { 0, 0 };
    int r = nanosleep(&req, &rem);
    if (r != -1 || errno != EINTR)
        FAIL("nanosleep returned %d errno %d, want EINTR\n", r, errno);
    if (usr2 != 1)
        FAIL("SIGUSR2 handler ran %d times\n", usr2);
    if (rem.tv_sec < 3000)
        FAIL("nanosleep rem %ld s\n", (long)rem.tv_sec);
    return NULL;
}

static void *reader(void *arg)
{
    (void)arg;
    only(SIGWINCH);
    rd_tid = (pid_t)syscall(SYS_gettid);
    char c = 0;
    ssize_t n = read(pipefd[0], &c, 1);
    if (n != 1 || c != 'x')
        FAIL("read returned %zd (errno %d), want the byte: SA_RESTART must restart it\n", n, errno);
    if (winch != 1)
        FAIL("SIGWINCH handler ran %d times\n", winch);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2 || pipe(pipefd) != 0)
        return 2;
    struct sigaction a = { .sa_handler = on_usr1 };
    sigaction(SIGUSR1, &a, NULL);
    a.sa_handler = on_usr2;
    sigaction(SIGUSR2, &a, NULL);
    a.sa_handler = on_winch;
    a.sa_flags = SA_RESTART;
    sigaction(SIGWINCH, &a, NULL);

    pthread_t ts, tr;
    if (pthread_create(&ts, NULL, sleeper, NULL) || pthread_create(&tr, NULL, reader, NULL))
        return 2;
    only(SIGUSR1);
    while (!slp_tid || !rd_tid)
        usleep(1000);
    usleep(50000);   /* let both threads reach their calls */
    char ready[128];
    snprintf(ready, sizeof ready, "ready %d %d %d\n", getpid(), slp_tid, rd_tid);
    write_file(argv[1], "ready", ready);

    int r = pause();
    if (r != -1 || errno != EINTR)
        FAIL("pause returned %d errno %d\n", r, errno);
    if (usr1 != 1)
        FAIL("SIGUSR1 handler ran %d times\n", usr1);
    if (write(pipefd[1], "x", 1) != 1)
        return 2;
    pthread_join(ts, NULL);
    pthread_join(tr, NULL);
    if (!fails[0])
        strcpy(fails, "PASS\n");
    write_file(argv[1], "verdict", fails);
    return strcmp(fails, "PASS\n") == 0 ? 0 : 1;
}
