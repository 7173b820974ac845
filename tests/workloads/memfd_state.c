/*
 * memfd_state DIR -- memfds across a checkpoint.
 *   A "crisp-a": sealing allowed, 3 pages + 100 bytes, seals SHRINK|GROW, fd at position 1234, mapped
 *     twice MAP_SHARED (a read-write view and a read-only view, as .NET's double mapping does) plus a
 *     view made read-only by mprotect (it must become writable again after restore).
 *   B "crisp-b": mapped MAP_SHARED, its fd closed: only the mapping keeps it.
 *   C "crisp-c": mapped MAP_PRIVATE with one page copied-on-write (private data differs from the file).
 *   D "crisp-d": no mapping, sealed WRITE|SEAL (writes must fail after restore).
 *   E "crisp-e": created without MFD_ALLOW_SEALING (F_GET_SEALS says F_SEAL_SEAL only).
 * Writes DIR/ready ("ready PID"), waits in sigsuspend() for SIGUSR1, then checks names, contents, sizes,
 * seals, positions and that the mapping and the fd of A see each other's writes. Verdict in DIR/verdict:
 * "PASS" or "FAIL: ..." lines; exit 0 on pass, 1 on fail, 2 on setup error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define PG 4096
#define ASIZE (3 * PG + 100)

static volatile int got_usr1;
static char verdict[8192];
static int vl, failed;

static void on_usr1(int sig) { (void)sig; got_usr1 = 1; }

#define FAIL(...) do { vl += snprintf(verdict + vl, sizeof verdict - vl, "FAIL: " __VA_ARGS__); \
                       vl += snprintf(verdict + vl, sizeof verdict - vl, "\n"); failed = 1; } while (0)
#define SETUP(c) do { if (!(c)) { perror(#c); exit(2); } } while (0)

static unsigned char pattern(int which, long off) { return (unsigned char)(which * 37 + off * 7 + off / PG); }

static void fill(int fd, int which, long size)
{
    unsigned char *buf = malloc(size);
    for (long i = 0; i < size; i++)
        buf[i] = pattern(which, i);
    SETUP(pwrite(fd, buf, size, 0) == size);
    free(buf);
}

static int check_bytes(const unsigned char *p, int which, long from, long to)
{
    for (long i = from; i < to; i++)
        if (p[i - from] != pattern(which, i))
            return 0;
    return 1;
}

static void check_name(int fd, const char *want)
{
    char path[64], link[256] = "";
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(path, link, sizeof link - 1);
    if (n < 0 || strcmp(link, want) != 0)
        FAIL("fd %d links to '%s', not '%s'", fd, link, want);
}

static int maps_has(const char *name, const void *at)
{
    char line[512], want[64];
    snprintf(want, sizeof want, "%lx-", (unsigned long)at);
    FILE *f = fopen("/proc/self/maps", "r");
    int found = 0;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, want, strlen(want)) == 0 && strstr(line, name))
            found = 1;
    if (f)
        fclose(f);
    return found;
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        exit(2);
    fputs(text, f);
    fclose(f);
    rename(tmp, path);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    struct sigaction sa = { .sa_handler = on_usr1 };
    sigaction(SIGUSR1, &sa, NULL);
    /* SIGUSR1 opens only inside sigsuspend: a pause() loop loses one that lands between its flag check
     * and the call. */
    sigset_t usr1, outside;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, &outside);

    int a = memfd_create("crisp-a", MFD_ALLOW_SEALING);
    SETUP(a >= 0 && ftruncate(a, ASIZE) == 0);
    fill(a, 1, ASIZE);
    unsigned char *rw = mmap(NULL, ASIZE, PROT_READ | PROT_WRITE, MAP_SHARED, a, 0);
    unsigned char *ro = mmap(NULL, ASIZE, PROT_READ, MAP_SHARED, a, 0);
    unsigned char *flip = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, a, PG);
    SETUP(rw != MAP_FAILED && ro != MAP_FAILED && flip != MAP_FAILED && mprotect(flip, PG, PROT_READ) == 0);
    SETUP(fcntl(a, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) == 0);
    SETUP(lseek(a, 1234, SEEK_SET) == 1234);

    int b = memfd_create("crisp-b", 0);
    SETUP(b >= 0 && ftruncate(b, 2 * PG) == 0);
    unsigned char *bm = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, b, 0);
    SETUP(bm != MAP_FAILED);
    for (long i = 0; i < 2 * PG; i++)
        bm[i] = pattern(2, i);
    close(b);

    int c = memfd_create("crisp-c", 0);
    SETUP(c >= 0 && ftruncate(c, 2 * PG) == 0);
    fill(c, 3, 2 * PG);
    unsigned char *cm = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, c, 0);
    SETUP(cm != MAP_FAILED);
    memset(cm + PG, 0x5a, PG);   /* page 1 copied on write; page 0 still the file's */

    int d = memfd_create("crisp-d", MFD_ALLOW_SEALING);
    SETUP(d >= 0);
    SETUP(write(d, "sealed contents", 15) == 15);
    SETUP(fcntl(d, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SEAL) == 0);

    int e = memfd_create("crisp-e", 0);
    SETUP(e >= 0 && write(e, "e", 1) == 1);

    char ready[256];
    snprintf(ready, sizeof ready, "ready %d\n", getpid());
    write_file(argv[1], "ready", ready);
    while (!got_usr1)
        sigsuspend(&outside);

    /* A: name, size, seals, position, contents through every view, coherence both ways. */
    check_name(a, "/memfd:crisp-a (deleted)");
    struct stat st;
    if (fstat(a, &st) != 0 || st.st_size != ASIZE)
        FAIL("A size %ld", (long)st.st_size);
    if (fcntl(a, F_GET_SEALS) != (F_SEAL_SHRINK | F_SEAL_GROW))
        FAIL("A seals 0x%x", fcntl(a, F_GET_SEALS));
    if (lseek(a, 0, SEEK_CUR) != 1234)
        FAIL("A position %ld", (long)lseek(a, 0, SEEK_CUR));
    if (!check_bytes(rw, 1, 0, ASIZE) || !check_bytes(ro, 1, 0, ASIZE) || !check_bytes(flip, 1, PG, 2 * PG))
        FAIL("A contents through the mappings");
    if (ftruncate(a, 10) == 0 || errno != EPERM)
        FAIL("A shrank despite F_SEAL_SHRINK");
    rw[5] = 0xee;
    unsigned char byte = 0;
    if (pread(a, &byte, 1, 5) != 1 || byte != 0xee || ro[5] != 0xee)
        FAIL("A mapping write not seen through the fd/other view (%x, %x)", byte, ro[5]);
    byte = 0x77;
    if (pwrite(a, &byte, 1, PG + 9) != 1 || rw[PG + 9] != 0x77 || ro[PG + 9] != 0x77 || flip[9] != 0x77)
        FAIL("A fd write not seen through the mappings");
    if (mprotect(flip, PG, PROT_READ | PROT_WRITE) != 0)
        FAIL("A read-only view cannot be made writable again: %s", strerror(errno));
    else {
        flip[10] = 0x66;
        if (rw[PG + 10] != 0x66)
            FAIL("A flipped view not shared");
    }
    if (!maps_has("/memfd:crisp-a (deleted)", ro))
        FAIL("A read-only view not named in maps");

    /* B: only mapped. */
    if (!check_bytes(bm, 2, 0, 2 * PG))
        FAIL("B contents");
    if (!maps_has("/memfd:crisp-b (deleted)", bm))
        FAIL("B not named in maps");

    /* C: private copy of page 1, file page 0. */
    if (!check_bytes(cm, 3, 0, PG))
        FAIL("C page 0 (file)");
    for (int i = 0; i < PG; i++)
        if (cm[PG + i] != 0x5a) {
            FAIL("C private page at %d: %x", i, cm[PG + i]);
            break;
        }
    if (pread(c, &byte, 1, PG) != 1 || byte != pattern(3, PG))
        FAIL("C file page 1 changed by the private copy");

    /* D: sealed against writes. */
    char buf[32] = "";
    if (fcntl(d, F_GET_SEALS) != (F_SEAL_WRITE | F_SEAL_SEAL))
        FAIL("D seals 0x%x", fcntl(d, F_GET_SEALS));
    if (pread(d, buf, sizeof buf, 0) != 15 || memcmp(buf, "sealed contents", 15) != 0)
        FAIL("D contents '%s'", buf);
    if (pwrite(d, "x", 1, 0) != -1 || errno != EPERM)
        FAIL("D writable despite F_SEAL_WRITE");
    check_name(d, "/memfd:crisp-d (deleted)");

    /* E: sealing not allowed. */
    if (fcntl(e, F_GET_SEALS) != F_SEAL_SEAL)
        FAIL("E seals 0x%x", fcntl(e, F_GET_SEALS));
    if (lseek(e, 0, SEEK_CUR) != 1)
        FAIL("E position");

    if (!failed)
        snprintf(verdict + vl, sizeof verdict - vl, "PASS\n");
    write_file(argv[1], "verdict", verdict);
    return failed;
}
