/*
 * statecheck  -- a parent and one forked child holding the process state a
 * checkpoint/restore tool must carry, each verifying it after the wait.
 *
 * Protocol
 *   - sets everything up (in a fresh temp dir /tmp/crisp-statechk-XXXXXX, which
 *     becomes the cwd), then prints "ready PID CHILDPID\n" on stdout (flushed);
 *   - waits (the parent in a raw nanosleep loop with known values in
 *     rbx/r12-r15, xmm8-15 (ymm8-15 when the CPU has AVX) and a non-default
 *     MXCSR; the child in sigsuspend);
 *   - on SIGUSR1 the parent checks its own state, forwards SIGUSR1 to the
 *     child, waits for it (the child checks its state and exits 0/1), then
 *     checks what the child wrote into shared memory after the wake-up;
 *   - every failed check prints "FAIL: NAME: expected ... found ..." (the
 *     child's lines read "FAIL: child: NAME: ...") on stderr; when all pass
 *     the parent prints "PASS". Exit 0 on pass, 1 on fail, 2 on setup error.
 *
 * Values are recorded before the wait, in memory, and compared with what the
 * kernel reports afterwards (lseek, fcntl, /proc/self/{status,maps,smaps,fd,
 * fdinfo}, prctl, sigaction, ...).
 *
 * Self-test: env CRISP_WORKLOAD_SELFTEST_BREAK=NAME corrupts that piece of state
 * after "ready" (NAME: heap, stack, anon, pipe_self, fd_rw, cwd, umask, sigmask,
 * rlimit, tls, regs, shared_anon), so the named check must report FAIL.
 *
 * Checks (parent): heap, anon_sparse, prot_none, guard, file_private,
 * shared_file, madvise, stack, regs, fpu_double, tls, sigaction, sigmask,
 * sigpending, sigaltstack, rlimit, cwd, umask, comm, personality, dumpable,
 * subreaper, pdeathsig, ids, fdset, fdinfo, fd_rw, fd_append, fd_ro,
 * fd_devnull, fd_dup, fd_cloexec, pipe_self, pipe_child, stdio, shared_anon,
 * child_verdict.
 * Checks (child): ids, pdeathsig, heap, tls, sigmask, shared_anon, pipe_parent,
 * dontfork.
 *
 * Fragile by nature: the stdio check only compares the file type and access
 * mode of fds 1 and 2 (a restored task may get new pipes from the harness);
 * pipe identities are compared as "both ends are the same pipe", not by inode.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#define MiB (1024UL * 1024)
#define HEAP_SIZE (8 * MiB)
#define ANON_SIZE (256 * MiB)
#define ANON_STRIDE 64 /* touch one page in 64 */
#define PROTNONE_SIZE (16 * MiB)
#define SHARED_ANON_SIZE (1 * MiB)
#define STACKBUF 8192
#define MAXFDS 64

static int failures;
static const char *who = ""; /* "" in the parent, "child: " in the child */
static const char *brk_name;
static long PG;

#define FAIL(name, fmt, ...)                                                                       \
    do {                                                                                           \
        fprintf(stderr, "FAIL: %s%s: " fmt "\n", who, name, ##__VA_ARGS__);                        \
        failures++;                                                                                \
    } while (0)

static void setup_die(const char *what)
{
    fprintf(stderr, "statecheck: setup: %s: %s\n", what, strerror(errno));
    exit(2);
}

static int breaking(const char *name)
{
    return brk_name && !strcmp(brk_name, name);
}

static uint8_t pat(size_t i, unsigned seed)
{
    return (uint8_t)(i * 131 + (i >> 11) + seed);
}

/* ---------------------------------------------------------------- registers */

struct regblock {
    uint64_t gpr[5];    /* 0: rbx r12 r13 r14 r15 */
    uint8_t vec[8][32]; /* 40: ymm8..15 (low 16 bytes only without AVX) */
    uint32_t mxcsr;     /* 296 */
    uint32_t saved;     /* 300: caller's MXCSR, put back at the end */
} __attribute__((aligned(32)));
_Static_assert(offsetof(struct regblock, vec) == 40, "layout");
_Static_assert(offsetof(struct regblock, mxcsr) == 296, "layout");

static volatile sig_atomic_t got_usr1;
static volatile sig_atomic_t regs_tampered;
static int break_regs; /* parent only */
extern const char statechk_wait_begin_avx[], statechk_wait_end_avx[];
extern const char statechk_wait_begin_sse[], statechk_wait_end_sse[];

static void on_usr1(int sig, siginfo_t *si, void *ucv)
{
    (void)sig;
    (void)si;
    got_usr1 = 1;
    if (break_regs) {
        ucontext_t *uc = ucv;
        uintptr_t ip = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
        int in_loop = (ip >= (uintptr_t)statechk_wait_begin_avx &&
                       ip <= (uintptr_t)statechk_wait_end_avx) ||
                      (ip >= (uintptr_t)statechk_wait_begin_sse &&
                       ip <= (uintptr_t)statechk_wait_end_sse);
        if (in_loop && uc->uc_mcontext.fpregs) {
            uc->uc_mcontext.fpregs->_xmm[8].element[0] ^= 1; /* goes back in on sigreturn */
            regs_tampered = 1;
        }
    }
}

static void on_usr2(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)si;
    (void)uc;
}

#define LOAD_GPRS                                                                                  \
    "mov 0(%[in]), %%rbx\n\t"                                                                      \
    "mov 8(%[in]), %%r12\n\t"                                                                      \
    "mov 16(%[in]), %%r13\n\t"                                                                     \
    "mov 24(%[in]), %%r14\n\t"                                                                     \
    "mov 32(%[in]), %%r15\n\t"
#define STORE_GPRS                                                                                 \
    "mov %%rbx, 0(%[out])\n\t"                                                                     \
    "mov %%r12, 8(%[out])\n\t"                                                                     \
    "mov %%r13, 16(%[out])\n\t"                                                                    \
    "mov %%r14, 24(%[out])\n\t"                                                                    \
    "mov %%r15, 32(%[out])\n\t"
/* nanosleep(100 ms) until got_usr1; %rdi = &ts; clobbers rax rcx r11 rsi. */
#define WAIT_LOOP(sfx)                                                                             \
    ".globl statechk_wait_begin" sfx "\n"                                                          \
    "statechk_wait_begin" sfx ":\n\t"                                                              \
    "1: cmpl $0, (%[flag])\n\t"                                                                    \
    "jne 2f\n\t"                                                                                   \
    "mov $35, %%eax\n\t"                                                                           \
    "xor %%esi, %%esi\n\t"                                                                         \
    "syscall\n\t"                                                                                  \
    "jmp 1b\n"                                                                                     \
    ".globl statechk_wait_end" sfx "\n"                                                            \
    "statechk_wait_end" sfx ":\n"                                                                  \
    "2:\n\t"
#define CLOBBERS                                                                                   \
    "rax", "rcx", "r11", "rsi", "rbx", "r12", "r13", "r14", "r15", "xmm8", "xmm9", "xmm10",        \
        "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "memory", "cc"

