// Freeze-time workload (issue 18): MIB MiB of anonymous memory rewritten without pause, one page after the other,
// each page getting the number of the current sweep; at the end of every sweep all pages must hold that number.
// A checkpoint whose pages were not all copied at the moment its registers were (some before, some after the tree
// ran on) restores pages from another sweep, and the next sweep's check fails. Writes DIR/ready after the first
// sweep; on SIGUSR1 finishes the sweep it is in and writes DIR/verdict (PASS, or FAIL with the first bad page),
// exit 0 = PASS. A failed check also writes FAIL and exits 1 at once.
// usage: mem_wave DIR MIB
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
#include "workload.h"

#define PAGE 4096

static volatile sig_atomic_t usr1;
static void on_usr1(int sig) { (void)sig; usr1 = 1; }

int main(int argc, char **argv)
{
    if (argc < 3) return 2;
    const char *dir = argv[1];
    size_t pages = ((size_t)atol(argv[2]) << 20) / PAGE;
    uint64_t *mem = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return 2;
    signal(SIGUSR1, on_usr1);
    for (uint64_t sweep = 1;; sweep++) {
        for (size_t i = 0; i < pages; i++) {
            mem[i * (PAGE / 8)] = sweep;
            mem[i * (PAGE / 8) + PAGE / 8 - 1] = sweep;
        }
        for (size_t i = 0; i < pages; i++) {
            uint64_t a = mem[i * (PAGE / 8)], b = mem[i * (PAGE / 8) + PAGE / 8 - 1];
            if (a != sweep || b != sweep) {
                char text[128];
                snprintf(text, sizeof text, "FAIL page %zu holds sweep %llu/%llu in sweep %llu\n", i,
                         (unsigned long long)a, (unsigned long long)b, (unsigned long long)sweep);
                write_file(dir, "verdict", text);
                return 1;
            }
        }
        if (sweep == 1)
            write_file(dir, "ready", "ready\n");
        if (usr1) {
            write_file(dir, "verdict", "PASS\n");
            return 0;
        }
    }
}
