// The machine's own limits, measured the way crisp moves pages:
//   limits write FILE MiB   write() MiB into a new FILE in 1 MiB calls from one touched 1 MiB buffer, no
//                           fsync: what a dump does with pages-N.img (its batches are 1 MiB and stay in
//                           cache), so the figure is what the target absorbs, not how fast a cold
//                           source can be read; the file is left for "read"
//   limits read FILE        read() FILE into a fresh, untouched anonymous mapping (what a restore does)
//   limits readwarm FILE    the same into memory touched beforehand: the page-cache copy alone,
//                           without the cost of faulting fresh pages in (high on virtual machines)
//   limits memcpy MiB       memcpy between two touched buffers
// Each prints the seconds the measured part took (one line, "%.6f").
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (32UL << 20)
#define BATCH (1UL << 20)

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static char *touched(size_t len, int seed)
{
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) { perror("mmap"); exit(1); }
    for (size_t i = 0; i < len; i += 8) *(unsigned long *)(p + i) = i * 2654435761UL + seed;
    return p;
}

int main(int argc, char **argv)
{
    if (argc < 3) { fprintf(stderr, "usage: limits write FILE MiB | read FILE | memcpy MiB\n"); return 2; }
    if (!strcmp(argv[1], "write") && argc == 4) {
        size_t len = (size_t)atol(argv[3]) << 20;
        char *src = touched(BATCH, 1);
        unlink(argv[2]);
        double t0 = now();
        int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd < 0) { perror(argv[2]); return 1; }
        for (size_t off = 0; off < len;) {
            size_t want = len - off < BATCH ? len - off : BATCH;
            src[0] = (char)(off >> 20);   // each MiB differs (no file system can fold them)
            ssize_t n = write(fd, src, want);
            if (n <= 0) { perror("write"); return 1; }
            off += n;
        }
        close(fd);
        printf("%.6f\n", now() - t0);
    } else if (!strcmp(argv[1], "read") || !strcmp(argv[1], "readwarm")) {
        int warm = !strcmp(argv[1], "readwarm");
        struct stat st;
        if (stat(argv[2], &st) < 0) { perror(argv[2]); return 1; }
        char *dst = warm ? touched(st.st_size, 3) : NULL;
        double t0 = now();
        int fd = open(argv[2], O_RDONLY);
        if (fd < 0) { perror(argv[2]); return 1; }
        size_t len = st.st_size;
        if (!warm)
            dst = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (dst == MAP_FAILED) { perror("mmap"); return 1; }
        for (size_t off = 0; off < len;) {
            ssize_t n = read(fd, dst + off, len - off < CHUNK ? len - off : CHUNK);
            if (n <= 0) { perror("read"); return 1; }
            off += n;
        }
        close(fd);
        printf("%.6f\n", now() - t0);
    } else if (!strcmp(argv[1], "memcpy")) {
        size_t len = (size_t)atol(argv[2]) << 20;
        char *a = touched(len, 1), *b = touched(len, 2);
        double t0 = now();
        memcpy(b, a, len);
        printf("%.6f\n", now() - t0);
        if (b[len / 2] != a[len / 2]) return 1;
    } else {
        fprintf(stderr, "limits: bad arguments\n");
        return 2;
    }
    return 0;
}
