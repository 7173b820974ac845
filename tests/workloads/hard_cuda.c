/*
 * hard_cuda COUNTER  -- run under `hardened --no-second -- hard_cuda COUNTER`: a stand-in for a CUDA
 * process. Three threads: the main one appends "0\n", "1\n", ... to COUNTER every 50 ms (one write
 * per line); a worker sleeps in 20 ms steps; and a thread named "cuda-restore" (the name the tests'
 * stand-in cuda-checkpoint looks for, as the real driver has its own restore thread) sleeps in 10 ms
 * steps. On SIGUSR1 the process checks itself: three threads still there, the restore thread still
 * named so, the allowlist filter still enforced (ptrace is refused); prints PASS or FAIL: ... on
 * stderr and exits 0 / 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t got_usr1;
static volatile pid_t restore_tid;

static void on_usr1(int sig)
{
    (void)sig;
    got_usr1 = 1;
}

static void nap(long ms)
{
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

static void *restore_thread(void *arg)
{
    (void)arg;
    prctl(PR_SET_NAME, "cuda-restore");
    restore_tid = syscall(SYS_gettid);
    for (;;)
        nap(10);
    return NULL;
}

static void *worker(void *arg)
{
    (void)arg;
    for (;;)
        nap(20);
    return NULL;
}

static int count_threads(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    int n = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %d", &n) == 1)
            break;
    if (f)
        fclose(f);
    return n;
}

static int check(void)
{
    int failures = 0;
    char path[64], comm[32] = "";
    int n = count_threads();
    if (n != 3) {
        fprintf(stderr, "FAIL: %d threads, expected 3\n", n);
        failures++;
    }
    snprintf(path, sizeof path, "/proc/self/task/%d/comm", (int)restore_tid);
    FILE *f = fopen(path, "r");
    if (!f || !fgets(comm, sizeof comm, f) || strcmp(comm, "cuda-restore\n") != 0) {
        fprintf(stderr, "FAIL: restore thread %d is named '%s'\n", (int)restore_tid, comm);
        failures++;
    }
    if (f)
        fclose(f);
    errno = 0;
    if (ptrace(PTRACE_TRACEME, 0, 0, 0) != -1 || errno != EPERM) {
        fprintf(stderr, "FAIL: ptrace was not refused by the filter (errno %d)\n", errno);
        failures++;
    }
    return failures;
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    struct sigaction sa = {.sa_handler = on_usr1};
    sigaction(SIGUSR1, &sa, NULL);
    pthread_t t;
    if (pthread_create(&t, NULL, restore_thread, NULL) || pthread_create(&t, NULL, worker, NULL))
        return 2;
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_APPEND, 0666);
    if (fd < 0)
        return 2;
    for (long i = 0; !got_usr1; i++) {
        char line[32];
        int len = snprintf(line, sizeof line, "%ld\n", i);
        if (write(fd, line, len) != len)
            return 4;
        nap(50);
    }
    int failures = check();
    fprintf(stderr, failures ? "FAIL\n" : "PASS\n");
    return failures ? 1 : 0;
}
