/*
 * hard_deny FILE  -- a root task whose filter KILLs (SECCOMP_RET_KILL_PROCESS) the very syscalls a
 * restore runs in it after installing the filters: getresuid/getresgid, setgroups, setres[ug]id,
 * setfs[ug]id, capset, prctl, munmap, rt_sigprocmask. A restorer whose later remote syscalls are
 * filtered (no PTRACE_O_SUSPEND_SECCOMP) kills it. Appends "0\n", "1\n", ... to FILE every 100 ms;
 * on SIGUSR1 it calls getresuid(), which must kill it with SIGSYS (the filter is enforced).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t got_usr1;
static void on_usr1(int sig) { (void)sig; got_usr1 = 1; }


int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    struct sigaction sa = {.sa_handler = on_usr1};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return 2;
    /* 12 instructions: load, 10 checks jumping to KILL at index 11 (relative offsets shrink by one
     * each), ALLOW, KILL. */
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_getresuid, 10, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_getresgid, 9, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_setgroups, 8, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_setresuid, 7, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_setresgid, 6, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_setfsuid, 5, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_capset, 4, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_prctl, 3, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_munmap, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_setfsgid, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
    };
    struct sock_fprog prog = {sizeof f / sizeof f[0], f};
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) {
        perror("hard_deny: seccomp");
        return 126;
    }
    for (long i = 0; !got_usr1; i++) {
        char buf[32];
        int len = snprintf(buf, sizeof buf, "%ld\n", i);
        if (write(fd, buf, len) != len)
            return 1;
        struct timespec ts = {0, 100 * 1000000L};
        while (!got_usr1 && syscall(SYS_nanosleep, &ts, &ts) != 0 && errno == EINTR)
            ;
    }
    uid_t r, e, s;
    syscall(SYS_getresuid, &r, &e, &s); /* must be fatal */
    return 0;
}
