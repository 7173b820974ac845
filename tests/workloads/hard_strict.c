/*
 * hard_strict FILE  -- a tree whose child is in SECCOMP_MODE_STRICT, checkable after a restore.
 *
 * The parent (no seccomp) makes a pipe and forks; the child enters strict mode and blocks in
 * read() on the pipe (only read, write, _exit and sigreturn are allowed from then on). The parent
 * appends "0\n", "1\n", ... to FILE every 100 ms. On SIGUSR1 the parent writes one byte into the
 * pipe; the child answers "alive\n" on its stdout (the pipe's other direction: a second pipe the
 * parent reads), then calls getpid() -- forbidden in strict mode, so the kernel must SIGKILL it.
 * The parent exits 0 only when it read "alive" and the child died of SIGKILL; verdicts on stderr.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t got_usr1;
static void on_usr1(int sig) { (void)sig; got_usr1 = 1; }

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: hard_strict FILE\n");
        return 2;
    }
    int down[2], up[2];
    if (pipe(down) || pipe(up)) {
        perror("hard_strict: pipe");
        return 126;
    }
    pid_t child = fork();
    if (child < 0)
        return 126;
    if (child == 0) {
        close(down[1]);
        close(up[0]);
        if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT, 0, 0, 0) != 0)
            syscall(SYS_exit, 2);
        char c;
        long r;
        do
            r = syscall(SYS_read, down[0], &c, 1);
        while (r == -1 && errno == EINTR);
        if (r != 1)
            syscall(SYS_exit, 1);
        syscall(SYS_write, up[1], "alive\n", 6);
        syscall(SYS_getpid); /* forbidden: SIGKILL */
        syscall(SYS_write, up[1], "NOT-KILLED\n", 11);
        syscall(SYS_exit, 0);
    }
    close(down[0]);
    close(up[1]);
    struct sigaction sa = {.sa_handler = on_usr1};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return 2;
    for (long i = 0; !got_usr1; i++) {
        char buf[32];
        int len = snprintf(buf, sizeof buf, "%ld\n", i);
        if (write(fd, buf, len) != len)
            return 1;
        struct timespec ts = {0, 100 * 1000000L};
        while (!got_usr1 && nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
    int bad = 0;
    if (write(down[1], "x", 1) != 1) {
        fprintf(stderr, "FAIL: write to the strict child: %s\n", strerror(errno));
        bad++;
    }
    char got[64] = {0};
    size_t n = 0;
    ssize_t r;
    while (n < sizeof got - 1 && (r = read(up[0], got + n, sizeof got - 1 - n)) > 0)
        n += r;
    int status = 0;
    if (waitpid(child, &status, 0) != child) {
        perror("hard_strict: waitpid");
        return 1;
    }
    if (strcmp(got, "alive\n") != 0) {
        fprintf(stderr, "FAIL: the strict child answered '%s', expected 'alive'\n", got);
        bad++;
    }
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
        fprintf(stderr, "FAIL: the strict child's status 0x%x, expected killed by SIGKILL\n", status);
        bad++;
    }
    if (!bad)
        fprintf(stderr, "PASS\n");
    return bad ? 1 : 0;
}
