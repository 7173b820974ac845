// Lazy restore workload: MIB MiB of anonymous memory, each page filled from its index. Writes DIR/ready once
// filled; then every 10 ms a tick that touches none of that memory: a line "N RESIDENT TOTAL" appended to DIR/ticks,
// the tick count and how many of the buffer's pages are resident (mincore: a page a lazy restore has not copied in
// yet is not). On SIGUSR1 it checks every page and writes DIR/verdict: PASS or FAIL with the first bad page; exit 0 = PASS.
// With "fork": at the first tick that finds pages missing (only after a lazy restore) it forks a child that checks
// every page itself (its copy of each missing page must be the dumped one too); the verdict includes the child's.
// With "rewrite": every tick also writes 1024 pages (round robin) again with their own contents, so most pages are
// written again while a migration pre-dumps them, and the final dump finds them dirty.
// usage: lazy_mem DIR MIB [fork|rewrite]
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "workload.h"

#define PAGE 4096

static volatile sig_atomic_t usr1;
static void on_usr1(int sig) { (void)sig; usr1 = 1; }

static void fill_page(uint64_t *p, uint64_t index);

/* The first page that differs from what was written, or -1. */
static long first_bad(const uint8_t *mem, size_t pages)
{
    uint64_t want[PAGE / 8];
    for (size_t i = 0; i < pages; i++) {
        fill_page(want, i);
        if (memcmp(mem + i * PAGE, want, PAGE) != 0)
            return (long)i;
    }
    return -1;
}

static void fill_page(uint64_t *p, uint64_t index)
{
    uint64_t x = index * 0x9E3779B97F4A7C15ULL + 0x5bd1e995;
    for (size_t i = 0; i < PAGE / 8; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        p[i] = x;
    }
}

int main(int argc, char **argv)
{
    if (argc < 3) return 2;
    setsid();   // its own session (under unshare --fork it is not the leader of unshare's)
    const char *dir = argv[1];
    size_t pages = ((size_t)atol(argv[2]) << 20) / PAGE;
    int fork_when_missing = argc > 3 && strcmp(argv[3], "fork") == 0;
    int rewrite = argc > 3 && strcmp(argv[3], "rewrite") == 0;
    size_t next_rewrite = 0;
    pid_t child = 0;
    uint8_t *mem = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    unsigned char *vec = malloc(pages);
    if (mem == MAP_FAILED || !vec) { perror("mmap"); return 2; }
    for (size_t i = 0; i < pages; i++)
        fill_page((uint64_t *)(mem + i * PAGE), i);
    signal(SIGUSR1, on_usr1);
    write_file(dir, "ready", "ready\n");

    for (long tick = 1; !usr1; tick++) {
        size_t resident = 0;
        if (mincore(mem, pages * PAGE, vec) == 0)
            for (size_t i = 0; i < pages; i++)
                resident += vec[i] & 1;
        if (fork_when_missing && child == 0 && resident < pages) {
            child = fork();
            if (child == 0)
                _exit(first_bad(mem, pages) < 0 ? 0 : 1);
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/ticks", dir);
        FILE *f = fopen(path, "a");
        if (f) {
            fprintf(f, "%ld %zu %zu\n", tick, resident, pages);
            fclose(f);
        }
        for (int i = 0; rewrite && i < 1024; i++, next_rewrite = (next_rewrite + 1) % pages)
            fill_page((uint64_t *)(mem + next_rewrite * PAGE), next_rewrite);
        struct timespec ts = { 0, 10 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    long bad = first_bad(mem, pages);
    if (bad >= 0) {
        char line[96];
        snprintf(line, sizeof line, "FAIL page %ld of %zu differs\n", bad, pages);
        write_file(dir, "verdict", line);
        return 1;
    }
    if (fork_when_missing) {
        int status = 0;
        if (child <= 0) {
            write_file(dir, "verdict", "FAIL it never saw a page missing, so it never forked\n");
            return 1;
        }
        if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            write_file(dir, "verdict", "FAIL the child forked while pages were missing saw a page differ\n");
            return 1;
        }
    }
    write_file(dir, "verdict", "PASS\n");
    return 0;
}
