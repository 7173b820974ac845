/*
 * timers_state DIR -- interval and POSIX timers across a checkpoint.
 *
 * Arms ITIMER_REAL (50 ms period, SIGALRM), ITIMER_VIRTUAL and ITIMER_PROF (long, never firing) and
 * POSIX timers: id 0 CLOCK_MONOTONIC SIGEV_SIGNAL (50 ms period, SIGRTMIN, a sival), id 1 CLOCK_BOOTTIME
 * SIGEV_THREAD_ID to a worker thread (60 ms period), id 2 deleted (a gap), id 3 CLOCK_REALTIME
 * SIGEV_NONE one-shot 1000 s, id 4 CLOCK_MONOTONIC never armed, id 5 CLOCK_PROCESS_CPUTIME_ID
 * SIGEV_NONE 500 s. Writes DIR/timers (its /proc/self/timers) and "ready PID" to DIR/ready, then
 * waits for SIGUSR1. After it: every periodic timer must tick again (3 ticks each, the thread timer
 * in the worker only), /proc/self/timers must read as before, the long timers keep their interval
 * and no more than the time left, the never-armed one stays disarmed and id 2 stays free.
 */
#define _GNU_SOURCE
#define WORKLOAD_COUNTED_CHECKS
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include "workload.h"

static atomic_int alrm, rt0, rt1, rt1_wrong, got_usr1;
static atomic_int worker_tid;
static int failures;

static void on_alrm(int s) { (void)s; alrm++; }
static void on_usr1(int s) { (void)s; got_usr1 = 1; }
static void on_rt0(int s, siginfo_t *si, void *u)
{
    (void)s; (void)u;
    if (si->si_code == SI_TIMER && si->si_value.sival_ptr == (void *)0x1234)
        rt0++;
}
static void on_rt1(int s, siginfo_t *si, void *u)
{
    (void)s; (void)si; (void)u;
    if (syscall(SYS_gettid) == worker_tid)
        rt1++;
    else
        rt1_wrong++;
}

static void *worker(void *arg)
{
    (void)arg;
    worker_tid = (int)syscall(SYS_gettid);
    for (;;)
        pause();
    return NULL;
}

static timer_t make(clockid_t clock, int notify, int signo, void *value, int tid)
{
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = notify;
    sev.sigev_signo = signo;
    sev.sigev_value.sival_ptr = value;
    sev._sigev_un._tid = tid;
    timer_t t;
    if (timer_create(clock, &sev, &t) != 0) {
        perror("timer_create");
        exit(2);
    }
    return t;
}

static void arm(timer_t t, long value_ms, long interval_ms)
{
    struct itimerspec its = {
        .it_interval = { interval_ms / 1000, (interval_ms % 1000) * 1000000 },
        .it_value = { value_ms / 1000, (value_ms % 1000) * 1000000 },
    };
    if (timer_settime(t, 0, &its, NULL) != 0) {
        perror("timer_settime");
        exit(2);
    }
}

static void read_file(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, size - 1, f) : 0;
    buf[n] = 0;
    if (f)
        fclose(f);
}