static __attribute__((noinline)) void wait_in_registers(const struct regblock *in,
                                                        struct regblock *out, int avx)
{
    struct timespec ts = {0, 100 * 1000000L};
    if (avx) {
        __asm__ volatile("stmxcsr 300(%[out])\n\t" LOAD_GPRS
                         "vmovdqu 40(%[in]), %%ymm8\n\t"
                         "vmovdqu 72(%[in]), %%ymm9\n\t"
                         "vmovdqu 104(%[in]), %%ymm10\n\t"
                         "vmovdqu 136(%[in]), %%ymm11\n\t"
                         "vmovdqu 168(%[in]), %%ymm12\n\t"
                         "vmovdqu 200(%[in]), %%ymm13\n\t"
                         "vmovdqu 232(%[in]), %%ymm14\n\t"
                         "vmovdqu 264(%[in]), %%ymm15\n\t"
                         "ldmxcsr 296(%[in])\n\t" WAIT_LOOP("_avx") "stmxcsr 296(%[out])\n\t"
                         "ldmxcsr 300(%[out])\n\t" STORE_GPRS
                         "vmovdqu %%ymm8, 40(%[out])\n\t"
                         "vmovdqu %%ymm9, 72(%[out])\n\t"
                         "vmovdqu %%ymm10, 104(%[out])\n\t"
                         "vmovdqu %%ymm11, 136(%[out])\n\t"
                         "vmovdqu %%ymm12, 168(%[out])\n\t"
                         "vmovdqu %%ymm13, 200(%[out])\n\t"
                         "vmovdqu %%ymm14, 232(%[out])\n\t"
                         "vmovdqu %%ymm15, 264(%[out])\n\t"
                         "vzeroupper\n\t"
                         :
                         : [in] "r"(in), [out] "r"(out), [flag] "r"(&got_usr1), "D"(&ts)
                         : CLOBBERS);
    } else {
        __asm__ volatile("stmxcsr 300(%[out])\n\t" LOAD_GPRS
                         "movdqu 40(%[in]), %%xmm8\n\t"
                         "movdqu 72(%[in]), %%xmm9\n\t"
                         "movdqu 104(%[in]), %%xmm10\n\t"
                         "movdqu 136(%[in]), %%xmm11\n\t"
                         "movdqu 168(%[in]), %%xmm12\n\t"
                         "movdqu 200(%[in]), %%xmm13\n\t"
                         "movdqu 232(%[in]), %%xmm14\n\t"
                         "movdqu 264(%[in]), %%xmm15\n\t"
                         "ldmxcsr 296(%[in])\n\t" WAIT_LOOP("_sse") "stmxcsr 296(%[out])\n\t"
                         "ldmxcsr 300(%[out])\n\t" STORE_GPRS
                         "movdqu %%xmm8, 40(%[out])\n\t"
                         "movdqu %%xmm9, 72(%[out])\n\t"
                         "movdqu %%xmm10, 104(%[out])\n\t"
                         "movdqu %%xmm11, 136(%[out])\n\t"
                         "movdqu %%xmm12, 168(%[out])\n\t"
                         "movdqu %%xmm13, 200(%[out])\n\t"
                         "movdqu %%xmm14, 232(%[out])\n\t"
                         "movdqu %%xmm15, 264(%[out])\n\t"
                         :
                         : [in] "r"(in), [out] "r"(out), [flag] "r"(&got_usr1), "D"(&ts)
                         : CLOBBERS);
    }
}

static int cpu_has_avx(void)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[4096];
    int avx = 0;
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "flags", 5)) {
            avx = strstr(line, " avx ") != NULL || strstr(line, " avx\n") != NULL;
            break;
        }
    fclose(f);
    return avx;
}

static double harmonic(int n)
{
    double acc = 0;
    for (int k = 1; k <= n; k++)
        acc += 1.0 / k;
    return acc;
}

/* ---------------------------------------------------------------- /proc helpers */

/* Value of "Key:" in /proc/self/status, whitespace-trimmed; "" when absent. */
static void status_field(const char *key, char *out, size_t n)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[1024];
    size_t kl = strlen(key);
    out[0] = 0;
    if (!f)
        return;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl) && line[kl] == ':') {
            char *v = line + kl + 1;
            v += strspn(v, " \t");
            size_t l = strcspn(v, "\n");
            while (l > 0 && (v[l - 1] == ' ' || v[l - 1] == '\t'))
                l--;
            snprintf(out, n, "%.*s", (int)l, v);
            break;
        }
    fclose(f);
}

static void fdinfo_field(int fd, const char *key, char *out, size_t n)
{
    char path[64], line[512];
    size_t kl = strlen(key);
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
    out[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(out, n, "<%s>", strerror(errno));
        return;
    }
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl) && line[kl] == ':') {
            char *v = line + kl + 1;
            v += strspn(v, " \t");
            v[strcspn(v, "\n")] = 0;
            snprintf(out, n, "%s", v);
            break;
        }
    fclose(f);
}

static void fd_path(int fd, char *out, size_t n)
{
    char p[64];
    snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
    ssize_t l = readlink(p, out, n - 1);
    if (l < 0)
        snprintf(out, n, "<%s>", strerror(errno));
    else
        out[l] = 0;
}

struct vma {
    uintptr_t start, end;
    char perms[8];
    char path[512];
};

/* The VMA of /proc/self/maps containing addr; -1 when unmapped. */
static int vma_of(const void *addr, struct vma *v)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[1024];
    int found = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long s, e;
        char perms[8];
        int off = 0;
        if (sscanf(line, "%lx-%lx %7s %*s %*s %*s%n", &s, &e, perms, &off) < 3)
            continue;
        if ((uintptr_t)addr < s || (uintptr_t)addr >= e)
            continue;
        v->start = s;
        v->end = e;
        snprintf(v->perms, sizeof v->perms, "%s", perms);
        char *p = line + off;
        p += strspn(p, " \t");
        p[strcspn(p, "\n")] = 0;
        snprintf(v->path, sizeof v->path, "%s", p);
        found = 0;
        break;
    }
    fclose(f);
    return found;
}

/* VmFlags of the smaps entry containing addr ("" when not found). */
static void vmflags_of(const void *addr, char *out, size_t n)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[1024];
    int in = 0;
    out[0] = 0;
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        unsigned long s, e;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s ", &s, &e, perms) == 3) { /* a VMA header line */
            in = (uintptr_t)addr >= s && (uintptr_t)addr < e;
            continue;
        }
        if (in && !strncmp(line, "VmFlags:", 8)) {
            char *v = line + 8;
            v += strspn(v, " ");
            v[strcspn(v, "\n")] = 0;
            snprintf(out, n, " %s ", v); /* padded so " dd " can be searched */
            break;
        }
    }
    fclose(f);
}

/* Check the VMA holding [addr, addr+len): mapped, covering it, with perms. */
static void expect_vma(const char *name, const void *addr, size_t len, const char *perms,
                       const char *path_suffix)
{
    struct vma v;
    if (vma_of(addr, &v) != 0) {
        FAIL(name, "%p is not mapped any more (expected %s)", addr, perms);
        return;
    }
    if (v.end < (uintptr_t)addr + len)
        FAIL(name, "VMA %lx-%lx does not cover %p+%#zx", (unsigned long)v.start,
             (unsigned long)v.end, addr, len);
    if (strcmp(v.perms, perms))
        FAIL(name, "VMA at %p has perms %s, expected %s", addr, v.perms, perms);
    if (path_suffix) {
        size_t pl = strlen(v.path), sl = strlen(path_suffix);
        if (pl < sl || strcmp(v.path + pl - sl, path_suffix))
            FAIL(name, "VMA at %p maps '%s', expected a path ending in '%s'", addr, v.path,
                 path_suffix);
    }
}

