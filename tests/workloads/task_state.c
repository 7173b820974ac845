/*
 * task_state DIR -- per-task and per-thread state that a restore must keep (issue "nothing dropped").
 *
 * Main thread: SCHED_BATCH with SCHED_RESET_ON_FORK, nice 5, CPU 0 only, I/O priority best-effort 3,
 * timer slack 123456 ns. Worker 1: SCHED_IDLE, nice 7, I/O idle, timer slack 777 ns, the last CPU
 * only. Worker 2: SCHED_FIFO priority 2. Process: THP disabled, oom_score_adj 321, personality
 * ADDR_NO_RANDOMIZE, umask 027; mappings with MADV_DONTFORK, MADV_WIPEONFORK, MADV_DONTDUMP,
 * MADV_HUGEPAGE, MADV_NOHUGEPAGE, an mlock'd range and a MAP_GROWSDOWN one, each checked by its smaps
 * VmFlags. Writes "ready PID" to DIR/ready; on SIGUSR1 reads everything back, writes DIR/verdict.
 */
#define _GNU_SOURCE
#define WORKLOAD_COUNTED_CHECKS
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "workload.h"

#define IOPRIO(cls, level) (((cls) << 13) | (level))
static int failures;
static atomic_int tids[2], got_usr1;
static int last_cpu;

static void on_usr1(int s) { (void)s; got_usr1 = 1; }
static int ioprio_get_tid(int tid) { return (int)syscall(SYS_ioprio_get, 1, tid); }

static void pin(int tid, int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(tid, sizeof set, &set) != 0)
        perror("sched_setaffinity");
}

static int only_cpu(int tid)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    sched_getaffinity(tid, sizeof set, &set);
    return CPU_COUNT(&set) == 1 ? (CPU_ISSET(0, &set) ? 0 : CPU_ISSET(last_cpu, &set) ? last_cpu : -2) : -1;
}

static void *worker(void *arg)
{
    int which = (int)(long)arg;
    int tid = (int)syscall(SYS_gettid);
    struct sched_param p = { 0 };
    if (which == 0) {
        sched_setscheduler(tid, SCHED_IDLE, &p);
        setpriority(PRIO_PROCESS, tid, 7);
        syscall(SYS_ioprio_set, 1, tid, IOPRIO(3, 0));
        prctl(PR_SET_TIMERSLACK, 777);
        pin(tid, last_cpu);
    } else {
        p.sched_priority = 2;
        if (sched_setscheduler(tid, SCHED_FIFO, &p) != 0)
            perror("SCHED_FIFO");
    }
    tids[which] = tid;
    for (;;)
        pause();
    return NULL;
}

/* Does the smaps entry starting at ADDR list VmFlags flag FLAG? */
static int has_flag(void *addr, const char *flag)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512], start[32];
    snprintf(start, sizeof start, "%lx-", (unsigned long)addr);
    int in = 0, found = 0;
    while (f && fgets(line, sizeof line, f)) {
        if (strchr(line, '-') && strncmp(line, start, strlen(start)) == 0)
            in = 1;
        else if (in && strncmp(line, "VmFlags:", 8) == 0) {
            char pattern[8];
            snprintf(pattern, sizeof pattern, " %s", flag);
            found = strstr(line, pattern) != NULL;
            break;
        }
    }
    if (f)
        fclose(f);
    return found;
}

static char *map(int extra)
{
    char *m = mmap(NULL, 4 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | extra, -1, 0);
    if (m == MAP_FAILED) {
        perror("mmap");
        exit(2);
    }
    m[0] = 1;
    return m;
}

