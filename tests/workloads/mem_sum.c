// Footprint workload: MIB MiB of anonymous memory filled with a pseudo-random stream and checksummed whole,
// plus KIDS children (a tree: each child forks the next) that checksum 1 MiB of their own. Writes DIR/ready
// once set up; on SIGUSR1 (only inside sigsuspend) every process checks its checksum again, children first,
// and the root writes DIR/verdict: PASS or FAIL with what differed; exit 0 = PASS.
// usage: mem_sum DIR MIB [KIDS]
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include "workload.h"

static volatile sig_atomic_t woken;
static void on_usr1(int sig) { (void)sig; woken = 1; }

static uint64_t fill(uint64_t *p, size_t words, uint64_t seed)
{
    uint64_t x = seed, sum = 0;
    for (size_t i = 0; i < words; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        p[i] = x;
        sum = sum * 31 + x;
    }
    return sum;
}

static uint64_t checksum(const uint64_t *p, size_t words)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < words; i++)
        sum = sum * 31 + p[i];
    return sum;
}

static uint64_t *region(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) { perror("mmap"); exit(2); }
    return p;
}

// Waits for SIGUSR1, has the next child (if any) check itself, then checks this process's memory.
static int serve(uint64_t *mem, size_t words, uint64_t sum, pid_t child, sigset_t *wait_mask)
{
    while (!woken)
        sigsuspend(wait_mask);
    int bad = checksum(mem, words) != sum;
    if (child > 0) {
        int status = 0;
        kill(child, SIGUSR1);
        if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            bad |= 2;
    }
    return bad;
}

int main(int argc, char **argv)
{
    if (argc < 3) return 2;
    const char *dir = argv[1];
    size_t bytes = (size_t)atol(argv[2]) << 20;
    int kids = argc > 3 ? atoi(argv[3]) : 0;
    sigset_t wait_mask;
    usr1_only_in_sigsuspend(on_usr1, &wait_mask);

    // A chain KIDS deep: each process forks the next; level 0 is the root.
    int level = 0;
    pid_t child = 0;
    while (level < kids) {
        child = fork();
        if (child < 0) { perror("fork"); return 2; }
        if (child > 0)
            break;
        level++;
        child = 0;
    }
    size_t size = level == 0 ? bytes : 1 << 20;
    uint64_t *mem = region(size);
    uint64_t sum = fill(mem, size / 8, 0x2545f4914f6cdd1dULL + level);
    char name[64];
    if (level > 0) {
        snprintf(name, sizeof name, "ready-%d", level);
        write_file(dir, name, "ok\n");
        return serve(mem, size / 8, sum, child, &wait_mask);
    }
    for (int k = 1; k <= kids; k++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/ready-%d", dir, k);
        while (access(path, F_OK) != 0)
            usleep(1000);
    }
    write_file(dir, "ready", "ready\n");
    int bad = serve(mem, size / 8, sum, child, &wait_mask);
    write_file(dir, "verdict", bad == 0 ? "PASS\n" : (bad & 1) ? "FAIL memory checksum differs\n" : "FAIL a child failed\n");
    return bad;
}