static sigjmp_buf probe_jmp;
static void on_probe_segv(int sig)
{
    siglongjmp(probe_jmp, sig);
}

/* 1 when reading *addr faults. */
static int read_faults(const volatile uint8_t *addr)
{
    struct sigaction sa = {.sa_handler = on_probe_segv}, o1, o2;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &o1);
    sigaction(SIGBUS, &sa, &o2);
    int faulted;
    if (sigsetjmp(probe_jmp, 1) == 0) {
        (void)*addr;
        faulted = 0;
    } else
        faulted = 1;
    sigaction(SIGSEGV, &o1, NULL);
    sigaction(SIGBUS, &o2, NULL);
    return faulted;
}

static int list_fds(int *fds, int max)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    if (!d)
        return -1;
    int self = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') {
            int fd = atoi(e->d_name);
            if (fd != self && n < max)
                fds[n++] = fd;
        }
    closedir(d);
    for (int i = 1; i < n; i++) /* insertion sort */
        for (int j = i; j > 0 && fds[j - 1] > fds[j]; j--) {
            int t = fds[j];
            fds[j] = fds[j - 1];
            fds[j - 1] = t;
        }
    return n;
}

static const char *in_dir(const char *name);

/* path: absolute, or relative to the workload's temp dir (not to the cwd). */
static int read_file_at(const char *path, off_t off, void *buf, size_t n)
{
    int fd = open(path[0] == '/' ? path : in_dir(path), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t r = pread(fd, buf, n, off);
    close(fd);
    return r == (ssize_t)n ? 0 : -1;
}

/* ---------------------------------------------------------------- the state */

__thread uint64_t tls_val;

struct tracked_fd {
    const char *name;
    int fd;
    char pos[32], flags[32];
};

static struct {
    pid_t pid, child, pgid, sid;
    char dir[64];
    char cwd[256];
    ino_t cwd_ino;
    uint8_t *heap;
    uint8_t *anon;
    uint8_t *protnone;
    uint8_t *guard; /* 4 pages, page 2 PROT_NONE */
    uint8_t *fpriv; /* 3 pages of priv.dat, page 1 modified in memory */
    uint8_t *fshared; /* 2 pages of shared.dat */
    uint8_t *shanon;  /* MAP_SHARED anonymous, shared with the child */
    uint8_t *dontfork, *dontdump;
    uint64_t tls_expect;
    double acc;
    int avx;
    struct regblock regs_in, regs_out;
    void *usr2_handler;
    sigset_t usr2_mask;
    char sigcgt[32], sigign[32], sigblk[32], sigpnd[32], shdpnd[32];
    stack_t altstack;
    struct rlimit nofile, core;
    char umask_s[16];
    int personality, dumpable;
    int fd_rw, fd_app, fd_ro, fd_null, fd_dupa, fd_dupb;
    int pipe_self[2], to_child[2], to_parent[2], sync[2];
    mode_t stdio_type[3];
    int stdio_acc[3];
    int fds[MAXFDS], nfds;
    struct tracked_fd tracked[16];
    int ntracked;
} S;

static const char *in_dir(const char *name)
{
    static char buf[4][320];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", S.dir, name);
    return p;
}

static const char to_child_msg[] = "parent-to-child";
static const char to_parent_msg[] = "child-to-parent";
#define CHILD_BEFORE_OFF (512 * 1024)
#define CHILD_AFTER_OFF (768 * 1024)

static void track(const char *name, int fd)
{
    struct tracked_fd *t = &S.tracked[S.ntracked++];
    t->name = name;
    t->fd = fd;
    fdinfo_field(fd, "pos", t->pos, sizeof t->pos);
    fdinfo_field(fd, "flags", t->flags, sizeof t->flags);
}

static int open_or_die(const char *path, int flags)
{
    int fd = open(path, flags, 0640);
    if (fd < 0)
        setup_die(path);
    return fd;
}

static void write_file(const char *path, uint8_t fill, size_t len)
{
    int fd = open_or_die(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC);
    uint8_t buf[4096];
    memset(buf, fill, sizeof buf);
    for (size_t done = 0; done < len; done += sizeof buf)
        if (write(fd, buf, sizeof buf) != sizeof buf)
            setup_die(path);
    close(fd);
}

/* ---------------------------------------------------------------- checks */

static void check_bytes(const char *name, const uint8_t *p, size_t len, unsigned seed)
{
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < len; i++)
        if (p[i] != pat(i, seed) && bad++ == 0)
            first = i;
    if (bad)
        FAIL(name, "%zu of %zu bytes differ; first at offset %zu: expected 0x%02x found 0x%02x",
             bad, len, first, pat(first, seed), p[first]);
}

static void check_fill(const char *name, const uint8_t *p, size_t len, uint8_t fill)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] != fill) {
            FAIL(name, "byte at offset %zu: expected 0x%02x found 0x%02x", i, fill, p[i]);
            return;
        }
}

static void check_heap(void)
{
    check_bytes("heap", S.heap, HEAP_SIZE, 0x11);
}

