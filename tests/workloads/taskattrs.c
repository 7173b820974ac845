/*
 * taskattrs DIR -- per-task state of issue 20 (items 1 and 3) that /proc shows, set to values no default has,
 * for the state-diff checker to hold a round trip to.
 *
 *   leader  nice 5 under SCHED_BATCH, timer slack 123456 ns, THP disabled (PR_SET_THP_DISABLE), I/O priority
 *           best-effort 5, personality ADDR_NO_RANDOMIZE, oom_score_adj 123, umask 027, coredump_filter 0x23,
 *           a POSIX timer (CLOCK_MONOTONIC, SIGEV_SIGNAL SIGRTMIN) armed for an hour;
 *           mappings (each its own VMA) with MADV_DONTFORK, MADV_WIPEONFORK, MADV_DONTDUMP, MADV_HUGEPAGE,
 *           MADV_NOHUGEPAGE, mlock, MAP_GROWSDOWN.
 *   "attr2" a second thread: SCHED_IDLE, I/O priority idle, affinity CPU 0 only, SIGUSR2 blocked.
 * Writes DIR/ready ("ready PID TID") and waits in sigsuspend until killed.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "workload.h"

#define IOPRIO(class, data) (((class) << 13) | (data))
#define SETUP(cond) do { if (!(cond)) { fprintf(stderr, "setup failed: %s\n", #cond); return 2; } } while (0)

static volatile pid_t second_tid;

static void *second(void *arg)
{
    (void)arg;
    prctl(PR_SET_NAME, "attr2");
    struct sched_param none = { 0 };
    sched_setscheduler(0, SCHED_IDLE, &none);
    syscall(SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */, 0, IOPRIO(3, 0));
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(0, &one);
    sched_setaffinity(0, sizeof one, &one);
    sigset_t usr2;
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &usr2, NULL);
    second_tid = (pid_t)syscall(SYS_gettid);
    for (;;)
        pause();
    return NULL;
}

static void *region(int advice)
{
    char *p = mmap(NULL, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    p[0] = 1;
    if (advice >= 0 && madvise(p, 2 * 4096, advice))
        return NULL;
    return p;
}

static void write_proc(const char *name, const char *text) { write_file("/proc/self", name, text); }

int main(int argc, char **argv)
{
    SETUP(argc >= 2);
    /* The thread first: it must not inherit the leader's settings, it has its own. */
    pthread_t t;
    SETUP(pthread_create(&t, NULL, second, NULL) == 0);
    while (!second_tid)
        usleep(1000);

    /* The mappings before PR_SET_THP_DISABLE, which would refuse MADV_HUGEPAGE. */
    SETUP(region(MADV_DONTFORK));
    SETUP(region(MADV_WIPEONFORK));
    SETUP(region(MADV_DONTDUMP));
    SETUP(region(MADV_HUGEPAGE));
    SETUP(region(MADV_NOHUGEPAGE));
    void *locked = region(-1);
    SETUP(locked && mlock(locked, 2 * 4096) == 0);
    SETUP(mmap(NULL, 4 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_GROWSDOWN, -1, 0) != MAP_FAILED);

    struct sched_param none = { 0 };
    SETUP(sched_setscheduler(0, SCHED_BATCH, &none) == 0);
    SETUP(setpriority(PRIO_PROCESS, 0, 5) == 0);
    SETUP(prctl(PR_SET_TIMERSLACK, 123456) == 0);
    SETUP(prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0);
    SETUP(syscall(SYS_ioprio_set, 1, 0, IOPRIO(2, 5)) == 0);
    SETUP(personality(PER_LINUX | ADDR_NO_RANDOMIZE) != -1);
    write_proc("oom_score_adj", "123");
    write_proc("coredump_filter", "0x23");
    umask(027);

    struct sigevent ev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGRTMIN };
    timer_t timer;
    SETUP(timer_create(CLOCK_MONOTONIC, &ev, &timer) == 0);
    struct itimerspec hour = { .it_value = { 3600, 0 } };
    SETUP(timer_settime(timer, 0, &hour, NULL) == 0);


    sigset_t wait_mask;
    sigprocmask(SIG_BLOCK, NULL, &wait_mask);
    char line[64];
    snprintf(line, sizeof line, "ready %d %d\n", getpid(), second_tid);
    write_file(argv[1], "ready", line);
    for (;;)
        sigsuspend(&wait_mask);
}
