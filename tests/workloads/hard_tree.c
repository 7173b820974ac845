/*
 * hard_tree DIR  -- run under `hardened --no-second -- hard_tree DIR`: a parent with one seccomp
 * filter (the allowlist hardened.c loaded) forks a child that stacks a second, LOG-flagged filter
 * of its own (getpriority -> ERRNO(133)). The child's chain is the parent's plus one: the shared
 * prefix must be stored once in seccomp.img and both chains restored.
 *
 * Both append "0\n", "1\n", ... to DIR/parent.txt / DIR/child.txt every 100 ms, checking before
 * every line that getpriority behaves as their own chain says (parent: succeeds; child: errno 133)
 * and write "SECCOMP-LOST\n" and exit 3 on a mismatch. SIGUSR1 to the parent: it forwards SIGUSR1
 * to the child, both re-check (marker, and unshare(CLONE_NEWUSER) is EPERM from the allowlist),
 * the parent reaps the child and exits 0 only when both passed (verdicts on stderr).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MARKER_ERRNO 133

static volatile sig_atomic_t got_usr1;
static void on_usr1(int sig) { (void)sig; got_usr1 = 1; }

static int marker(void)
{
    errno = 0;
    int r = getpriority(PRIO_PROCESS, 0);
    return r == -1 && errno == MARKER_ERRNO;
}

static int check(int want_marker, const char *who)
{
    int bad = 0;
    if (marker() != want_marker) {
        fprintf(stderr, "FAIL: %s: getpriority marker %d, expected %d\n", who, !want_marker, want_marker);
        bad++;
    }
    errno = 0;
    if (unshare(CLONE_NEWUSER) != -1 || errno != EPERM) {
        fprintf(stderr, "FAIL: %s: unshare(CLONE_NEWUSER) not EPERM (errno %d)\n", who, errno);
        bad++;
    }
    return bad;
}

static void load_marker_filter(void)
{
    struct sock_filter prog[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_getpriority, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | MARKER_ERRNO),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog fprog = {.len = sizeof prog / sizeof *prog, .filter = prog};
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_LOG, &fprog) != 0) {
        perror("hard_tree: seccomp(child filter)");
        exit(126);
    }
}

static void loop(const char *path, int want_marker)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        perror(path);
        exit(2);
    }
    for (long i = 0; !got_usr1; i++) {
        if (marker() != want_marker) {
            (void)!write(fd, "SECCOMP-LOST\n", 13);
            exit(3);
        }
        char buf[32];
        int len = snprintf(buf, sizeof buf, "%ld\n", i);
        if (write(fd, buf, len) != len)
            exit(1);
        struct timespec ts = {0, 100 * 1000000L};
        while (!got_usr1 && nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
    close(fd);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: hard_tree DIR\n");
        return 2;
    }
    struct sigaction sa = {.sa_handler = on_usr1};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    char ppath[4096], cpath[4096];
    snprintf(ppath, sizeof ppath, "%s/parent.txt", argv[1]);
    snprintf(cpath, sizeof cpath, "%s/child.txt", argv[1]);
    if (check(0, "parent"))
        return 1;
    pid_t child = fork();
    if (child < 0) {
        perror("hard_tree: fork");
        return 126;
    }
    if (child == 0) {
        load_marker_filter();
        if (check(1, "child"))
            _exit(1);
        loop(cpath, 1);
        int bad = check(1, "child");
        if (!bad)
            fprintf(stderr, "PASS child\n");
        _exit(bad ? 1 : 0);
    }
    loop(ppath, 0);
    kill(child, SIGUSR1);
    int status = 0;
    if (waitpid(child, &status, 0) != child) {
        perror("hard_tree: waitpid");
        return 1;
    }
    int bad = check(0, "parent");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "FAIL: child status 0x%x\n", status);
        bad++;
    }
    if (!bad)
        fprintf(stderr, "PASS\n");
    return bad ? 1 : 0;
}
