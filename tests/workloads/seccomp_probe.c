/*
 * seccomp_probe [--loop FILE]  -- run under `hardened -- seccomp_probe ...`.
 *
 * Checks, from the inside, the restrictions hardened.c set up:
 *   marker    getpriority(PRIO_PROCESS, 0) fails with errno 133 (EHWPOISON),
 *             the stacked second filter's marker
 *   unshare   unshare(CLONE_NEWUSER) fails with EPERM (not in the allowlist;
 *             the kernel itself would allow it for an unprivileged user)
 *   mount     mount("none", "/", "tmpfs", 0, NULL) fails with EPERM
 *   ptrace    ptrace(PTRACE_TRACEME) fails with EPERM
 *   ids       getuid/geteuid/getgid/getegid are 1000, getgroups() is empty
 *   status    /proc/self/status: NoNewPrivs 1, Seccomp 2, Seccomp_filters 2,
 *             CapInh/CapPrm/CapEff/CapBnd/CapAmb all 0
 *
 * Default mode: runs the checks (failures are printed and exit 1 right away),
 * prints "ready\n" on stdout, waits for SIGUSR1, runs the checks again,
 * prints PASS or FAIL: ... lines on stderr, exits 0 / 1.
 *
 * --loop FILE: additionally, while waiting, appends "0\n", "1\n", ... to FILE
 * every 100 ms (one write(2) per line), checking getpriority's errno before
 * every line; on a mismatch writes "SECCOMP-LOST\n" to FILE and exits 3.
 * "ready" is printed after the first line.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define MARKER_ERRNO 133

static volatile sig_atomic_t got_usr1;
static int failures;

static void on_usr1(int sig)
{
    (void)sig;
    got_usr1 = 1;
}

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "FAIL: " __VA_ARGS__);                                                     \
        fputc('\n', stderr);                                                                       \
        failures++;                                                                                \
    } while (0)

static int marker_ok(int *got_errno)
{
    errno = 0;
    int r = getpriority(PRIO_PROCESS, 0);
    *got_errno = errno;
    return r == -1 && errno == MARKER_ERRNO;
}

static void check_status(void)
{
    static const struct { const char *key, *want; } exp[] = {
        {"NoNewPrivs", "1"},
        {"Seccomp", "2"},
        {"Seccomp_filters", "2"},
        {"CapInh", "0000000000000000"},
        {"CapPrm", "0000000000000000"},
        {"CapEff", "0000000000000000"},
        {"CapBnd", "0000000000000000"},
        {"CapAmb", "0000000000000000"},
    };
    int seen[sizeof exp / sizeof *exp] = {0};
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) {
        FAIL("status: open /proc/self/status: %s", strerror(errno));
        return;
    }
    char line[512];
    while (fgets(line, sizeof line, f)) {
        for (size_t i = 0; i < sizeof exp / sizeof *exp; i++) {
            size_t kl = strlen(exp[i].key);
            if (strncmp(line, exp[i].key, kl) || line[kl] != ':')
                continue;
            char *v = line + kl + 1;
            v += strspn(v, " \t");
            v[strcspn(v, " \t\n")] = 0;
            seen[i] = 1;
            if (strcmp(v, exp[i].want))
                FAIL("status: %s is '%s', expected '%s'", exp[i].key, v, exp[i].want);
        }
    }
    fclose(f);
    for (size_t i = 0; i < sizeof exp / sizeof *exp; i++)
        if (!seen[i])
            FAIL("status: no %s line in /proc/self/status", exp[i].key);
}

static void run_checks(void)
{
    int e;
    if (!marker_ok(&e))
        FAIL("marker: getpriority(PRIO_PROCESS,0) errno %d (%s), expected %d (second filter)", e,
             strerror(e), MARKER_ERRNO);

    errno = 0;
    int r = unshare(CLONE_NEWUSER);
    if (r != -1 || errno != EPERM)
        FAIL("unshare: unshare(CLONE_NEWUSER) returned %d errno %d (%s), expected -1 EPERM", r,
             errno, strerror(errno));

    errno = 0;
    r = mount("none", "/", "tmpfs", 0, NULL);
    if (r != -1 || errno != EPERM)
        FAIL("mount: mount() returned %d errno %d (%s), expected -1 EPERM", r, errno,
             strerror(errno));

    errno = 0;
    long p = ptrace(PTRACE_TRACEME, 0, NULL, NULL);
    if (p != -1 || errno != EPERM)
        FAIL("ptrace: ptrace(PTRACE_TRACEME) returned %ld errno %d (%s), expected -1 EPERM", p,
             errno, strerror(errno));

    if (getuid() != 1000 || geteuid() != 1000)
        FAIL("ids: uid %u euid %u, expected 1000 1000", getuid(), geteuid());
    if (getgid() != 1000 || getegid() != 1000)
        FAIL("ids: gid %u egid %u, expected 1000 1000", getgid(), getegid());
    int ng = getgroups(0, NULL);
    if (ng != 0)
        FAIL("ids: getgroups() returned %d supplementary groups, expected 0", ng);

    check_status();
}

static void loop(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "seccomp_probe: open %s: %s\n", path, strerror(errno));
        exit(2);
    }
    long i = 0;
    while (!got_usr1) {
        int e;
        if (!marker_ok(&e)) {
            static const char lost[] = "SECCOMP-LOST\n";
            if (write(fd, lost, sizeof lost - 1) < 0)
                exit(4);
            fprintf(stderr, "FAIL: marker: getpriority errno %d at iteration %ld, expected %d\n", e,
                    i, MARKER_ERRNO);
            exit(3);
        }
        char buf[32];
        int len = snprintf(buf, sizeof buf, "%ld\n", i);
        if (write(fd, buf, len) != len) {
            fprintf(stderr, "FAIL: loop: write %ld: %s\n", i, strerror(errno));
            exit(1);
        }
        if (i++ == 0) {
            printf("ready\n");
            fflush(stdout);
        }
        struct timespec ts = {0, 100 * 1000000L};
        while (!got_usr1 && nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
    close(fd);
}

int main(int argc, char **argv)
{
    const char *loop_file = NULL;
    if (argc >= 3 && !strcmp(argv[1], "--loop"))
        loop_file = argv[2];
    else if (argc != 1) {
        fprintf(stderr, "usage: seccomp_probe [--loop FILE]\n");
        return 2;
    }

    struct sigaction sa = {.sa_handler = on_usr1};
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGUSR1, &sa, NULL) != 0) {
        fprintf(stderr, "FAIL: setup: sigaction(SIGUSR1): %s\n", strerror(errno));
        return 1;
    }
    sigset_t usr1, old;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_UNBLOCK, &usr1, NULL);

    run_checks();
    if (failures)
        return 1;

    if (loop_file) {
        loop(loop_file);
    } else {
        sigprocmask(SIG_BLOCK, &usr1, &old);
        printf("ready\n");
        fflush(stdout);
        sigdelset(&old, SIGUSR1);
        while (!got_usr1)
            sigsuspend(&old);
        sigprocmask(SIG_UNBLOCK, &usr1, NULL);
    }

    run_checks();
    if (failures)
        return 1;
    fprintf(stderr, "PASS\n");
    return 0;
}
