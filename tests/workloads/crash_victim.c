/* crash_victim -- a hardened-ish process that checks its own state, for dumps killed mid-way.
 *
 * Sets up: no_new_privs + a seccomp filter (sysinfo fails with ENOTBLK, everything else allowed),
 * four threads:
 *   main     waits for SIGUSR2 in sigwaitinfo; on it runs the self-check below and writes
 *            "ok N\n" (N = checks so far) or "FAIL: what...\n" to stdout;
 *   sleeper  nanosleep(300 ms, &rem) in a loop; an EINTR or an early return is a failure;
 *   reader   blocked in read() on a pipe nobody writes to; any return is a failure;
 *   spinner  holds patterns in ymm8-15 (xmm8-15 without AVX) and a non-default MXCSR, checks them and
 *            some integer invariants continuously; runs the SIGUSR1 handler (SA_ONSTACK) on its altstack.
 * Each thread has its own blocked-signal mask; main and spinner have an alternate signal stack.
 * Writes "ready PID\n" once all run. Built with -mgeneral-regs-only -pthread, so compiled code never
 * touches a vector register (the patterns live in ymm8-15 between the asm blocks).
 *
 * The self-check: every thread's failure flags are clear and its counter advances; every thread's
 * SigBlk (/proc/self/task/TID/status) is what it set; main's altstack is as set; the spinner's SIGUSR1
 * handler still runs, on the spinner's altstack; Seccomp 2 and NoNewPrivs 1 in /proc/self/status and
 * the filter still answers ENOTBLK; 4 threads; the SIGUSR1 disposition is unchanged.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MXCSR_VALUE 0x3f80u   /* round down, all exceptions masked (default is 0x1f80) */

static unsigned char pat[8][32] __attribute__((aligned(32)));
static volatile unsigned long spin_count, sleep_count, usr1_count;
static volatile int fail_fpu, fail_mxcsr, fail_int, fail_sleep, fail_read, fail_onstack;
static volatile pid_t tids[4];
static unsigned long masks[4];
static char *spin_alt, *main_alt;
static stack_t main_ss;
static int have_avx;
static pthread_t spinner_thread;
static int never_fd[2];

#define ALT_SIZE (64 * 1024)

static void on_usr1(int sig)
{
    (void)sig;
    char here;
    if (!(&here >= spin_alt && &here < spin_alt + ALT_SIZE))
        fail_onstack = 1;
    usr1_count++;
}

static unsigned long mask_of(int a, int b)
{
    return (1ul << (a - 1)) | (1ul << (b - 1));
}

static void block_only(int a, int b)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, a);
    sigaddset(&set, b);
    pthread_sigmask(SIG_SETMASK, &set, NULL);
}

static int filter_sysinfo(void)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_sysinfo, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOTBLK),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { sizeof f / sizeof f[0], f };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return -1;
    return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog);
}

static void *sleeper(void *arg)
{
    (void)arg;
    block_only(SIGUSR1, SIGUSR2);
    masks[1] = mask_of(SIGUSR1, SIGUSR2);
    tids[1] = gettid();
    for (;;) {
        struct timespec req = { 0, 300 * 1000000L }, rem, t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (nanosleep(&req, &rem) != 0)
            fail_sleep = errno;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        long ns = (t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec);
        if (ns < 300 * 1000000L)
            fail_sleep = 1000;
        sleep_count++;
    }
    return NULL;
}

static void *reader(void *arg)
{
    (void)arg;
    block_only(SIGUSR1, SIGRTMIN + 3);
    sigset_t usr2;
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &usr2, NULL);   /* SIGUSR2 is for main's sigwaitinfo only */
    masks[2] = mask_of(SIGUSR1, SIGRTMIN + 3) | mask_of(SIGUSR2, SIGUSR2);
    tids[2] = gettid();
    char c;
    ssize_t n = read(never_fd[0], &c, 1);
    fail_read = n < 0 ? errno : 1000 + (int)n;
    return NULL;
}

