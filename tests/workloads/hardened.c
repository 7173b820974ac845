/*
 * hardened -- launch a program the way a Kubernetes pod with
 *
 *     securityContext:
 *       runAsUser: 1000            (and runAsGroup: 1000, no supplementary groups)
 *       allowPrivilegeEscalation: false
 *       capabilities: { drop: [ALL] }
 *       seccompProfile: { type: RuntimeDefault }
 *
 * would run it, then exec it (same PID).
 *
 * Usage: hardened [--strict] [--no-second] -- PROG ARGS...
 *
 * Steps, as root:
 *   1. setgroups(0, NULL), setresgid(1000, 1000, 1000)
 *   2. drop every capability from the bounding set (PR_CAPBSET_DROP for
 *      0..cap_last_cap, read from /proc/sys/kernel/cap_last_cap) while we still
 *      hold CAP_SETPCAP, and clear the ambient set
 *   3. PR_SET_KEEPCAPS 0 then setresuid(1000, 1000, 1000): the kernel clears the
 *      permitted and effective sets on the 0 -> non-0 transition, so keepcaps is
 *      not needed with this ordering; capset() then clears inheritable too
 *   4. PR_SET_NO_NEW_PRIVS 1
 *   5. seccomp filter #1 (libseccomp): an allowlist modelled on the Docker /
 *      containerd default profile; default action ERRNO(EPERM). Like Docker,
 *      clone() is allowed only without namespace flags and personality() only
 *      with the usual harmless values. Not allowed among others: ptrace,
 *      process_vm_readv/writev, mount, umount2, unshare, setns, reboot,
 *      kexec_load, init_module, bpf, perf_event_open, keyctl, pivot_root.
 *      Unlike Docker, clone3 is allowed (glibc uses it for threads).
 *   6. seccomp filter #2, stacked on top, loaded with SCMP_FLTATR_CTL_LOG
 *      (SECCOMP_FILTER_FLAG_LOG): default ALLOW, and
 *          getpriority -> ERRNO(EHWPOISON = 133)
 *      a distinctive, harmless marker: a process that still has both filters
 *      after a checkpoint/restore sees getpriority() fail with errno 133.
 *      --no-second skips this filter (then Seccomp_filters is 1).
 *   7. execvp(PROG, ARGS)
 *
 * --strict: refuse to run unless root, and before exec verify the result in
 * /proc/self/status (uids, gids, groups, all five capability sets zero,
 * NoNewPrivs 1, Seccomp 2, Seccomp_filters); exit 126 on any mismatch.
 * Without --strict, when not root, the uid/gid/bounding-set steps are skipped
 * (best effort) and the filters are still loaded.
 *
 * Exit status 126 on setup failure, 127 when exec fails.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define TARGET_ID 1000
#define MARKER_ERRNO 133 /* EHWPOISON */