static void check_memory(void)
{
    /* anon_sparse: touched pages hold their pattern, untouched ones read zero */
    expect_vma("anon_sparse", S.anon, ANON_SIZE, "rw-p", NULL);
    size_t npages = ANON_SIZE / PG, bad = 0;
    for (size_t i = 0; i < npages; i++) {
        const uint8_t *pg = S.anon + i * PG;
        if (i % ANON_STRIDE == 3) {
            for (long b = 0; b < PG; b++)
                if (pg[b] != pat(b, 0x22 + i)) {
                    if (bad++ == 0)
                        FAIL("anon_sparse", "touched page %zu byte %ld: expected 0x%02x found 0x%02x",
                             i, b, pat(b, 0x22 + i), pg[b]);
                    break;
                }
        } else if (i % ANON_STRIDE == 40) {
            for (long b = 0; b < PG; b++)
                if (pg[b]) {
                    if (bad++ == 0)
                        FAIL("anon_sparse", "untouched page %zu byte %ld is 0x%02x, expected 0",
                             i, b, pg[b]);
                    break;
                }
        }
    }
    if (bad > 1)
        FAIL("anon_sparse", "%zu pages wrong in all", bad);

    expect_vma("prot_none", S.protnone, PROTNONE_SIZE, "---p", NULL);
    if (!read_faults(S.protnone + PROTNONE_SIZE / 2))
        FAIL("prot_none", "reading inside the PROT_NONE reservation did not fault");

    /* guard: pages 0,1,3 rw with data, page 2 an isolated PROT_NONE VMA */
    struct vma v;
    if (vma_of(S.guard + 2 * PG, &v) != 0)
        FAIL("guard", "guard page %p unmapped", S.guard + 2 * PG);
    else if (strcmp(v.perms, "---p") || v.start != (uintptr_t)(S.guard + 2 * PG) ||
             v.end != (uintptr_t)(S.guard + 3 * PG))
        FAIL("guard", "guard VMA is %lx-%lx %s, expected %p-%p ---p", (unsigned long)v.start,
             (unsigned long)v.end, v.perms, S.guard + 2 * PG, S.guard + 3 * PG);
    expect_vma("guard", S.guard, 2 * PG, "rw-p", NULL);
    expect_vma("guard", S.guard + 3 * PG, PG, "rw-p", NULL);
    if (!read_faults(S.guard + 2 * PG))
        FAIL("guard", "reading the guard page did not fault");
    check_bytes("guard", S.guard, 2 * PG, 0x44);
    check_bytes("guard", S.guard + 3 * PG, PG, 0x45);

    /* file_private: private copy differs from the file */
    expect_vma("file_private", S.fpriv, 3 * PG, "rw-p", "/priv.dat");
    check_fill("file_private", S.fpriv, PG, 'F');
    check_fill("file_private", S.fpriv + PG, PG, 'M');
    check_fill("file_private", S.fpriv + 2 * PG, PG, 'F');
    uint8_t pagebuf[65536];
    if (PG > (long)sizeof pagebuf || read_file_at("priv.dat", PG, pagebuf, PG) != 0)
        FAIL("file_private", "cannot read page 1 of priv.dat: %s", strerror(errno));
    else
        check_fill("file_private(file)", pagebuf, PG, 'F');

    /* shared_file: the mapping and the file are the same pages */
    expect_vma("shared_file", S.fshared, 2 * PG, "rw-s", "/shared.dat");
    char buf[64];
    if (strcmp((char *)S.fshared, "via-mapping-before"))
        FAIL("shared_file", "mapping holds '%.20s', expected 'via-mapping-before'", S.fshared);
    strcpy((char *)S.fshared + PG, "via-mapping-after");
    if (read_file_at("shared.dat", PG, buf, 18) != 0 || strcmp(buf, "via-mapping-after"))
        FAIL("shared_file", "store through the mapping not seen in the file (read '%.18s')", buf);
    int fd = open(in_dir("shared.dat"), O_WRONLY | O_CLOEXEC);
    if (fd < 0 || pwrite(fd, "via-file-after", 15, 100) != 15)
        FAIL("shared_file", "pwrite shared.dat: %s", strerror(errno));
    else if (strcmp((char *)S.fshared + 100, "via-file-after"))
        FAIL("shared_file", "pwrite to the file not seen in the mapping (found '%.14s')",
             S.fshared + 100);
    if (fd >= 0)
        close(fd);

    /* madvise: VmFlags dc / dd */
    char fl[512];
    vmflags_of(S.dontfork, fl, sizeof fl);
    if (!strstr(fl, " dc "))
        FAIL("madvise", "MADV_DONTFORK region %p VmFlags '%s' lacks dc", S.dontfork, fl);
    vmflags_of(S.dontdump, fl, sizeof fl);
    if (!strstr(fl, " dd "))
        FAIL("madvise", "MADV_DONTDUMP region %p VmFlags '%s' lacks dd", S.dontdump, fl);
    check_bytes("madvise", S.dontfork, 2 * PG, 0x55);
    check_bytes("madvise", S.dontdump, 2 * PG, 0x56);
}

static void check_stack(const volatile uint8_t *sb)
{
    for (size_t i = 0; i < STACKBUF; i++)
        if (sb[i] != pat(i, 0x66)) {
            FAIL("stack", "main's local array byte %zu: expected 0x%02x found 0x%02x", i,
                 pat(i, 0x66), sb[i]);
            break;
        }
    struct vma v;
    if (vma_of((const void *)sb, &v) != 0 || strcmp(v.path, "[stack]"))
        FAIL("stack", "main's local array at %p is not in [stack] (found '%s')", (void *)sb,
             vma_of((const void *)sb, &v) == 0 ? v.path : "unmapped");
}

static void check_regs(void)
{
    static const char *gn[] = {"rbx", "r12", "r13", "r14", "r15"};
    for (int i = 0; i < 5; i++)
        if (S.regs_in.gpr[i] != S.regs_out.gpr[i])
            FAIL("regs", "%s: expected %#lx found %#lx", gn[i], (unsigned long)S.regs_in.gpr[i],
                 (unsigned long)S.regs_out.gpr[i]);
    int width = S.avx ? 32 : 16;
    for (int r = 0; r < 8; r++)
        for (int b = 0; b < width; b++)
            if (S.regs_in.vec[r][b] != S.regs_out.vec[r][b]) {
                FAIL("regs", "%smm%d byte %d: expected 0x%02x found 0x%02x", S.avx ? "y" : "x",
                     r + 8, b, S.regs_in.vec[r][b], S.regs_out.vec[r][b]);
                break;
            }
    if (S.regs_in.mxcsr != S.regs_out.mxcsr)
        FAIL("regs", "MXCSR: expected %#x found %#x", S.regs_in.mxcsr, S.regs_out.mxcsr);
    double d;
    memcpy(&d, S.regs_out.vec[7], sizeof d);
    if (memcmp(&d, &S.acc, sizeof d) || d != harmonic(1000))
        FAIL("fpu_double", "accumulator kept in xmm15: expected %.17g found %.17g", S.acc, d);
}

static void check_signals(void)
{
    struct sigaction sa;
    sigaction(SIGUSR2, NULL, &sa);
    if ((void *)sa.sa_sigaction != S.usr2_handler)
        FAIL("sigaction", "SIGUSR2 handler %p, expected %p", (void *)sa.sa_sigaction,
             S.usr2_handler);
    int want = SA_RESTART | SA_SIGINFO;
    int mask = SA_RESTART | SA_SIGINFO | SA_ONSTACK | SA_NODEFER | SA_RESETHAND | SA_NOCLDSTOP;
    if ((sa.sa_flags & mask) != want)
        FAIL("sigaction", "SIGUSR2 flags %#x, expected SA_RESTART|SA_SIGINFO (%#x)",
             sa.sa_flags & mask, want);
    for (int s = 1; s < NSIG; s++) {
        if (s == 32 || s == 33)
            continue;
        if (sigismember(&sa.sa_mask, s) != sigismember(&S.usr2_mask, s))
            FAIL("sigaction", "SIGUSR2 sa_mask: signal %d %s, expected %s", s,
                 sigismember(&sa.sa_mask, s) ? "set" : "clear",
                 sigismember(&S.usr2_mask, s) ? "set" : "clear");
    }
    sigaction(SIGINT, NULL, &sa);
    if (sa.sa_handler != SIG_IGN)
        FAIL("sigaction", "SIGINT handler %p, expected SIG_IGN", (void *)sa.sa_handler);
    char v[32];
    status_field("SigCgt", v, sizeof v);
    if (strcmp(v, S.sigcgt))
        FAIL("sigaction", "SigCgt %s, expected %s", v, S.sigcgt);
    status_field("SigIgn", v, sizeof v);
    if (strcmp(v, S.sigign))
        FAIL("sigaction", "SigIgn %s, expected %s", v, S.sigign);

    sigset_t cur;
    sigprocmask(SIG_BLOCK, NULL, &cur);
    if (!sigismember(&cur, SIGTERM) || !sigismember(&cur, SIGHUP))
        FAIL("sigmask", "SIGTERM blocked %d, SIGHUP blocked %d, expected both 1",
             sigismember(&cur, SIGTERM), sigismember(&cur, SIGHUP));
    status_field("SigBlk", v, sizeof v);
    if (strcmp(v, S.sigblk))
        FAIL("sigmask", "SigBlk %s, expected %s", v, S.sigblk);

    sigset_t pend;
    sigpending(&pend);
    if (!sigismember(&pend, SIGTERM) || !sigismember(&pend, SIGHUP))
        FAIL("sigpending", "pending SIGTERM %d SIGHUP %d, expected both 1",
             sigismember(&pend, SIGTERM), sigismember(&pend, SIGHUP));
    status_field("SigPnd", v, sizeof v);
    if (strcmp(v, S.sigpnd))
        FAIL("sigpending", "SigPnd (thread) %s, expected %s (raise(SIGTERM))", v, S.sigpnd);
    status_field("ShdPnd", v, sizeof v);
    if (strcmp(v, S.shdpnd))
        FAIL("sigpending", "ShdPnd (process) %s, expected %s (kill(getpid(), SIGHUP))", v,
             S.shdpnd);

    stack_t ss;
    sigaltstack(NULL, &ss);
    if (ss.ss_sp != S.altstack.ss_sp || ss.ss_size != S.altstack.ss_size ||
        ss.ss_flags != S.altstack.ss_flags)
        FAIL("sigaltstack", "sp %p size %zu flags %d, expected sp %p size %zu flags %d", ss.ss_sp,
             ss.ss_size, ss.ss_flags, S.altstack.ss_sp, S.altstack.ss_size, S.altstack.ss_flags);
}

