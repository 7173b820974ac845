/*
 * hugetlb_state DIR -- hugetlb memory (2 MiB pages) across a checkpoint.
 *   P: MAP_PRIVATE|MAP_ANONYMOUS|MAP_HUGETLB, two huge pages, the first filled, the second with one
 *      written byte run in its middle.
 *   S: MAP_SHARED|MAP_ANONYMOUS|MAP_HUGETLB, one huge page, filled.
 *   M: memfd_create("crisp-huge", MFD_HUGETLB|MFD_HUGE_2MB), 4 MiB, mapped MAP_SHARED and filled; its fd
 *      kept at position 12345.
 * Writes DIR/ready ("ready PID"), waits in sigsuspend() for SIGUSR1, then checks contents, that each area
 * is still hugetlb (smaps KernelPageSize 2048 kB, VmFlags ht), its maps name ("/anon_hugepage", "/memfd:
 * crisp-huge") and sharing mode, the memfd's size, position and that its fd and mapping see each other's
 * writes. Verdict in DIR/verdict: "PASS" or "FAIL: ..." lines; exit 0 on pass, 1 on fail, 2 on setup error.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/memfd.h>
#include "workload.h"

#define HP (2UL << 20)
#define MSIZE (2 * HP)

static volatile int got_usr1;
static char verdict[8192];
static int vl, failed;

static void on_usr1(int sig) { (void)sig; got_usr1 = 1; }

#define FAIL(...) do { vl += snprintf(verdict + vl, sizeof verdict - vl, "FAIL: " __VA_ARGS__); \
                       vl += snprintf(verdict + vl, sizeof verdict - vl, "\n"); failed = 1; } while (0)
#define SETUP(c) do { if (!(c)) { perror(#c); exit(2); } } while (0)

static unsigned char pattern(int which, unsigned long off) { return (unsigned char)(which * 41 + off * 13 + off / 4096); }

static void fill(unsigned char *p, int which, unsigned long from, unsigned long to)
{
    for (unsigned long i = from; i < to; i++)
        p[i] = pattern(which, i);
}

static int same(const unsigned char *p, int which, unsigned long from, unsigned long to)
{
    for (unsigned long i = from; i < to; i++)
        if (p[i] != pattern(which, i))
            return 0;
    return 1;
}

/* The smaps block of the VMA at AT: its maps line, KernelPageSize and whether VmFlags has "ht". */
static void check_vma(const char *what, const void *at, const char *name, char mode)
{
    char line[512], want[64], maps[512] = "";
    long kps = -1;
    int ht = 0, in = 0;
    snprintf(want, sizeof want, "%lx-", (unsigned long)at);
    FILE *f = fopen("/proc/self/smaps", "r");
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, want, strlen(want)) == 0) {   /* its maps line; VmFlags ends the block */
            in = 1;
            snprintf(maps, sizeof maps, "%s", line);
            continue;
        }
        if (!in)
            continue;
        if (sscanf(line, "KernelPageSize: %ld kB", &kps) == 1)
            continue;
        if (strncmp(line, "VmFlags:", 8) == 0) {
            ht = strstr(line, " ht") != NULL;
            in = 0;
        }
    }
    if (f)
        fclose(f);
    if (!maps[0]) {
        FAIL("%s: no VMA at %p", what, at);
        return;
    }
    maps[strcspn(maps, "\n")] = 0;
    if (kps != 2048)
        FAIL("%s: KernelPageSize %ld kB, not 2048 (%s)", what, kps, maps);
    if (!ht)
        FAIL("%s: VmFlags without ht (%s)", what, maps);
    if (!strstr(maps, name))
        FAIL("%s: maps line '%s' does not name %s", what, maps, name);
    char *perm = strchr(maps, ' ');
    if (!perm || perm[4] != mode)
        FAIL("%s: maps line '%s' is not '%c'", what, maps, mode);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: hugetlb_state DIR\n");
        return 2;
    }
    sigset_t outside;
    workload_begin(on_usr1, &outside);

    unsigned char *priv = mmap(NULL, 2 * HP, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
    SETUP(priv != MAP_FAILED);
    fill(priv, 1, 0, HP);
    fill(priv, 1, HP + 300000, HP + 300100);

    unsigned char *shared = mmap(NULL, HP, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
    SETUP(shared != MAP_FAILED);
    fill(shared, 2, 0, HP);

    int mfd = memfd_create("crisp-huge", MFD_HUGETLB | MFD_HUGE_2MB);
    SETUP(mfd >= 0);
    SETUP(ftruncate(mfd, MSIZE) == 0);
    unsigned char *mem = mmap(NULL, MSIZE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    SETUP(mem != MAP_FAILED);
    fill(mem, 3, 0, MSIZE);
    SETUP(lseek(mfd, 12345, SEEK_SET) == 12345);

    char ready[64];
    snprintf(ready, sizeof ready, "ready %d\n", getpid());
    write_file(argv[1], "ready", ready);
    while (!got_usr1)
        sigsuspend(&outside);

    if (!same(priv, 1, 0, HP) || !same(priv, 1, HP + 300000, HP + 300100))
        FAIL("private hugetlb contents differ");
    for (unsigned long i = HP; i < 2 * HP; i += 4096)
        if (i != HP + 299008 && priv[i] != 0) {   /* the page holding the written run is the only non-zero one */
            FAIL("private hugetlb byte %lu is %d, not 0", i, priv[i]);
            break;
        }
    if (!same(shared, 2, 0, HP))
        FAIL("shared hugetlb contents differ");
    if (!same(mem, 3, 0, MSIZE))
        FAIL("memfd hugetlb contents differ");
    check_vma("private", priv, " /anon_hugepage (deleted)", 'p');
    check_vma("shared", shared, " /anon_hugepage (deleted)", 's');
    check_vma("memfd", mem, "/memfd:crisp-huge", 's');

    struct stat st;
    if (fstat(mfd, &st) != 0 || st.st_size != (off_t)MSIZE)
        FAIL("memfd size %ld, not %lu", (long)st.st_size, MSIZE);
    if (lseek(mfd, 0, SEEK_CUR) != 12345)
        FAIL("memfd position %ld, not 12345", (long)lseek(mfd, 0, SEEK_CUR));
    char link[256] = "";
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", mfd);
    if (readlink(path, link, sizeof link - 1) < 0 || strcmp(link, "/memfd:crisp-huge (deleted)") != 0)
        FAIL("memfd fd links to '%s'", link);
    /* The fd and the mapping are one object: a write through the mapping is read through the fd. */
    mem[HP + 7] = 0xa5;
    unsigned char b = 0;
    if (pread(mfd, &b, 1, HP + 7) != 1 || b != 0xa5)
        FAIL("memfd fd does not see the mapping's write (%d)", b);
    /* Still a private copy: writing it must not show anywhere else; still writable. */
    priv[5] ^= 0xff;
    shared[5] ^= 0xff;

    if (!failed)
        vl += snprintf(verdict + vl, sizeof verdict - vl, "PASS\n");
    write_file(argv[1], "verdict", verdict);
    return failed ? 1 : 0;
}