/* Allowed unconditionally (names unknown to this libseccomp/arch are skipped). */
static const char *const allowed[] = {
    "accept", "accept4", "access", "adjtimex", "alarm", "arch_prctl", "bind", "brk",
    "cachestat", "capget", "capset", "chdir", "chmod", "chown", "clock_adjtime",
    "clock_getres", "clock_gettime", "clock_nanosleep", "clone3", "close",
    "close_range", "connect", "copy_file_range", "creat", "dup", "dup2", "dup3",
    "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait",
    "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "execve",
    "execveat", "exit", "exit_group", "faccessat", "faccessat2", "fadvise64",
    "fallocate", "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchmodat2",
    "fchown", "fchownat", "fcntl", "fdatasync", "fgetxattr", "flistxattr", "flock",
    "fork", "fremovexattr", "fsetxattr", "fstat", "fstatfs", "fsync", "ftruncate",
    "futex", "futex_requeue", "futex_wait", "futex_waitv", "futex_wake", "futimesat",
    "get_mempolicy", "get_robust_list", "get_thread_area", "getcpu", "getcwd",
    "getdents", "getdents64", "getegid", "geteuid", "getgid", "getgroups",
    "getitimer", "getpeername", "getpgid", "getpgrp", "getpid", "getppid",
    "getpriority", "getrandom", "getresgid", "getresuid", "getrlimit", "getrusage",
    "getsid", "getsockname", "getsockopt", "gettid", "gettimeofday", "getuid",
    "getxattr", "inotify_add_watch", "inotify_init", "inotify_init1",
    "inotify_rm_watch", "io_cancel", "io_destroy", "io_getevents", "io_pgetevents",
    "io_setup", "io_submit", "ioctl", "ioprio_get", "ioprio_set", "kill",
    "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self",
    "lchown", "lgetxattr", "link", "linkat", "listen", "listxattr", "llistxattr",
    "lremovexattr", "lseek", "lsetxattr", "lstat", "madvise", "map_shadow_stack",
    "mbind", "membarrier", "memfd_create", "memfd_secret", "mincore", "mkdir",
    "mkdirat", "mknod", "mknodat", "mlock", "mlock2", "mlockall", "mmap",
    "modify_ldt", "mprotect", "mq_getsetattr", "mq_notify", "mq_open",
    "mq_timedreceive", "mq_timedsend", "mq_unlink", "mremap", "mseal", "msgctl",
    "msgget", "msgrcv", "msgsnd", "msync", "munlock", "munlockall", "munmap",
    "name_to_handle_at", "nanosleep", "newfstatat", "open", "openat", "openat2",
    "pause", "pidfd_open", "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc",
    "pkey_free", "pkey_mprotect", "poll", "ppoll", "prctl", "pread64", "preadv",
    "preadv2", "prlimit64", "process_mrelease", "pselect6", "pwrite64", "pwritev",
    "pwritev2", "read", "readahead", "readlink", "readlinkat", "readv", "recvfrom",
    "recvmmsg", "recvmsg", "remap_file_pages", "removexattr", "rename", "renameat",
    "renameat2", "restart_syscall", "rmdir", "rseq", "rt_sigaction",
    "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn",
    "rt_sigsuspend", "rt_sigtimedwait", "rt_tgsigqueueinfo", "sched_get_priority_max",
    "sched_get_priority_min", "sched_getaffinity", "sched_getattr",
    "sched_getparam", "sched_getscheduler", "sched_rr_get_interval",
    "sched_setaffinity", "sched_setattr", "sched_setparam", "sched_setscheduler",
    "sched_yield", "seccomp", "select", "semctl", "semget", "semop", "semtimedop",
    "sendfile", "sendmmsg", "sendmsg", "sendto", "set_mempolicy",
    "set_robust_list", "set_thread_area", "set_tid_address", "setfsgid",
    "setfsuid", "setgid", "setgroups", "setitimer", "setpgid", "setpriority",
    "setregid", "setresgid", "setresuid", "setreuid", "setrlimit", "setsid",
    "setsockopt", "setuid", "setxattr", "shmat", "shmctl", "shmdt", "shmget",
    "shutdown", "sigaltstack", "signalfd", "signalfd4", "socket", "socketpair",
    "splice", "stat", "statfs", "statx", "symlink", "symlinkat", "sync",
    "sync_file_range", "syncfs", "sysinfo", "tee", "tgkill", "time",
    "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime",
    "timer_settime", "timerfd_create", "timerfd_gettime", "timerfd_settime",
    "times", "tkill", "truncate", "umask", "uname", "unlink", "unlinkat",
    "uretprobe", "utime", "utimensat", "utimes", "vfork", "vmsplice", "wait4",
    "waitid", "write", "writev",
};

/* Must never be in the list above (checked at startup, so an edit can't slip). */
static const char *const forbidden[] = {
    "ptrace", "process_vm_readv", "process_vm_writev", "mount", "umount2",
    "unshare", "setns", "reboot", "kexec_load", "kexec_file_load", "init_module",
    "finit_module", "delete_module", "bpf", "perf_event_open", "keyctl",
    "add_key", "request_key", "pivot_root", "chroot", "swapon", "swapoff",
    "open_by_handle_at", "kcmp", "pidfd_getfd", "fsopen", "fsmount", "move_mount",
    "open_tree", "userfaultfd", "acct", "settimeofday", "clock_settime",
    "sethostname", "setdomainname", "iopl", "ioperm", "quotactl", "lookup_dcookie",
    "vhangup", "nfsservctl", "syslog",
};

static void die(const char *what)
{
    fprintf(stderr, "hardened: %s: %s\n", what, strerror(errno));
    exit(126);
}

static void dief(const char *what, int err)
{
    fprintf(stderr, "hardened: %s: %s\n", what, strerror(err < 0 ? -err : err));
    exit(126);
}

static int read_cap_last_cap(void)
{
    FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "r");
    int last = -1;
    if (!f || fscanf(f, "%d", &last) != 1 || last < 0 || last > 63)
        die("reading /proc/sys/kernel/cap_last_cap");
    fclose(f);
    return last;
}

static void clear_capsets(void)
{
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capset, &hdr, data) != 0)
        die("capset(all zero)");
}