static struct { const char *flag; int advice; char *addr; } advised[] = {
    { "dc", MADV_DONTFORK, 0 }, { "wf", MADV_WIPEONFORK, 0 }, { "dd", MADV_DONTDUMP, 0 },
    { "hg", MADV_HUGEPAGE, 0 }, { "nh", MADV_NOHUGEPAGE, 0 },
};

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    const char *dir = argv[1];
    last_cpu = (int)sysconf(_SC_NPROCESSORS_ONLN) - 1;
    sigset_t wait_mask;
    usr1_only_in_sigsuspend(on_usr1, &wait_mask);

    int me = (int)syscall(SYS_gettid);
    struct sched_param p = { 0 };
    sched_setscheduler(me, SCHED_BATCH | SCHED_RESET_ON_FORK, &p);
    setpriority(PRIO_PROCESS, me, 5);
    syscall(SYS_ioprio_set, 1, me, IOPRIO(2, 3));
    prctl(PR_SET_TIMERSLACK, 123456);
    prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
    personality(ADDR_NO_RANDOMIZE);
    umask(027);
    FILE *oom = fopen("/proc/self/oom_score_adj", "w");
    if (oom) {
        fputs("321", oom);
        fclose(oom);
    }
    for (unsigned i = 0; i < sizeof advised / sizeof advised[0]; i++) {
        advised[i].addr = map(0);
        madvise(advised[i].addr, 4 << 20, advised[i].advice);
    }
    char *locked = map(0);
    mlock(locked, 4096 * 4);
    char *grows = map(MAP_GROWSDOWN);
    pin(me, 0);

    pthread_t th[2];
    pthread_create(&th[0], NULL, worker, (void *)0L);
    pthread_create(&th[1], NULL, worker, (void *)1L);
    while (!tids[0] || !tids[1])
        usleep(1000);
    char ready[64];
    snprintf(ready, sizeof ready, "ready %d %d %d\n", getpid(), (int)tids[0], (int)tids[1]);
    write_file(dir, "ready", ready);

    while (!got_usr1)
        sigsuspend(&wait_mask);

    CHECK("main policy", sched_getscheduler(me) == (SCHED_BATCH | SCHED_RESET_ON_FORK), "%d", sched_getscheduler(me));
    CHECK("main nice", getpriority(PRIO_PROCESS, me) == 5, "%d", getpriority(PRIO_PROCESS, me));
    CHECK("main ioprio", ioprio_get_tid(me) == IOPRIO(2, 3), "0x%x", ioprio_get_tid(me));
    CHECK("main timer slack", prctl(PR_GET_TIMERSLACK) == 123456, "%d", prctl(PR_GET_TIMERSLACK));
    CHECK("main affinity", only_cpu(me) == 0, "%d", only_cpu(me));
    CHECK("worker 1 policy", sched_getscheduler(tids[0]) == SCHED_IDLE, "%d", sched_getscheduler(tids[0]));
    CHECK("worker 1 nice", getpriority(PRIO_PROCESS, tids[0]) == 7, "%d", getpriority(PRIO_PROCESS, tids[0]));
    CHECK("worker 1 ioprio", ioprio_get_tid(tids[0]) == IOPRIO(3, 0), "0x%x", ioprio_get_tid(tids[0]));
    CHECK("worker 1 affinity", only_cpu(tids[0]) == last_cpu, "%d", only_cpu(tids[0]));
    struct sched_param got;
    sched_getparam(tids[1], &got);
    CHECK("worker 2 policy", sched_getscheduler(tids[1]) == SCHED_FIFO && got.sched_priority == 2, "%d prio %d",
          sched_getscheduler(tids[1]), got.sched_priority);
    char buf[64] = "";
    snprintf(buf, sizeof buf, "/proc/self/task/%d/timerslack_ns", (int)tids[0]);
    CHECK("thp disabled", prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0) == 1, "%d", prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0));
    CHECK("personality", personality(0xffffffff) == ADDR_NO_RANDOMIZE, "0x%x", personality(0xffffffff));
    mode_t old = umask(0);
    CHECK("umask", old == 027, "0%o", old);
    oom = fopen("/proc/self/oom_score_adj", "r");
    int adj = 0;
    if (oom) {
        if (fscanf(oom, "%d", &adj) != 1)
            adj = -1;
        fclose(oom);
    }
    CHECK("oom_score_adj", adj == 321, "%d", adj);
    for (unsigned i = 0; i < sizeof advised / sizeof advised[0]; i++)
        CHECK(advised[i].flag, has_flag(advised[i].addr, advised[i].flag), "VmFlags lack %s", advised[i].flag);
    CHECK("mlock", has_flag(locked, "lo"), "VmFlags lack lo");
    CHECK("growsdown", has_flag(grows, "gd"), "VmFlags lack gd");

    write_file(dir, "verdict", failures ? "FAIL\n" : "PASS\n");
    return failures ? 1 : 0;
}
