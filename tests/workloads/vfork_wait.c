/*
 * vfork_wait  -- a task that cannot reach a ptrace stop.
 *
 * Prints "ready PID CHILDPID\n" on stdout, then vfork()s: the parent waits in
 * the kernel (uninterruptible, state D) until the child execs or exits, which
 * it never does by itself (it pauses). A seize of the parent therefore never
 * completes: dump --timeout must give up and leave both tasks as they were.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(void)
{
    int parent = getpid();
    pid_t child = vfork();
    if (child == 0) {
        /* Only raw syscalls in the vfork child: it borrows the parent's stack. */
        char line[64];
        int n = snprintf(line, sizeof line, "ready %d %d\n", parent, (int)syscall(SYS_getpid));
        syscall(SYS_write, 1, line, n);
        for (;;)
            syscall(SYS_pause);
    }
    return 0;
}