static void load_allowlist(void)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
    if (!ctx)
        dief("seccomp_init", ENOMEM);
    int rc;
    for (size_t i = 0; i < sizeof allowed / sizeof *allowed; i++) {
        for (size_t j = 0; j < sizeof forbidden / sizeof *forbidden; j++)
            if (strcmp(allowed[i], forbidden[j]) == 0) {
                fprintf(stderr, "hardened: BUG: %s is in the allowlist\n", allowed[i]);
                exit(126);
            }
        int nr = seccomp_syscall_resolve_name(allowed[i]);
        if (nr == __NR_SCMP_ERROR || nr < 0)
            continue; /* not a syscall on this arch (or a pseudo-syscall) */
        if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0)) != 0) {
            fprintf(stderr, "hardened: rule for %s: %s\n", allowed[i], strerror(-rc));
            exit(126);
        }
    }
    /* clone: only without namespace flags (as Docker does without CAP_SYS_ADMIN). */
    const unsigned long ns_flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |
                                   CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP;
    if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                               SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flags, 0))) != 0)
        dief("rule for clone", rc);
    /* personality: only the values Docker allows. */
    static const unsigned long personas[] = {0x0, 0x8, 0x20000, 0x20008, 0xffffffff};
    for (size_t i = 0; i < sizeof personas / sizeof *personas; i++)
        if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(personality), 1,
                                   SCMP_A0(SCMP_CMP_EQ, personas[i]))) != 0)
            dief("rule for personality", rc);
    if ((rc = seccomp_load(ctx)) != 0)
        dief("seccomp_load(allowlist)", rc);
    seccomp_release(ctx);
}

static void load_marker_filter(void)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    int rc;
    if (!ctx)
        dief("seccomp_init", ENOMEM);
    if ((rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_LOG, 1)) != 0)
        dief("seccomp_attr_set(CTL_LOG)", rc);
    if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(MARKER_ERRNO), SCMP_SYS(getpriority), 0)) != 0)
        dief("rule for getpriority", rc);
    if ((rc = seccomp_load(ctx)) != 0)
        dief("seccomp_load(marker)", rc);
    seccomp_release(ctx);
}

/* --strict: check /proc/self/status; returns the number of mismatches. */
static int verify_status(int filters)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        die("open /proc/self/status");
    char line[512], want[128];
    int bad = 0, seen = 0;
    while (fgets(line, sizeof line, f)) {
        char key[64];
        if (sscanf(line, "%63[^:]:", key) != 1)
            continue;
        const char *exp = NULL;
        if (!strcmp(key, "Uid") || !strcmp(key, "Gid"))
            exp = "1000\t1000\t1000\t1000";
        else if (!strcmp(key, "Groups"))
            exp = "";
        else if (!strncmp(key, "Cap", 3))
            exp = "0000000000000000";
        else if (!strcmp(key, "NoNewPrivs"))
            exp = "1";
        else if (!strcmp(key, "Seccomp"))
            exp = "2";
        else if (!strcmp(key, "Seccomp_filters"))
            exp = (snprintf(want, sizeof want, "%d", filters), want);
        if (!exp)
            continue;
        seen++;
        char *v = line + strlen(key) + 1;
        v += strspn(v, " \t");
        v[strcspn(v, "\n")] = 0;
        for (size_t n = strlen(v); n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t');)
            v[--n] = 0;
        if (strcmp(v, exp) != 0) {
            fprintf(stderr, "hardened: --strict: %s is '%s', expected '%s'\n", key, v, exp);
            bad++;
        }
    }
    fclose(f);
    if (seen < 11) {
        fprintf(stderr, "hardened: --strict: only %d expected fields in /proc/self/status\n", seen);
        bad++;
    }
    return bad;
}

int main(int argc, char **argv)
{
    int strict = 0, second = 1, i = 1;
    for (; i < argc; i++) {
        if (!strcmp(argv[i], "--strict"))
            strict = 1;
        else if (!strcmp(argv[i], "--no-second"))
            second = 0;
        else if (!strcmp(argv[i], "--")) {
            i++;
            break;
        } else
            break;
    }
    if (i >= argc) {
        fprintf(stderr, "usage: hardened [--strict] [--no-second] -- PROG ARGS...\n");
        return 126;
    }
    char **prog = argv + i;
    int root = geteuid() == 0;
    if (strict && !root) {
        fprintf(stderr, "hardened: --strict needs root\n");
        return 126;
    }

    if (root) {
        if (setgroups(0, NULL) != 0)
            die("setgroups(0)");
        if (setresgid(TARGET_ID, TARGET_ID, TARGET_ID) != 0)
            die("setresgid(1000)");
        int last = read_cap_last_cap();
        for (int c = 0; c <= last; c++)
            if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0 && errno != EINVAL)
                die("PR_CAPBSET_DROP");
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0)
        die("PR_CAP_AMBIENT_CLEAR_ALL");
    if (root) {
        if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0)
            die("PR_SET_KEEPCAPS 0");
        if (setresuid(TARGET_ID, TARGET_ID, TARGET_ID) != 0)
            die("setresuid(1000)");
    }
    clear_capsets();
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        die("PR_SET_NO_NEW_PRIVS");
    load_allowlist();
    if (second)
        load_marker_filter();
    if (strict && verify_status(second ? 2 : 1) != 0)
        return 126;
    execvp(prog[0], prog);
    fprintf(stderr, "hardened: exec %s: %s\n", prog[0], strerror(errno));
    return 127;
}
