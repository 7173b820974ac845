// Memory workload: fills heap, a sparse big anonymous mapping, a private file mapping modified in memory,
// a shared anonymous region, read-only and PROT_NONE pages, the stack and TLS with patterns; prints
// "ready", then waits for SIGUSR1 (blocked, sigwaitinfo: no handler needed) and checks every pattern.
// Each time it (re)enters the wait it appends a line to the state file (argv[1]), so a test can see it
// run again after restore. Exit 0 = all patterns intact.
// usage: mem_check STATEFILE [BIG_MIB]
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/mman.h>

#define PAGE 4096
static __thread unsigned long tls_pattern[64];
static unsigned char *heap, *sparse, *filemap, *shared, *readonly, *noaccess, *big;
static size_t sparse_len = 64 << 20, big_len;

static unsigned char pat(uintptr_t addr, int salt) { return (unsigned char)((addr >> 12) * 31 + (addr & 0xfff) + salt); }

static void fill(unsigned char *p, size_t len, int salt, size_t stride)
{
    for (size_t off = 0; off < len; off += stride)
        for (size_t i = 0; i < 64 && off + i < len; i++)
            p[off + i] = pat((uintptr_t)(p + off + i), salt);
}

static int check(const char *what, unsigned char *p, size_t len, int salt, size_t stride)
{
    for (size_t off = 0; off < len; off += stride)
        for (size_t i = 0; i < 64 && off + i < len; i++)
            if (p[off + i] != pat((uintptr_t)(p + off + i), salt)) {
                fprintf(stderr, "FAIL %s at +%zu\n", what, off + i);
                return 1;
            }
    return 0;
}

static int verify(unsigned char *stack)
{
    int bad = 0;
    bad |= check("heap", heap, 1 << 20, 1, 64);
    bad |= check("sparse", sparse, sparse_len, 2, 16 * PAGE);
    bad |= check("filemap", filemap, PAGE, 3, 64);
    bad |= check("shared", shared, 8 * PAGE, 4, 64);
    bad |= check("readonly", readonly, 2 * PAGE, 5, 64);
    mprotect(noaccess, PAGE, PROT_READ);
    bad |= check("noaccess", noaccess, PAGE, 6, 64);
    bad |= check("stack", stack, 8192, 7, 64);
    if (big)
        bad |= check("big", big, big_len, 8, PAGE);
    for (int i = 0; i < 64; i++)
        if (tls_pattern[i] != 0x1234567890abcdefUL * (i + 1)) {
            fprintf(stderr, "FAIL tls[%d]\n", i);
            bad = 1;
        }
    // Still a working heap and brk after restore.
    void *more = malloc(8 << 20);
    if (!more) { fprintf(stderr, "FAIL malloc\n"); bad = 1; }
    memset(more, 1, 8 << 20);
    if (sbrk(PAGE) == (void *)-1) { fprintf(stderr, "FAIL sbrk\n"); bad = 1; }
    return bad;
}

int main(int argc, char **argv)
{
    if (argc < 2) return 2;
    unsigned char stack[8192];
    heap = malloc(1 << 20);
    fill(heap, 1 << 20, 1, 64);
    sparse = mmap(NULL, sparse_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    fill(sparse, sparse_len, 2, 16 * PAGE);
    int fd = open("/proc/self/exe", O_RDONLY);
    filemap = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    close(fd);
    fill(filemap, PAGE, 3, 64);   // page 0 becomes an anonymous copy; 1 is read (file page), 2-3 untouched
    volatile unsigned char sink = filemap[PAGE]; (void)sink;
    shared = mmap(NULL, 8 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    fill(shared, 8 * PAGE, 4, 64);
    readonly = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    fill(readonly, 2 * PAGE, 5, 64);
    mprotect(readonly, 2 * PAGE, PROT_READ);
    noaccess = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    fill(noaccess, PAGE, 6, 64);
    mprotect(noaccess, PAGE, PROT_NONE);
    madvise(sparse, sparse_len, MADV_DONTFORK);
    fill(stack, sizeof stack, 7, 64);
    for (int i = 0; i < 64; i++)
        tls_pattern[i] = 0x1234567890abcdefUL * (i + 1);
    if (argc > 2) {
        big_len = (size_t)atoi(argv[2]) << 20;
        big = mmap(NULL, big_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        fill(big, big_len, 8, PAGE);
    }

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    printf("ready %d\n", getpid());
    fflush(stdout);
    for (;;) {
        sigprocmask(SIG_BLOCK, &set, NULL);   // again after restore, should the mask not come back
        FILE *f = fopen(argv[1], "a");
        if (f) { fputs("waiting\n", f); fclose(f); }
        if (sigwaitinfo(&set, NULL) == SIGUSR1)
            break;
    }
    int bad = verify(stack);
    fprintf(stderr, bad ? "FAIL\n" : "PASS\n");
    return bad;
}