/* Compares ymm8-15 (or xmm8-15) with pat; returns nonzero when they all match. No C code runs in
 * between that could use those registers: the loop below is one asm block per round. */
static int vector_regs_ok(void)
{
    unsigned int all = 0;
    if (have_avx) {
        __asm__ volatile(
            "mov $0xffffffff, %%eax\n\t"
            "vpcmpeqb 0(%1), %%ymm8, %%ymm0\n\t"   "vpmovmskb %%ymm0, %%ecx\n\t" "and %%ecx, %%eax\n\t"
            "vpcmpeqb 32(%1), %%ymm9, %%ymm0\n\t"  "vpmovmskb %%ymm0, %%ecx\n\t" "and %%ecx, %%eax\n\t"
            "vpcmpeqb 64(%1), %%ymm10, %%ymm0\n\t" "vpmovmskb %%ymm0, %%ecx\n\t" "and %%ecx, %%eax\n\t"
            "vpcmpeqb 96(%1), %%ymm11, %%ymm0\n\t" "vpmovmskb %%ymm0, %%ecx\n\t" "and %%ecx, %%eax\n\t"
            "vpcmpeqb 128(%1), %%ymm12, %%ymm0\n\t" "vpmovmskb %%ymm0, %%ecx\n\t" "and %%ecx, %%eax\n\t"
            "vpcmpeqb 160(%1), %%ymm13, %%ymm0\n\t" "vpmovmskb %%ymm0, %%ecx\n\t" "and %%ecx, %%eax\n\t"
            "vpcmpeqb 192(%1), %%ymm14, %%ymm0\n\t" "vpmovmskb %%ymm0, %%ecx\n\t" "and %%ecx, %%eax\n\t"
            "vpcmpeqb 224(%1), %%ymm15, %%ymm0\n\t" "vpmovmskb %%ymm0, %%ecx\n\t" "and %%ecx, %%eax\n\t"
            "mov %%eax, %0\n\t"
            : "=r"(all) : "r"(pat) : "rax", "rcx", "memory");
        return all == 0xffffffffu;
    }
    __asm__ volatile(
        "mov $0xffff, %%eax\n\t"
        "movdqa %%xmm8, %%xmm0\n\t"  "pcmpeqb 0(%1), %%xmm0\n\t"   "pmovmskb %%xmm0, %%ecx\n\t" "and %%ecx, %%eax\n\t"
        "movdqa %%xmm9, %%xmm0\n\t"  "pcmpeqb 32(%1), %%xmm0\n\t"  "pmovmskb %%xmm0, %%ecx\n\t" "and %%ecx, %%eax\n\t"
        "movdqa %%xmm10, %%xmm0\n\t" "pcmpeqb 64(%1), %%xmm0\n\t"  "pmovmskb %%xmm0, %%ecx\n\t" "and %%ecx, %%eax\n\t"
        "movdqa %%xmm11, %%xmm0\n\t" "pcmpeqb 96(%1), %%xmm0\n\t"  "pmovmskb %%xmm0, %%ecx\n\t" "and %%ecx, %%eax\n\t"
        "movdqa %%xmm12, %%xmm0\n\t" "pcmpeqb 128(%1), %%xmm0\n\t" "pmovmskb %%xmm0, %%ecx\n\t" "and %%ecx, %%eax\n\t"
        "movdqa %%xmm13, %%xmm0\n\t" "pcmpeqb 160(%1), %%xmm0\n\t" "pmovmskb %%xmm0, %%ecx\n\t" "and %%ecx, %%eax\n\t"
        "movdqa %%xmm14, %%xmm0\n\t" "pcmpeqb 192(%1), %%xmm0\n\t" "pmovmskb %%xmm0, %%ecx\n\t" "and %%ecx, %%eax\n\t"
        "movdqa %%xmm15, %%xmm0\n\t" "pcmpeqb 224(%1), %%xmm0\n\t" "pmovmskb %%xmm0, %%ecx\n\t" "and %%ecx, %%eax\n\t"
        "mov %%eax, %0\n\t"
        : "=r"(all) : "r"(pat) : "rax", "rcx", "memory");
    return all == 0xffffu;
}