static double seconds(struct timespec ts) { return ts.tv_sec + ts.tv_nsec / 1e9; }

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    const char *dir = argv[1];
    sigset_t wait_mask;
    usr1_only_in_sigsuspend(on_usr1, &wait_mask);
    signal(SIGALRM, on_alrm);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sa.sa_sigaction = on_rt0;
    sigaction(SIGRTMIN, &sa, NULL);
    sa.sa_sigaction = on_rt1;
    sigaction(SIGRTMIN + 1, &sa, NULL);

    pthread_t th;
    pthread_create(&th, NULL, worker, NULL);
    while (!worker_tid)
        usleep(1000);

    timer_t t0 = make(CLOCK_MONOTONIC, SIGEV_SIGNAL, SIGRTMIN, (void *)0x1234, 0);
    timer_t t1 = make(CLOCK_BOOTTIME, SIGEV_THREAD_ID, SIGRTMIN + 1, NULL, worker_tid);
    timer_t gap = make(CLOCK_MONOTONIC, SIGEV_NONE, 0, NULL, 0);
    timer_t t3 = make(CLOCK_REALTIME, SIGEV_NONE, 0, NULL, 0);
    timer_t t4 = make(CLOCK_MONOTONIC, SIGEV_SIGNAL, SIGRTMIN + 2, NULL, 0);
    timer_t t5 = make(CLOCK_PROCESS_CPUTIME_ID, SIGEV_NONE, 0, NULL, 0);
    timer_delete(gap);
    arm(t0, 50, 50);
    arm(t1, 60, 60);
    arm(t3, 1000 * 1000, 0);
    arm(t5, 500 * 1000, 0);
    struct itimerval real = { { 0, 50000 }, { 0, 50000 } }, virt = { { 1000, 0 }, { 1000, 0 } },
                     prof = { { 0, 0 }, { 2000, 0 } };
    setitimer(ITIMER_REAL, &real, NULL);
    setitimer(ITIMER_VIRTUAL, &virt, NULL);
    setitimer(ITIMER_PROF, &prof, NULL);

    static char before[4096], after[4096];
    read_file("/proc/self/timers", before, sizeof before);
    write_file(dir, "timers", before);
    char ready[64];
    snprintf(ready, sizeof ready, "ready %d %d\n", getpid(), (int)worker_tid);
    write_file(dir, "ready", ready);

    while (!got_usr1)
        sigsuspend(&wait_mask);

    /* Ticks after the restore: three of each within five seconds. */
    alrm = rt0 = rt1 = 0;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    do {
        usleep(20000);
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while ((alrm < 3 || rt0 < 3 || rt1 < 3) && seconds(now) - seconds(start) < 5);
    CHECK("itimer real", alrm >= 3, "%d SIGALRM ticks", (int)alrm);
    CHECK("posix signal", rt0 >= 3, "%d ticks of timer 0", (int)rt0);
    CHECK("posix thread", rt1 >= 3, "%d ticks of timer 1 in the worker", (int)rt1);
    CHECK("posix thread target", rt1_wrong == 0, "%d ticks of timer 1 outside the worker", (int)rt1_wrong);

    read_file("/proc/self/timers", after, sizeof after);
    CHECK("/proc/self/timers", strcmp(before, after) == 0, "before:\n%s\nafter:\n%s", before, after);

    struct itimerval v;
    getitimer(ITIMER_VIRTUAL, &v);
    CHECK("itimer virtual", v.it_interval.tv_sec == 1000 && v.it_value.tv_sec >= 990 && v.it_value.tv_sec <= 1000,
          "interval %ld value %ld", (long)v.it_interval.tv_sec, (long)v.it_value.tv_sec);
    getitimer(ITIMER_PROF, &v);
    CHECK("itimer prof", v.it_interval.tv_sec == 0 && v.it_value.tv_sec >= 1990 && v.it_value.tv_sec <= 2000,
          "interval %ld value %ld", (long)v.it_interval.tv_sec, (long)v.it_value.tv_sec);
    getitimer(ITIMER_REAL, &v);
    CHECK("itimer real interval", v.it_interval.tv_sec == 0 && v.it_interval.tv_usec == 50000,
          "interval %ld.%06ld", (long)v.it_interval.tv_sec, (long)v.it_interval.tv_usec);

    struct itimerspec its;
    CHECK("timer 0", timer_gettime(t0, &its) == 0 && its.it_interval.tv_nsec == 50000000, "interval %ld ns", its.it_interval.tv_nsec);
    CHECK("timer 3", timer_gettime(t3, &its) == 0 && its.it_interval.tv_sec == 0 && its.it_value.tv_sec > 900
          && its.it_value.tv_sec <= 1000, "value %ld s", (long)its.it_value.tv_sec);
    CHECK("timer 4", timer_gettime(t4, &its) == 0 && its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0,
          "never armed, now %ld.%09ld", (long)its.it_value.tv_sec, its.it_value.tv_nsec);
    CHECK("timer 5", timer_gettime(t5, &its) == 0 && its.it_value.tv_sec > 490 && its.it_value.tv_sec <= 500,
          "value %ld s", (long)its.it_value.tv_sec);
    errno = 0;
    CHECK("deleted timer id stays free", timer_gettime(gap, &its) != 0 && errno == EINVAL, "errno %d", errno);

    write_file(dir, "verdict", failures ? "FAIL\n" : "PASS\n");
    return failures ? 1 : 0;
}
