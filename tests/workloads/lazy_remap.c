// Lazy restore workload for mremap: areas of private anonymous memory with known content (each page filled from its
// area and index), laid out inside one PROT_NONE reservation so no two of them merge. Writes DIR/ready once filled,
// then polls (mincore, touching nothing) every millisecond. The first poll that finds a page of area A not resident
// (only after a lazy restore) acts at once, before the pages are in:
//   move:      A's middle 8 MiB moved (MREMAP_MAYMOVE|MREMAP_FIXED) to T, a reserved address;
//   grow:      B (8 MiB, a PROT_NONE guard after it) grown to 24 MiB, so it moves;
//   shrink:    C (8 MiB) shrunk to 2 MiB, then a fresh 6 MiB mapped where its tail was;
//   dontunmap: D (4 MiB) moved with MREMAP_DONTUNMAP (the old range stays mapped, empty);
//   split:     1 MiB of E made read-only, off the daemon's 1 MiB push chunks (E becomes three VMAs).
// DIR/moved gets "OP MISSING PAGES" per operation: how many of the pages it moved were not resident just before.
// The moved part of A is then checked at once (its pages come on fault). On SIGUSR1 every byte is checked: the
// areas where they are now, the grown tail, the fresh mapping after C and D's old range all zeros; DIR/verdict:
// PASS, or FAIL and the first bad page of each area that is wrong. Exit 0 = PASS.
// usage: lazy_remap DIR
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include "workload.h"

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

#define PAGE 4096UL
#define MIB (1UL << 20)

static volatile sig_atomic_t usr1;
static void on_usr1(int sig) { (void)sig; usr1 = 1; }

static void fill_page(uint64_t *p, uint64_t area, uint64_t index)
{
    uint64_t x = (area << 32 | index) * 0x9E3779B97F4A7C15ULL + 0x5bd1e995;
    for (size_t i = 0; i < PAGE / 8; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        p[i] = x;
    }
}

static char failure[2048] = "FAIL";

/* The bytes at MEM are pages FIRST.. of AREA (AREA 0: zeros). False (and the first bad page added to failure) if not. */
static int check(const char *what, const uint8_t *mem, size_t len, uint64_t area, uint64_t first)
{
    static uint64_t want[PAGE / 8];
    for (size_t i = 0; i < len / PAGE; i++) {
        if (area)
            fill_page(want, area, first + i);
        else
            memset(want, 0, PAGE);
        if (memcmp(mem + i * PAGE, want, PAGE) != 0) {
            size_t used = strlen(failure);
            snprintf(failure + used, sizeof failure - used, " %s: page %zu of %zu differs%s;", what, i, len / PAGE,
                     memcmp(mem + i * PAGE, (uint8_t[PAGE]){0}, PAGE) == 0 ? " (zeros)" : "");
            return 0;
        }
    }
    return 1;
}

static size_t missing(uint8_t *mem, size_t len)
{
    static unsigned char vec[8 * MIB / PAGE];
    size_t n = 0;
    for (size_t at = 0; at < len; at += 8 * MIB) {
        size_t part = len - at < 8 * MIB ? len - at : 8 * MIB;
        if (mincore(mem + at, part, vec) != 0)
            return 0;
        for (size_t i = 0; i < part / PAGE; i++)
            n += !(vec[i] & 1);
    }
    return n;
}

static void fill(uint8_t *mem, size_t len, uint64_t area)
{
    for (size_t i = 0; i < len / PAGE; i++)
        fill_page((uint64_t *)(mem + i * PAGE), area, i);
}

int main(int argc, char **argv)
{
    if (argc < 2) return 2;
    setsid();
    const char *dir = argv[1];
    uint8_t *r = mmap(NULL, 96 * MIB, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (r == MAP_FAILED) { perror("mmap"); return 2; }
    uint8_t *a = r, *b = r + 20 * MIB, *c = r + 40 * MIB, *d = r + 52 * MIB, *e = r + 60 * MIB, *t = r + 72 * MIB;
    struct { uint8_t *at; size_t len; } areas[] = { { a, 16 * MIB }, { b, 8 * MIB }, { c, 8 * MIB }, { d, 4 * MIB }, { e, 4 * MIB } };
    for (int i = 0; i < 5; i++) {
        if (mmap(areas[i].at, areas[i].len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED) {
            perror("mmap");
            return 2;
        }
        fill(areas[i].at, areas[i].len, i + 1);
    }
    sigset_t wait_mask;
    usr1_only_in_sigsuspend(on_usr1, &wait_mask);
    write_file(dir, "ready", "ready\n");

    while (missing(a, 16 * MIB) == 0) {
        struct timespec ts = { 0, 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    char moved[512];
    int n = 0;
    n += snprintf(moved + n, sizeof moved - n, "move %zu %lu\n", missing(a + 4 * MIB, 8 * MIB), 8 * MIB / PAGE);
    if (mremap(a + 4 * MIB, 8 * MIB, 8 * MIB, MREMAP_MAYMOVE | MREMAP_FIXED, t) != t) { perror("mremap move"); return 2; }
    n += snprintf(moved + n, sizeof moved - n, "grow %zu %lu\n", missing(b, 8 * MIB), 8 * MIB / PAGE);
    uint8_t *b2 = mremap(b, 8 * MIB, 24 * MIB, MREMAP_MAYMOVE);
    if (b2 == MAP_FAILED || b2 == b) { perror("mremap grow"); return 2; }
    n += snprintf(moved + n, sizeof moved - n, "shrink %zu %lu\n", missing(c + 2 * MIB, 6 * MIB), 6 * MIB / PAGE);
    if (mremap(c, 8 * MIB, 2 * MIB, 0) != c) { perror("mremap shrink"); return 2; }
    if (mmap(c + 2 * MIB, 6 * MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) != c + 2 * MIB) {
        perror("mmap after shrink");
        return 2;
    }
    n += snprintf(moved + n, sizeof moved - n, "dontunmap %zu %lu\n", missing(d, 4 * MIB), 4 * MIB / PAGE);
    uint8_t *d2 = mremap(d, 4 * MIB, 4 * MIB, MREMAP_MAYMOVE | MREMAP_DONTUNMAP);
    if (d2 == MAP_FAILED) { perror("mremap dontunmap"); return 2; }
    n += snprintf(moved + n, sizeof moved - n, "split %zu %lu\n", missing(e, 4 * MIB), 4 * MIB / PAGE);
    if (mprotect(e + MIB + 8 * PAGE, MIB, PROT_READ) != 0) { perror("mprotect"); return 2; }
    write_file(dir, "moved", moved);

    int ok = check("moved part of A, at once", t, 8 * MIB, 1, 1024);
    while (!usr1)
        sigsuspend(&wait_mask);
    ok &= check("A head", a, 4 * MIB, 1, 0) & check("moved part of A", t, 8 * MIB, 1, 1024) & check("A tail", a + 12 * MIB, 4 * MIB, 1, 3072)
        & check("grown B", b2, 8 * MIB, 2, 0) & check("grown B's tail", b2 + 8 * MIB, 16 * MIB, 0, 0)
        & check("shrunk C", c, 2 * MIB, 3, 0) & check("fresh map after shrunk C", c + 2 * MIB, 6 * MIB, 0, 0)
        & check("D moved with DONTUNMAP", d2, 4 * MIB, 4, 0) & check("D's old range", d, 4 * MIB, 0, 0)
        & check("split E", e, 4 * MIB, 5, 0);
    strcat(failure, "\n");
    write_file(dir, "verdict", ok ? "PASS\n" : failure);
    return ok ? 0 : 1;
}