static void check_process(void)
{
    struct rlimit r;
    getrlimit(RLIMIT_NOFILE, &r);
    if (r.rlim_cur != S.nofile.rlim_cur || r.rlim_max != S.nofile.rlim_max)
        FAIL("rlimit", "NOFILE %lu/%lu, expected %lu/%lu", (unsigned long)r.rlim_cur,
             (unsigned long)r.rlim_max, (unsigned long)S.nofile.rlim_cur,
             (unsigned long)S.nofile.rlim_max);
    getrlimit(RLIMIT_CORE, &r);
    if (r.rlim_cur != S.core.rlim_cur || r.rlim_max != S.core.rlim_max)
        FAIL("rlimit", "CORE %lu/%lu, expected %lu/%lu", (unsigned long)r.rlim_cur,
             (unsigned long)r.rlim_max, (unsigned long)S.core.rlim_cur,
             (unsigned long)S.core.rlim_max);

    char buf[256];
    struct stat st;
    if (!getcwd(buf, sizeof buf) || strcmp(buf, S.cwd))
        FAIL("cwd", "getcwd '%s', expected '%s'", getcwd(buf, sizeof buf) ? buf : "?", S.cwd);
    if (stat(".", &st) != 0 || st.st_ino != S.cwd_ino)
        FAIL("cwd", "inode of . is %lu, expected %lu", (unsigned long)st.st_ino,
             (unsigned long)S.cwd_ino);

    status_field("Umask", buf, sizeof buf);
    if (strcmp(buf, S.umask_s))
        FAIL("umask", "Umask %s, expected %s", buf, S.umask_s);

    char comm[17] = {0};
    prctl(PR_GET_NAME, comm);
    if (strcmp(comm, "statechk"))
        FAIL("comm", "PR_GET_NAME '%s', expected 'statechk'", comm);
    if (read_file_at("/proc/self/comm", 0, buf, 9) != 0 || memcmp(buf, "statechk\n", 9))
        FAIL("comm", "/proc/self/comm is not 'statechk'");

    int p = personality(0xffffffff);
    if (p != S.personality)
        FAIL("personality", "%#x, expected %#x", p, S.personality);
    int d = prctl(PR_GET_DUMPABLE);
    if (d != S.dumpable)
        FAIL("dumpable", "%d, expected %d", d, S.dumpable);
    int sr = -1;
    prctl(PR_GET_CHILD_SUBREAPER, &sr);
    if (sr != 1)
        FAIL("subreaper", "PR_GET_CHILD_SUBREAPER %d, expected 1", sr);
    int pd = -1;
    prctl(PR_GET_PDEATHSIG, &pd);
    if (pd != 0)
        FAIL("pdeathsig", "parent's PR_GET_PDEATHSIG %d, expected 0", pd);

    if (getpid() != S.pid)
        FAIL("ids", "getpid %d, expected %d", getpid(), S.pid);
    if (getpgrp() != S.pgid || getsid(0) != S.sid)
        FAIL("ids", "pgid %d sid %d, expected %d %d", getpgrp(), getsid(0), S.pgid, S.sid);
    if (tls_val != S.tls_expect)
        FAIL("tls", "__thread value %#lx, expected %#lx", (unsigned long)tls_val,
             (unsigned long)S.tls_expect);
}

static void expect_fd(const char *name, int fd, int accmode, int flagbits, int cloexec,
                      const char *path)
{
    int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);
    if (fl < 0) {
        FAIL(name, "fd %d is closed (%s)", fd, strerror(errno));
        return;
    }
    if ((fl & O_ACCMODE) != accmode)
        FAIL(name, "fd %d access mode %#o, expected %#o", fd, fl & O_ACCMODE, accmode);
    if ((fl & (O_APPEND | O_NONBLOCK)) != flagbits)
        FAIL(name, "fd %d O_APPEND|O_NONBLOCK bits %#o, expected %#o", fd,
             fl & (O_APPEND | O_NONBLOCK), flagbits);
    if (!!(fdfl & FD_CLOEXEC) != cloexec)
        FAIL(cloexec ? "fd_cloexec" : name, "fd %d FD_CLOEXEC %d, expected %d", fd,
             !!(fdfl & FD_CLOEXEC), cloexec);
    if (path) {
        char p[512];
        fd_path(fd, p, sizeof p);
        size_t pl = strlen(path);
        if (strncmp(p, path, pl) || (path[pl - 1] != ':' && p[pl] != 0))
            FAIL(name, "fd %d is '%s', expected '%s%s'", fd, p, path,
                 path[pl - 1] == ':' ? "..." : "");
    }
}

static off_t cur_off(int fd)
{
    return lseek(fd, 0, SEEK_CUR);
}

