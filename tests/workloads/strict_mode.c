/*
 * strict_mode  -- a task in SECCOMP_MODE_STRICT (only read, write, exit and
 * rt_sigreturn are allowed; anything else is SIGKILL).
 *
 * Prints "ready\n" on stdout (flushed), enters strict mode with
 * prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT), then blocks in read(0, ..., 1)
 * (stdin should be a pipe). When a byte arrives it writes "alive\n" to stdout
 * and exits 0 through the raw exit syscall (exit_group would be fatal here).
 * On EOF or a read error it writes "eof\n" / "read-error\n" and exits 1.
 * /proc/PID/status of the waiting task shows "Seccomp: 1".
 * No SIGUSR1 protocol: the byte on stdin is the "check yourself" trigger.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static void say(const char *s, long n)
{
    syscall(SYS_write, 1, s, n);
}

int main(void)
{
    printf("ready\n");
    fflush(stdout);
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT, 0, 0, 0) != 0) {
        perror("strict_mode: PR_SET_SECCOMP");
        return 2;
    }
    char c;
    long r;
    do
        r = syscall(SYS_read, 0, &c, 1);
    while (r == -1 && errno == EINTR); /* errno is plain memory: no syscall */
    if (r == 1) {
        say("alive\n", 6);
        syscall(SYS_exit, 0);
    }
    if (r == 0)
        say("eof\n", 4);
    else
        say("read-error\n", 11);
    syscall(SYS_exit, 1);
    return 1; /* not reached */
}
