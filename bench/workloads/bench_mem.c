// Benchmark workload: fills memory with pseudo-random data, checksums it, and on SIGUSR1 (after a
// restore) checksums again and reports "ok"/"BAD" in its state file, then exits.
// A ticker thread sleeps 1 ms at a time and keeps the longest gap between wake-ups: SIGUSR2 writes
// "gap <us>" to the state file and resets it, so a --leave-running dump's freeze time is measured
// by the workload itself.
//
// usage: bench_mem STATEFILE MODE ARG
//   dense MiB     one anonymous mapping, every page touched
//   sparse GiB    a GiB-sized MAP_NORESERVE mapping, every 100th page touched
//   vmas N        N separate 2-page mappings (alternating protections so they never merge)
//   procs N       N children with 1 MiB each, every one checks itself
//   threads N     N extra threads blocked in sigwait; 16 MiB of memory
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL

static const char *state;
static _Atomic long max_gap_ns;
static struct { char *addr; size_t len; } regions[20000];
static int nregions;
static size_t stride = 1;   // pages: every stride-th page is touched and checked

static void say(const char *line)
{
    FILE *f = fopen(state, "a");
    if (!f) _exit(2);
    fputs(line, f);
    fclose(f);
}

static long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

static void *ticker(void *arg)
{
    (void)arg;
    long last = now_ns();
    for (;;) {
        struct timespec d = {0, 1000000};
        nanosleep(&d, NULL);
        long t = now_ns(), gap = t - last;
        last = t;
        if (gap > atomic_load(&max_gap_ns)) atomic_store(&max_gap_ns, gap);
    }
    return NULL;
}

static void *sleeper(void *arg)
{
    (void)arg;
    for (;;) pause();
    return NULL;
}

static void fill(uint64_t seed)
{
    for (int r = 0; r < nregions; r++)
        for (size_t off = 0; off < regions[r].len; off += stride * PAGE) {
            uint64_t *p = (uint64_t *)(regions[r].addr + off), x = seed ^ ((uintptr_t)p * 0x9E3779B97F4A7C15ULL);
            for (size_t i = 0; i < PAGE / 8; i++) {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                p[i] = x;
            }
        }
}

static uint64_t checksum(void)
{
    uint64_t h = 1469598103934665603ULL;
    for (int r = 0; r < nregions; r++)
        for (size_t off = 0; off < regions[r].len; off += stride * PAGE) {
            const uint64_t *p = (const uint64_t *)(regions[r].addr + off);
            for (size_t i = 0; i < PAGE / 8; i++) h = (h ^ p[i]) * 1099511628211ULL + i;
        }
    return h;
}

static void *map(size_t len, int prot, int extra)
{
    void *p = mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS | extra, -1, 0);
    if (p == MAP_FAILED) { perror("mmap"); exit(1); }
    return p;
}

// Waits for SIGUSR1 (check and exit) and SIGUSR2 (report the longest ticker gap).
static int serve(uint64_t sum, int report)   // report: say ok/BAD
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    for (;;) {
        int sig;
        if (sigwait(&set, &sig) != 0) continue;
        if (sig == SIGUSR2) {
            char line[64];
            snprintf(line, sizeof line, "gap %ld\n", atomic_exchange(&max_gap_ns, 0) / 1000);
            say(line);
            continue;
        }
        int good = checksum() == sum;
        if (report) say(good ? "ok\n" : "BAD\n");
        return good ? 0 : 1;
    }
}

int main(int argc, char **argv)
{
    if (argc != 4) { fprintf(stderr, "usage: bench_mem STATE dense|sparse|vmas|procs|threads N\n"); return 2; }
    state = argv[1];
    const char *mode = argv[2];
    long n = atol(argv[3]);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    sigprocmask(SIG_BLOCK, &set, NULL);   // inherited by every thread and child

    int children = 0;
    if (!strcmp(mode, "dense")) {
        regions[0].len = (size_t)n << 20;
        regions[0].addr = map(regions[0].len, PROT_READ | PROT_WRITE, 0);
        nregions = 1;
    } else if (!strcmp(mode, "sparse")) {
        regions[0].len = (size_t)n << 30;
        regions[0].addr = map(regions[0].len, PROT_READ | PROT_WRITE, MAP_NORESERVE);
        nregions = 1;
        stride = 100;
    } else if (!strcmp(mode, "vmas")) {
        if (n > 20000) n = 20000;
        for (int i = 0; i < n; i++) {
            regions[i].len = 2 * PAGE;
            regions[i].addr = map(2 * PAGE, PROT_READ | PROT_WRITE, 0);
            // Alternating protections keep neighbours from merging into one VMA.
            if (i % 2) mprotect(regions[i].addr + PAGE, PAGE, PROT_READ | PROT_WRITE | PROT_EXEC);
        }
        nregions = n;
    } else if (!strcmp(mode, "procs")) {
        regions[0].len = 1 << 20;
        regions[0].addr = map(regions[0].len, PROT_READ | PROT_WRITE, 0);
        nregions = 1;
        children = n;
    } else if (!strcmp(mode, "threads")) {
        regions[0].len = 16 << 20;
        regions[0].addr = map(regions[0].len, PROT_READ | PROT_WRITE, 0);
        nregions = 1;
        for (int i = 0; i < n; i++) {
            pthread_t t;
            pthread_attr_t a;
            pthread_attr_init(&a);
            pthread_attr_setstacksize(&a, 64 << 10);
            if (pthread_create(&t, &a, sleeper, NULL)) { perror("pthread_create"); return 1; }
        }
    } else {
        fprintf(stderr, "bench_mem: unknown mode %s\n", mode);
        return 2;
    }

    if (children > 0) {
        // Each child fills its own copy differently and checks itself; the parent reports all.
        pid_t pids[1000];
        for (int i = 0; i < children && i < 1000; i++) {
            pids[i] = fork();
            if (pids[i] == 0) {
                fill(1000 + i);
                _exit(serve(checksum(), 0));
            }
        }
        fill(1);
        uint64_t sum = checksum();
        pthread_t t;
        pthread_create(&t, NULL, ticker, NULL);
        say("ready\n");
        int bad = serve(sum, 0);   // the parent's own verdict, then its children's
        for (int i = 0; i < children; i++) {
            kill(pids[i], SIGUSR1);
            int st;
            if (waitpid(pids[i], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) bad = 1;
        }
        say(bad ? "BAD\n" : "ok\n");
        return bad;
    }

    fill(42);
    uint64_t sum = checksum();
    pthread_t t;
    pthread_create(&t, NULL, ticker, NULL);
    say("ready\n");
    return serve(sum, 1);
}