static void check_files(void)
{
    /* passive first: nothing below may move an offset before fdinfo is read */
    int fds[MAXFDS];
    int n = list_fds(fds, MAXFDS);
    if (n != S.nfds || memcmp(fds, S.fds, n * sizeof *fds)) {
        char a[512] = "", b[512] = "";
        for (int i = 0; i < n; i++)
            snprintf(a + strlen(a), sizeof a - strlen(a), "%d ", fds[i]);
        for (int i = 0; i < S.nfds; i++)
            snprintf(b + strlen(b), sizeof b - strlen(b), "%d ", S.fds[i]);
        FAIL("fdset", "open fds [%s], expected [%s]", a, b);
    }
    for (int i = 0; i < S.ntracked; i++) {
        struct tracked_fd *t = &S.tracked[i];
        char pos[32], flags[32];
        fdinfo_field(t->fd, "pos", pos, sizeof pos);
        fdinfo_field(t->fd, "flags", flags, sizeof flags);
        if (strcmp(pos, t->pos) || strcmp(flags, t->flags))
            FAIL("fdinfo", "%s (fd %d): pos %s flags %s, expected pos %s flags %s", t->name, t->fd,
                 pos, flags, t->pos, t->flags);
    }
    char path[512];
    snprintf(path, sizeof path, "%s/rw.dat", S.cwd);
    expect_fd("fd_rw", S.fd_rw, O_RDWR, 0, 0, path);
    if (cur_off(S.fd_rw) != 1234)
        FAIL("fd_rw", "offset %ld, expected 1234", (long)cur_off(S.fd_rw));
    snprintf(path, sizeof path, "%s/app.dat", S.cwd);
    expect_fd("fd_append", S.fd_app, O_WRONLY, O_APPEND, 0, path);
    snprintf(path, sizeof path, "%s/ro.dat", S.cwd);
    expect_fd("fd_ro", S.fd_ro, O_RDONLY, 0, 1, path);
    if (cur_off(S.fd_ro) != 10)
        FAIL("fd_ro", "offset %ld, expected 10", (long)cur_off(S.fd_ro));
    expect_fd("fd_devnull", S.fd_null, O_WRONLY, 0, 0, "/dev/null");
    snprintf(path, sizeof path, "%s/dup.dat", S.cwd);
    expect_fd("fd_dup", S.fd_dupa, O_RDWR, 0, 0, path);
    expect_fd("fd_dup", S.fd_dupb, O_RDWR, 0, 0, path);
    if (cur_off(S.fd_dupa) != 100 || cur_off(S.fd_dupb) != 100)
        FAIL("fd_dup", "offsets %ld/%ld, expected 100/100", (long)cur_off(S.fd_dupa),
             (long)cur_off(S.fd_dupb));
    expect_fd("pipe_self", S.pipe_self[0], O_RDONLY, O_NONBLOCK, 0, "pipe:");
    expect_fd("pipe_self", S.pipe_self[1], O_WRONLY, 0, 0, "pipe:");
    expect_fd("pipe_child", S.to_parent[0], O_RDONLY, O_NONBLOCK, 0, "pipe:");
    expect_fd("pipe_child", S.to_child[1], O_WRONLY, 0, 0, "pipe:");
    for (int i = 1; i <= 2; i++) {
        struct stat st;
        int fl = fcntl(i, F_GETFL);
        if (fstat(i, &st) != 0 || (st.st_mode & S_IFMT) != S.stdio_type[i] ||
            (fl & O_ACCMODE) != S.stdio_acc[i])
            FAIL("stdio", "fd %d type %#o accmode %#o, expected %#o %#o", i, st.st_mode & S_IFMT,
                 fl & O_ACCMODE, S.stdio_type[i], S.stdio_acc[i]);
    }

    /* active checks */
    char rd[64];
    if (pread(S.fd_rw, rd, 4, 1234) != 4 || memcmp(rd, "RWRW", 4))
        FAIL("fd_rw", "content at 1234 is not 'RWRW'");
    if (write(S.fd_app, "second\n", 7) != 7)
        FAIL("fd_append", "write: %s", strerror(errno));
    else if (cur_off(S.fd_app) != 13 || read_file_at("app.dat", 0, rd, 13) != 0 ||
             memcmp(rd, "first\nsecond\n", 13))
        FAIL("fd_append", "after appending, offset %ld / content not 'first\\nsecond\\n'",
             (long)cur_off(S.fd_app));
    if (read(S.fd_ro, rd, 6) != 6 || memcmp(rd, "klmnop", 6))
        FAIL("fd_ro", "reading 6 bytes at offset 10 did not give 'klmnop'");
    if (write(S.fd_null, "x", 1) != 1)
        FAIL("fd_devnull", "write to /dev/null: %s", strerror(errno));
    lseek(S.fd_dupa, 200, SEEK_SET);
    if (cur_off(S.fd_dupb) != 200)
        FAIL("fd_dup", "after lseek(a, 200) the dup'ed fd is at %ld: offsets not shared",
             (long)cur_off(S.fd_dupb));

    struct stat s0, s1;
    if (fstat(S.pipe_self[0], &s0) || fstat(S.pipe_self[1], &s1) || s0.st_ino != s1.st_ino)
        FAIL("pipe_self", "the two ends are not the same pipe (%lu vs %lu)",
             (unsigned long)s0.st_ino, (unsigned long)s1.st_ino);
    int avail = -1;
    ioctl(S.pipe_self[0], FIONREAD, &avail);
    if (avail != 5)
        FAIL("pipe_self", "FIONREAD %d, expected 5", avail);
    ssize_t r = read(S.pipe_self[0], rd, sizeof rd);
    if (r != 5 || memcmp(rd, "hello", 5))
        FAIL("pipe_self", "read %zd bytes '%.*s', expected 'hello'", r, r > 0 ? (int)r : 0, rd);
    r = read(S.to_parent[0], rd, sizeof rd);
    if (r != (ssize_t)sizeof to_parent_msg - 1 || memcmp(rd, to_parent_msg, r))
        FAIL("pipe_child", "read %zd bytes '%.*s' from the child pipe, expected '%s'", r,
             r > 0 ? (int)r : 0, rd, to_parent_msg);
}

/* ---------------------------------------------------------------- child */

static void child_main(pid_t parent)
{
    who = "child: ";
    break_regs = 0;
    got_usr1 = 0;
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
        _exit(2);
    close(S.to_child[1]);
    close(S.to_parent[0]);
    close(S.pipe_self[0]);
    close(S.pipe_self[1]);
    fcntl(S.to_child[0], F_SETFL, O_NONBLOCK);
    snprintf((char *)S.shanon + CHILD_BEFORE_OFF, 64, "child-before:%d", getpid());
    if (write(S.to_parent[1], to_parent_msg, sizeof to_parent_msg - 1) !=
        sizeof to_parent_msg - 1)
        _exit(2);

    sigset_t usr1, old;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, &old);
    close(S.to_parent[1]);
    close(S.sync[0]);
    if (write(S.sync[1], "!", 1) != 1) /* sync byte: child is set up */
        _exit(2);
    sigdelset(&old, SIGUSR1);
    while (!got_usr1)
        sigsuspend(&old);
    close(S.sync[1]);
    sigprocmask(SIG_UNBLOCK, &usr1, NULL);

    if (getppid() != parent)
        FAIL("ids", "getppid %d, expected %d", getppid(), parent);
    if (getpid() != S.child)
        FAIL("ids", "getpid %d, expected %d", getpid(), S.child);
    int pd = -1;
    prctl(PR_GET_PDEATHSIG, &pd);
    if (pd != SIGKILL)
        FAIL("pdeathsig", "PR_GET_PDEATHSIG %d, expected SIGKILL (%d)", pd, SIGKILL);
    check_heap();
    if (tls_val != S.tls_expect)
        FAIL("tls", "__thread value %#lx, expected %#lx", (unsigned long)tls_val,
             (unsigned long)S.tls_expect);
    sigset_t cur;
    sigprocmask(SIG_BLOCK, NULL, &cur);
    if (!sigismember(&cur, SIGTERM))
        FAIL("sigmask", "SIGTERM not blocked in the child");
    expect_vma("shared_anon", S.shanon, SHARED_ANON_SIZE, "rw-s", NULL);
    check_bytes("shared_anon", S.shanon, CHILD_BEFORE_OFF, 0x33);
    char want[64];
    snprintf(want, sizeof want, "child-before:%d", S.child);
    if (strcmp((char *)S.shanon + CHILD_BEFORE_OFF, want))
        FAIL("shared_anon", "own marker '%.40s', expected '%s'", S.shanon + CHILD_BEFORE_OFF, want);
    char rd[64];
    ssize_t r = read(S.to_child[0], rd, sizeof rd);
    if (r != (ssize_t)sizeof to_child_msg - 1 || memcmp(rd, to_child_msg, r))
        FAIL("pipe_parent", "read %zd bytes '%.*s', expected '%s'", r, r > 0 ? (int)r : 0, rd,
             to_child_msg);
    struct vma v;
    if (vma_of(S.dontfork, &v) == 0)
        FAIL("dontfork", "MADV_DONTFORK region %p is mapped in the child (%lx-%lx %s)",
             S.dontfork, (unsigned long)v.start, (unsigned long)v.end, v.perms);
    snprintf((char *)S.shanon + CHILD_AFTER_OFF, 64, "child-after:%d", getpid());
    _exit(failures ? 1 : 0);
}