static void *spinner(void *arg)
{
    (void)arg;
    stack_t ss = { .ss_sp = spin_alt, .ss_size = ALT_SIZE, .ss_flags = 0 };
    sigaltstack(&ss, NULL);
    block_only(SIGUSR2, SIGRTMIN + 4);
    masks[3] = mask_of(SIGUSR2, SIGRTMIN + 4);
    tids[3] = gettid();
    unsigned int mx = MXCSR_VALUE;
    __asm__ volatile("ldmxcsr %0" :: "m"(mx));
    if (have_avx)
        __asm__ volatile(
            "vmovdqu 0(%0), %%ymm8\n\t"  "vmovdqu 32(%0), %%ymm9\n\t"
            "vmovdqu 64(%0), %%ymm10\n\t" "vmovdqu 96(%0), %%ymm11\n\t"
            "vmovdqu 128(%0), %%ymm12\n\t" "vmovdqu 160(%0), %%ymm13\n\t"
            "vmovdqu 192(%0), %%ymm14\n\t" "vmovdqu 224(%0), %%ymm15\n\t"
            :: "r"(pat) : "memory");
    else
        __asm__ volatile(
            "movdqu 0(%0), %%xmm8\n\t"  "movdqu 32(%0), %%xmm9\n\t"
            "movdqu 64(%0), %%xmm10\n\t" "movdqu 96(%0), %%xmm11\n\t"
            "movdqu 128(%0), %%xmm12\n\t" "movdqu 160(%0), %%xmm13\n\t"
            "movdqu 192(%0), %%xmm14\n\t" "movdqu 224(%0), %%xmm15\n\t"
            :: "r"(pat) : "memory");
    uint64_t i = 0, sum = 0, x = 0x9e3779b97f4a7c15ull, y = x;
    for (;;) {
        i++;
        sum += i;
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        __asm__ volatile("" : "+r"(y));
        y = y * 6364136223846793005ull + 1442695040888963407ull;
        if (x != y || sum != (i % 2 == 0 ? (i / 2) * (i + 1) : i * ((i + 1) / 2)))   /* exact mod 2^64 */
            fail_int = 1;
        if (!vector_regs_ok())
            fail_fpu = 1;
        unsigned int now;
        __asm__ volatile("stmxcsr %0" : "=m"(now));
        if ((now & ~0x3fu) != MXCSR_VALUE)   /* the low bits are sticky exception flags */
            fail_mxcsr = (int)now;
        spin_count = i;
    }
    return NULL;
}

static const char *status_field(const char *path, const char *key, char *out, size_t size)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char line[256];
    const char *found = NULL;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
            char *v = line + kl + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            v[strcspn(v, "\n")] = 0;
            snprintf(out, size, "%s", v);
            found = out;
            break;
        }
    }
    fclose(f);
    return found;
}

static char report[4096];
static size_t report_len;

static void failf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void failf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report_len += vsnprintf(report + report_len, sizeof report - report_len, fmt, ap);
    va_end(ap);
    if (report_len >= sizeof report)
        report_len = sizeof report - 1;
}

static void pause_ms(long ms)
{
    struct timespec t = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&t, &t) != 0 && errno == EINTR)
        ;
}

