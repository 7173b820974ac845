/* Holds known patterns in ymm8-ymm15 while spinning (no libc calls in between, which could
 * clobber vector registers). Writes 'R' when loaded; on SIGUSR1 writes the 256 register bytes
 * to stdout and exits 0 if they still equal the patterns, 1 otherwise.
 * Built with -mgeneral-regs-only so compiled code never touches vector registers. */
#include <signal.h>
#include <string.h>
#include <unistd.h>

static unsigned char pat[8][32] __attribute__((aligned(32)));
static unsigned char out[8][32] __attribute__((aligned(32)));
static volatile sig_atomic_t stop;
static void on_usr1(int sig) { (void)sig; stop = 1; }

static long raw_write(int fd, const void *buf, long len)
{
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(1L), "D"((long)fd), "S"(buf), "d"(len) : "rcx", "r11", "memory");
    return r;
}

int main(void)
{
    for (int r = 0; r < 8; r++)
        for (int j = 0; j < 32; j++)
            pat[r][j] = (unsigned char)(0x40 + r * 32 + j);
    signal(SIGUSR1, on_usr1);
    __asm__ volatile(
        "vmovdqu 0(%0), %%ymm8\n\t"  "vmovdqu 32(%0), %%ymm9\n\t"
        "vmovdqu 64(%0), %%ymm10\n\t" "vmovdqu 96(%0), %%ymm11\n\t"
        "vmovdqu 128(%0), %%ymm12\n\t" "vmovdqu 160(%0), %%ymm13\n\t"
        "vmovdqu 192(%0), %%ymm14\n\t" "vmovdqu 224(%0), %%ymm15\n\t"
        :: "r"(pat) : "memory");
    raw_write(1, "R", 1);
    while (!stop)
        ;
    __asm__ volatile(
        "vmovdqu %%ymm8, 0(%0)\n\t"  "vmovdqu %%ymm9, 32(%0)\n\t"
        "vmovdqu %%ymm10, 64(%0)\n\t" "vmovdqu %%ymm11, 96(%0)\n\t"
        "vmovdqu %%ymm12, 128(%0)\n\t" "vmovdqu %%ymm13, 160(%0)\n\t"
        "vmovdqu %%ymm14, 192(%0)\n\t" "vmovdqu %%ymm15, 224(%0)\n\t"
        :: "r"(out) : "memory");
    raw_write(1, out, sizeof out);
    return memcmp(out, pat, sizeof pat) == 0 ? 0 : 1;
}
