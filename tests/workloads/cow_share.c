/*
 * cow_share MIB  -- copy-on-write sharing between a parent and its forked child.
 *
 * The parent maps MIB MiB of private anonymous memory and fills every page with a pattern of its index, then
 * forks a child that rewrites CHANGED of those pages with a pattern of its own. Stdout: "ready PARENT CHILD ADDR
 * PAGES" (ADDR in hex); the test compares the two tasks' /proc/PID/pagemap frames over the area. Both wait in
 * sigsuspend for SIGUSR1 (blocked elsewhere, so one sent early stays pending), any number of checkpoints apart.
 *
 * SIGUSR1 to the parent: it checks its pages, writes a shared page (PARENT_WRITES) and wakes the child with
 * SIGUSR1; the child checks its pages — its changed ones, the rest the parent's pattern, the page the parent just
 * wrote unchanged for it (copy-on-write is still private) — writes another shared page and exits 0 only if all
 * held. The parent reaps it, checks the child's write did not reach it, and prints PASS or FAIL lines, exit 0/1.
 */
#define _GNU_SOURCE
#include "workload.h"
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define PAGE 4096
#define CHANGED 8
#define PARENT_WRITES 5
#define CHILD_WRITES 6

static volatile sig_atomic_t got_usr1;
static void on_usr1(int sig) { (void)sig; got_usr1 = 1; }

static uint64_t parent_word(size_t page, size_t i) { return 0x9e3779b97f4a7c15ull * (page + 1) + i; }
static uint64_t child_word(size_t page, size_t i) { return 0xc2b2ae3d27d4eb4full * (page + 1) ^ i; }
static uint64_t marker_word(size_t page, size_t i) { return 0xfeedface00000000ull | (page << 12) | i; }

/* The pages the child rewrote: spread over the area. */
static int changed(size_t page, size_t pages)
{
    for (size_t k = 0; k < CHANGED; k++)
        if (page == (k * pages) / CHANGED + 3)
            return 1;
    return 0;
}

static void fill(uint64_t *p, size_t page, uint64_t (*word)(size_t, size_t))
{
    for (size_t i = 0; i < PAGE / 8; i++)
        p[i] = word(page, i);
}

static int holds(const uint64_t *p, size_t page, uint64_t (*word)(size_t, size_t))
{
    for (size_t i = 0; i < PAGE / 8; i++)
        if (p[i] != word(page, i))
            return 0;
    return 1;
}

static void wait_usr1(const sigset_t *mask)
{
    while (!got_usr1)
        sigsuspend(mask);
    got_usr1 = 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: cow_share MIB\n");
        return 2;
    }
    sigset_t wait_mask;
    workload_begin(on_usr1, &wait_mask);
    size_t pages = (size_t)atol(argv[1]) * 256;
    char *area = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (area == MAP_FAILED) {
        perror("mmap");
        return 2;
    }
    for (size_t n = 0; n < pages; n++)
        fill((uint64_t *)(area + n * PAGE), n, parent_word);

    pid_t child = fork();
    if (child < 0) {
        perror("fork");
        return 2;
    }
    if (child == 0) {
        for (size_t n = 0; n < pages; n++)
            if (changed(n, pages))
                fill((uint64_t *)(area + n * PAGE), n, child_word);
        wait_usr1(&wait_mask);
        int bad = 0;
        for (size_t n = 0; n < pages; n++) {
            uint64_t (*want)(size_t, size_t) = changed(n, pages) ? child_word : parent_word;
            if (!holds((uint64_t *)(area + n * PAGE), n, want)) {
                fprintf(stderr, "FAIL: child: page %zu%s\n", n, n == PARENT_WRITES ? " (the parent's write reached the child)" : "");
                if (++bad > 10)
                    break;
            }
        }
        fill((uint64_t *)(area + CHILD_WRITES * PAGE), CHILD_WRITES, marker_word);
        _exit(bad ? 1 : 0);
    }
    printf("ready %d %d %lx %zu\n", (int)getpid(), (int)child, (unsigned long)area, pages);

    wait_usr1(&wait_mask);
    int bad = 0;
    for (size_t n = 0; n < pages; n++) {
        if (!holds((uint64_t *)(area + n * PAGE), n, parent_word)) {
            printf("FAIL: parent: page %zu\n", n);
            if (++bad > 10)
                break;
        }
    }
    fill((uint64_t *)(area + PARENT_WRITES * PAGE), PARENT_WRITES, marker_word);
    kill(child, SIGUSR1);
    int status;
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        printf("FAIL: child ended with status 0x%x\n", status);
        bad++;
    }
    if (!holds((uint64_t *)(area + CHILD_WRITES * PAGE), CHILD_WRITES, parent_word)) {
        printf("FAIL: parent: the child's write reached page %d\n", CHILD_WRITES);
        bad++;
    }
    if (!holds((uint64_t *)(area + PARENT_WRITES * PAGE), PARENT_WRITES, marker_word)) {
        printf("FAIL: parent: its own write to page %d is lost\n", PARENT_WRITES);
        bad++;
    }
    printf(bad ? "FAIL\n" : "PASS\n");
    return bad ? 1 : 0;
}