static void self_check(void)
{
    report_len = 0;
    report[0] = 0;
    if (fail_fpu) failf(" fpu");
    if (fail_mxcsr) failf(" mxcsr=0x%x", fail_mxcsr);
    if (fail_int) failf(" int");
    if (fail_sleep) failf(" sleep=%d", fail_sleep);
    if (fail_read) failf(" read=%d", fail_read);

    unsigned long s0 = spin_count, z0 = sleep_count;
    for (int i = 0; i < 300 && (spin_count == s0 || sleep_count == z0); i++)
        pause_ms(10);
    if (spin_count == s0) failf(" spinner-stuck");
    if (sleep_count == z0) failf(" sleeper-stuck");

    char path[64], value[128];
    for (int t = 0; t < 4; t++) {
        snprintf(path, sizeof path, "/proc/self/task/%d/status", (int)tids[t]);
        if (!status_field(path, "SigBlk", value, sizeof value)) {
            failf(" thread%d-gone", t);
            continue;
        }
        unsigned long blk = strtoul(value, NULL, 16);
        if (blk != masks[t]) failf(" mask%d=%lx(want %lx)", t, blk, masks[t]);
        if (!status_field(path, "Seccomp", value, sizeof value) || strcmp(value, "2") != 0) failf(" seccomp%d=%s", t, value);
    }
    if (!status_field("/proc/self/status", "Threads", value, sizeof value) || strcmp(value, "4") != 0) failf(" threads=%s", value);
    if (!status_field("/proc/self/status", "NoNewPrivs", value, sizeof value) || strcmp(value, "1") != 0) failf(" nnp=%s", value);
    if (syscall(SYS_sysinfo, NULL) != -1 || errno != ENOTBLK) failf(" filter-gone");

    stack_t now;
    sigaltstack(NULL, &now);
    if (now.ss_sp != main_ss.ss_sp || now.ss_size != main_ss.ss_size || now.ss_flags != main_ss.ss_flags)
        failf(" altstack=%p/%zu/%d", now.ss_sp, now.ss_size, now.ss_flags);
    struct sigaction sa;
    sigaction(SIGUSR1, NULL, &sa);
    if (sa.sa_handler != on_usr1 || !(sa.sa_flags & SA_ONSTACK)) failf(" sigaction");

    unsigned long u0 = usr1_count;
    pthread_kill(spinner_thread, SIGUSR1);
    for (int i = 0; i < 300 && usr1_count == u0; i++)
        pause_ms(10);
    if (usr1_count == u0) failf(" usr1-not-handled");
    if (fail_onstack) failf(" handler-off-altstack");
}

int main(void)
{
    have_avx = __builtin_cpu_supports("avx");
    for (int r = 0; r < 8; r++)
        for (int j = 0; j < 32; j++)
            pat[r][j] = (unsigned char)(0x40 + r * 32 + j);
    spin_alt = malloc(ALT_SIZE);
    main_alt = malloc(ALT_SIZE);
    main_ss = (stack_t){ .ss_sp = main_alt, .ss_size = ALT_SIZE, .ss_flags = 0 };
    if (!spin_alt || !main_alt || sigaltstack(&main_ss, NULL) != 0 || pipe(never_fd) != 0)
        return 2;
    struct sigaction sa = { .sa_handler = on_usr1, .sa_flags = SA_ONSTACK | SA_RESTART };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    if (filter_sysinfo() != 0) {
        perror("seccomp");
        return 2;
    }
    /* main: SIGUSR2 is taken by sigwaitinfo; SIGUSR1 goes to the spinner. */
    block_only(SIGUSR1, SIGUSR2);
    masks[0] = mask_of(SIGUSR1, SIGUSR2);
    tids[0] = gettid();
    pthread_t t;
    if (pthread_create(&t, NULL, sleeper, NULL) || pthread_create(&t, NULL, reader, NULL) ||
        pthread_create(&spinner_thread, NULL, spinner, NULL))
        return 2;
    while (!tids[1] || !tids[2] || !tids[3] || !spin_count || !sleep_count)
        pause_ms(5);
    printf("ready %d\n", getpid());
    fflush(stdout);
    sigset_t usr2;
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    for (int n = 1;; ) {
        int sig = sigwaitinfo(&usr2, NULL);
        if (sig != SIGUSR2)
            continue;   /* EINTR: a seize interrupts sigwaitinfo, as any ptrace stop does */
        self_check();
        if (report_len == 0)
            printf("ok %d\n", n++);
        else
            printf("FAIL:%s\n", report);
        fflush(stdout);
    }
}