/* ---------------------------------------------------------------- setup */

static void *map_or_die(size_t len, int prot, int flags, int fd, const char *what)
{
    void *p = mmap(NULL, len, prot, flags, fd, 0);
    if (p == MAP_FAILED)
        setup_die(what);
    return p;
}

static void cleanup(void)
{
    static const char *files[] = {"rw.dat", "app.dat", "ro.dat", "dup.dat", "priv.dat",
                                  "shared.dat"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char p[256];
        snprintf(p, sizeof p, "%s/%s", S.dir, files[i]);
        unlink(p);
    }
    rmdir(S.dir);
}

int main(void)
{
    volatile uint8_t stackbuf[STACKBUF];
    PG = sysconf(_SC_PAGESIZE);
    brk_name = getenv("CRISP_WORKLOAD_SELFTEST_BREAK");
    setvbuf(stderr, NULL, _IOLBF, 0);
    S.pid = getpid();

    /* a known signal starting point, whatever the harness left us */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    struct sigaction sa = {.sa_sigaction = on_usr1, .sa_flags = SA_SIGINFO};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGCHLD, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);

    /* cwd, umask, name, prctl */
    snprintf(S.dir, sizeof S.dir, "/tmp/crisp-statechk-XXXXXX");
    if (!mkdtemp(S.dir) || chdir(S.dir) != 0 || !getcwd(S.cwd, sizeof S.cwd))
        setup_die("temp dir");
    struct stat st;
    stat(".", &st);
    S.cwd_ino = st.st_ino;
    umask(027);
    status_field("Umask", S.umask_s, sizeof S.umask_s);
    prctl(PR_SET_NAME, "statechk");
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
        setup_die("PR_SET_CHILD_SUBREAPER");
    S.personality = personality(0xffffffff);
    S.dumpable = prctl(PR_GET_DUMPABLE);
    S.pgid = getpgrp();
    S.sid = getsid(0);
    S.tls_expect = tls_val = 0x7e57c0de00000000ULL | (uint32_t)S.pid;

    /* rlimits */
    getrlimit(RLIMIT_NOFILE, &S.nofile);
    if (S.nofile.rlim_max >= 400)
        S.nofile.rlim_cur = 400;
    getrlimit(RLIMIT_CORE, &S.core);
    S.core.rlim_cur = S.core.rlim_max < MiB ? S.core.rlim_max : MiB;
    if (setrlimit(RLIMIT_NOFILE, &S.nofile) || setrlimit(RLIMIT_CORE, &S.core))
        setup_die("setrlimit");

    /* memory */
    S.heap = malloc(HEAP_SIZE);
    if (!S.heap)
        setup_die("malloc");
    for (size_t i = 0; i < HEAP_SIZE; i++)
        S.heap[i] = pat(i, 0x11);
    S.anon = map_or_die(ANON_SIZE, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, "anon");
    for (size_t i = 3; i < ANON_SIZE / PG; i += ANON_STRIDE)
        for (long b = 0; b < PG; b++)
            S.anon[i * PG + b] = pat(b, 0x22 + i);
    S.protnone = map_or_die(PROTNONE_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                            -1, "protnone");
    S.guard = map_or_die(4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, "guard");
    for (long i = 0; i < 2 * PG; i++)
        S.guard[i] = pat(i, 0x44);
    for (long i = 0; i < PG; i++)
        S.guard[3 * PG + i] = pat(i, 0x45);
    if (mprotect(S.guard + 2 * PG, PG, PROT_NONE))
        setup_die("mprotect guard");

    write_file("priv.dat", 'F', 3 * PG);
    int fd = open_or_die("priv.dat", O_RDONLY | O_CLOEXEC);
    S.fpriv = map_or_die(3 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, "priv.dat");
    close(fd);
    memset(S.fpriv + PG, 'M', PG);

    write_file("shared.dat", 0, 2 * PG);
    fd = open_or_die("shared.dat", O_RDWR | O_CLOEXEC);
    S.fshared = map_or_die(2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, "shared.dat");
    close(fd);
    strcpy((char *)S.fshared, "via-mapping-before");

    S.shanon = map_or_die(SHARED_ANON_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                          -1, "shared anon");
    for (size_t i = 0; i < CHILD_BEFORE_OFF; i++)
        S.shanon[i] = pat(i, 0x33);

    S.dontfork = map_or_die(2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, "dc");
    S.dontdump = map_or_die(2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, "dd");
    for (long i = 0; i < 2 * PG; i++) {
        S.dontfork[i] = pat(i, 0x55);
        S.dontdump[i] = pat(i, 0x56);
    }
    if (madvise(S.dontfork, 2 * PG, MADV_DONTFORK) || madvise(S.dontdump, 2 * PG, MADV_DONTDUMP))
        setup_die("madvise");

    for (size_t i = 0; i < STACKBUF; i++)
        stackbuf[i] = pat(i, 0x66);

    /* signals: SIGUSR2 handler, SIGINT ignored, altstack, mask */
    sa = (struct sigaction){.sa_sigaction = on_usr2, .sa_flags = SA_RESTART | SA_SIGINFO};
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGHUP);
    sigaddset(&sa.sa_mask, SIGWINCH);
    sigaction(SIGUSR2, &sa, NULL);
    S.usr2_handler = (void *)on_usr2;
    S.usr2_mask = sa.sa_mask;
    signal(SIGINT, SIG_IGN);
    S.altstack.ss_size = 64 * 1024;
    S.altstack.ss_sp = malloc(S.altstack.ss_size);
    S.altstack.ss_flags = 0;
    if (!S.altstack.ss_sp || sigaltstack(&S.altstack, NULL))
        setup_die("sigaltstack");
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP);
    sigprocmask(SIG_BLOCK, &block, NULL);

    /* files */
    fd = open_or_die("rw.dat", O_RDWR | O_CREAT | O_TRUNC);
    char buf[4096];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = "RW"[i % 2];
    if (write(fd, buf, sizeof buf) != sizeof buf)
        setup_die("rw.dat");
    lseek(fd, 1234, SEEK_SET);
    S.fd_rw = fd;
    S.fd_app = open_or_die("app.dat", O_WRONLY | O_CREAT | O_TRUNC | O_APPEND);
    if (write(S.fd_app, "first\n", 6) != 6)
        setup_die("app.dat");
    fd = open_or_die("ro.dat", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC);
    if (write(fd, "abcdefghijklmnopqrstuvwxyz", 26) != 26)
        setup_die("ro.dat");
    close(fd);
    S.fd_ro = open_or_die("ro.dat", O_RDONLY | O_CLOEXEC);
    lseek(S.fd_ro, 10, SEEK_SET);
    S.fd_null = open_or_die("/dev/null", O_WRONLY);
    S.fd_dupa = open_or_die("dup.dat", O_RDWR | O_CREAT | O_TRUNC);
    if (write(S.fd_dupa, buf, 300) != 300)
        setup_die("dup.dat");
    S.fd_dupb = dup(S.fd_dupa);
    lseek(S.fd_dupa, 100, SEEK_SET);
    if (pipe(S.pipe_self) || pipe(S.to_child) || pipe(S.to_parent) || pipe2(S.sync, O_CLOEXEC))
        setup_die("pipe");
    fcntl(S.pipe_self[0], F_SETFL, O_NONBLOCK);
    if (write(S.pipe_self[1], "hello", 5) != 5)
        setup_die("pipe write");
    for (int i = 1; i <= 2; i++) {
        fstat(i, &st);
        S.stdio_type[i] = st.st_mode & S_IFMT;
        S.stdio_acc[i] = fcntl(i, F_GETFL) & O_ACCMODE;
    }

    /* the child */
    fflush(NULL);
    pid_t parent = getpid();
    S.child = fork();
    if (S.child < 0)
        setup_die("fork");
    if (S.child == 0) {
        S.child = getpid();
        child_main(parent);
    }
    close(S.to_child[0]);
    close(S.to_parent[1]);
    close(S.sync[1]);
    char c;
    if (read(S.sync[0], &c, 1) != 1) /* the child's "!" after its message */
        setup_die("child did not get ready");
    close(S.sync[0]);
    fcntl(S.to_parent[0], F_SETFL, O_NONBLOCK);
    if (write(S.to_child[1], to_child_msg, sizeof to_child_msg - 1) != sizeof to_child_msg - 1)
        setup_die("pipe to child");
    char want[64];
    snprintf(want, sizeof want, "child-before:%d", S.child);
    if (strcmp((char *)S.shanon + CHILD_BEFORE_OFF, want))
        setup_die("child's marker not visible in shared memory");

    /* pending signals: thread-directed SIGTERM, process-wide SIGHUP */
    raise(SIGTERM);
    kill(getpid(), SIGHUP);

    /* record what the kernel says, then announce */
    status_field("SigCgt", S.sigcgt, sizeof S.sigcgt);
    status_field("SigIgn", S.sigign, sizeof S.sigign);
    status_field("SigBlk", S.sigblk, sizeof S.sigblk);
    status_field("SigPnd", S.sigpnd, sizeof S.sigpnd);
    status_field("ShdPnd", S.shdpnd, sizeof S.shdpnd);
    track("fd_rw", S.fd_rw);
    track("fd_append", S.fd_app);
    track("fd_ro", S.fd_ro);
    track("fd_devnull", S.fd_null);
    track("fd_dup a", S.fd_dupa);
    track("fd_dup b", S.fd_dupb);
    track("pipe_self r", S.pipe_self[0]);
    track("pipe_self w", S.pipe_self[1]);
    track("pipe_child r", S.to_parent[0]);
    track("pipe_child w", S.to_child[1]);
    S.nfds = list_fds(S.fds, MAXFDS);

    S.avx = cpu_has_avx();
    S.acc = harmonic(1000);
    for (int i = 0; i < 5; i++)
        S.regs_in.gpr[i] = 0x0123456789abcdefULL * (i + 3) ^ 0x5a5a5a5a00000000ULL;
    for (int r = 0; r < 8; r++)
        for (int b = 0; b < 32; b++)
            S.regs_in.vec[r][b] = pat(b, 0x70 + r * 17);
    memcpy(S.regs_in.vec[7], &S.acc, sizeof S.acc);
    S.regs_in.mxcsr = 0x7f80; /* all exceptions masked, round toward zero */

    printf("ready %d %d\n", S.pid, S.child);
    fflush(stdout);

    if (brk_name) {
        if (breaking("heap"))
            S.heap[HEAP_SIZE / 3] ^= 0xff;
        else if (breaking("stack"))
            stackbuf[100] ^= 1;
        else if (breaking("anon"))
            S.anon[(3 + ANON_STRIDE * 7) * PG + 5] ^= 1;
        else if (breaking("pipe_self"))
            (void)!read(S.pipe_self[0], buf, 1);
        else if (breaking("fd_rw"))
            lseek(S.fd_rw, 999, SEEK_SET);
        else if (breaking("cwd"))
            (void)!chdir("/");
        else if (breaking("umask"))
            umask(022);
        else if (breaking("sigmask")) {
            sigset_t w;
            sigemptyset(&w);
            sigaddset(&w, SIGWINCH);
            sigprocmask(SIG_BLOCK, &w, NULL);
        } else if (breaking("rlimit")) {
            struct rlimit r = S.nofile;
            r.rlim_cur--;
            setrlimit(RLIMIT_NOFILE, &r);
        } else if (breaking("tls"))
            tls_val++;
        else if (breaking("regs"))
            break_regs = 1;
        else if (breaking("shared_anon"))
            S.shanon[4096] ^= 1;
    }

    wait_in_registers(&S.regs_in, &S.regs_out, S.avx);

    if (breaking("regs") && !regs_tampered)
        fprintf(stderr, "statecheck: selftest: SIGUSR1 arrived outside the wait loop\n");
    check_heap();
    check_memory();
    check_stack(stackbuf);
    check_regs();
    check_signals();
    check_process();
    check_files();
    check_bytes("shared_anon", S.shanon, CHILD_BEFORE_OFF, 0x33);

    /* wake the child and collect its verdict */
    kill(S.child, SIGUSR1);
    int status = 0;
    pid_t w;
    while ((w = waitpid(S.child, &status, 0)) < 0 && errno == EINTR)
        ;
    if (w != S.child)
        FAIL("child_verdict", "waitpid(%d): %s", S.child, strerror(errno));
    else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        FAIL("child_verdict", "child %d %s %d", S.child, WIFEXITED(status) ? "exited" : "killed by signal",
             WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    snprintf(want, sizeof want, "child-after:%d", S.child);
    if (strcmp((char *)S.shanon + CHILD_AFTER_OFF, want))
        FAIL("shared_anon", "child's post-restore store not visible: found '%.40s', expected '%s'",
             S.shanon + CHILD_AFTER_OFF, want);

    cleanup();
    if (failures) {
        fprintf(stderr, "FAIL: %d check(s) failed\n", failures);
        return 1;
    }
    fprintf(stderr, "PASS\n");
    return 0;
}
