// Migration workload: MIB MiB of anonymous memory, each page holding its index and a generation. On SIGUSR2
// (a "round") it rewrites PERCENT% of the pages (every (100/PERCENT)-th page, starting at the round number),
// maps and fills one new 64-page region (a VMA the last pre-dump never saw), and writes DIR/round-N holding
// the number of pages it wrote. On SIGUSR1 it checks every page of every region against what it wrote and
// writes DIR/verdict: PASS or FAIL with the first bad page; exit 0 = PASS. Writes DIR/ready once filled.
// usage: mig_dirty DIR MIB PERCENT
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "workload.h"

#define PAGE 4096
#define NEW_PAGES 64
#define MAX_ROUNDS 32

static volatile sig_atomic_t usr1, usr2;
static void on_usr1(int sig) { (void)sig; usr1 = 1; }
static void on_usr2(int sig) { (void)sig; usr2 = 1; }

struct region { uint8_t *mem; size_t pages; uint32_t *gen; };

static void fill_page(uint8_t *p, uint64_t index, uint32_t gen)
{
    uint64_t x = index * 0x9E3779B97F4A7C15ULL + gen + 1;
    for (size_t i = 0; i < PAGE / 8; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        ((uint64_t *)p)[i] = x;
    }
}

static int page_ok(const uint8_t *p, uint64_t index, uint32_t gen)
{
    uint8_t want[PAGE];
    fill_page(want, index, gen);
    return memcmp(p, want, PAGE) == 0;
}

static struct region map_region(size_t pages, uint64_t base)
{
    struct region r = { mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), pages,
                        calloc(pages, sizeof(uint32_t)) };
    if (r.mem == MAP_FAILED || !r.gen) { perror("mmap"); exit(2); }
    for (size_t i = 0; i < pages; i++)
        fill_page(r.mem + i * PAGE, base + i, 0);
    return r;
}

int main(int argc, char **argv)
{
    if (argc < 4) return 2;
    const char *dir = argv[1];
    size_t pages = ((size_t)atol(argv[2]) << 20) / PAGE;
    int percent = atoi(argv[3]);
    int stride = percent > 0 ? 100 / percent : 0;
    struct region regions[MAX_ROUNDS + 1];
    int nregions = 0, round = 0;
    regions[nregions++] = map_region(pages, 0);

    sigset_t wait_mask, both;
    sigemptyset(&both);
    sigaddset(&both, SIGUSR1);
    sigaddset(&both, SIGUSR2);
    sigprocmask(SIG_BLOCK, &both, &wait_mask);
    sigdelset(&wait_mask, SIGUSR1);
    sigdelset(&wait_mask, SIGUSR2);
    signal(SIGUSR1, on_usr1);
    signal(SIGUSR2, on_usr2);
    write_file(dir, "ready", "ready\n");

    for (;;) {
        while (!usr1 && !usr2)
            sigsuspend(&wait_mask);
        if (usr2) {
            usr2 = 0;
            round++;
            size_t written = 0;
            struct region *r = &regions[0];
            for (size_t i = (size_t)round % (stride ? stride : 1); stride && i < r->pages; i += stride) {
                r->gen[i]++;
                fill_page(r->mem + i * PAGE, i, r->gen[i]);
                written++;
            }
            if (nregions <= MAX_ROUNDS) {
                regions[nregions] = map_region(NEW_PAGES, 1000000ULL * (uint64_t)nregions);
                nregions++;
                written += NEW_PAGES;
            }
            char name[32], text[32];
            snprintf(name, sizeof name, "round-%d", round);
            snprintf(text, sizeof text, "%zu\n", written);
            write_file(dir, name, text);
        }
        if (usr1) {
            for (int k = 0; k < nregions; k++) {
                struct region *r = &regions[k];
                uint64_t base = k == 0 ? 0 : 1000000ULL * (uint64_t)k;
                for (size_t i = 0; i < r->pages; i++) {
                    if (!page_ok(r->mem + i * PAGE, base + i, r->gen[i])) {
                        char text[96];
                        snprintf(text, sizeof text, "FAIL region %d page %zu (gen %u)\n", k, i, r->gen[i]);
                        write_file(dir, "verdict", text);
                        return 1;
                    }
                }
            }
            write_file(dir, "verdict", "PASS\n");
            return 0;
        }
    }
}
