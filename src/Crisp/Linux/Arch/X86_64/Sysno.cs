namespace Crisp.Linux;

/// <summary>x86-64 system call numbers: the one table (no number is written anywhere else). Used for raw
/// syscall() from crisp and for remote syscalls run inside a stopped task (Compel). Partial: the other
/// Sysno.*.cs files of this folder group numbers by user.</summary>
public static partial class Sysno
{
    public const long read = 0, write = 1, open = 2, close = 3, fstat = 5, lseek = 8, mmap = 9,
        mprotect = 10, munmap = 11, brk = 12, rt_sigaction = 13, rt_sigprocmask = 14,
        rt_sigreturn = 15, ioctl = 16, pread64 = 17, pwrite64 = 18, readv = 19, writev = 20,
        pipe = 22, sched_yield = 24, mremap = 25, madvise = 28, dup = 32, dup2 = 33, pause = 34,
        nanosleep = 35, getitimer = 36, setitimer = 38, getpid = 39, socket = 41, connect = 42,
        sendmsg = 46, recvmsg = 47, shutdown = 48, bind = 49, listen = 50, socketpair = 53,
        setsockopt = 54, getsockopt = 55, clone = 56, fork = 57, execve = 59, exit = 60,
        wait4 = 61, kill = 62, fcntl = 72, flock = 73, getcwd = 79, chdir = 80, fchdir = 81,
        umask = 95, getrlimit = 97, ptrace = 101, getuid = 102, getgid = 104, setuid = 105,
        setgid = 106, geteuid = 107, getegid = 108, setpgid = 109, getppid = 110, setsid = 112,
        setreuid = 113, setregid = 114, getgroups = 115, setgroups = 116, setresuid = 117,
        getresuid = 118, setresgid = 119, getresgid = 120, getpgid = 121, setfsuid = 122,
        setfsgid = 123, getsid = 124, capget = 125, capset = 126, rt_sigpending = 127, rt_sigtimedwait = 128,
        rt_sigqueueinfo = 129, rt_sigsuspend = 130, sigaltstack = 131, personality = 135,
        prctl = 157, arch_prctl = 158, setrlimit = 160, chroot = 161, gettid = 186, tkill = 200,
        futex = 202, sched_setaffinity = 203, sched_getaffinity = 204, set_tid_address = 218,
        timer_create = 222, timer_settime = 223, timer_gettime = 224, timer_getoverrun = 225,
        timer_delete = 226, clock_gettime = 228, clock_nanosleep = 230, exit_group = 231,
        epoll_wait = 232, epoll_ctl = 233, tgkill = 234, waitid = 247, openat = 257,
        set_robust_list = 273, get_robust_list = 274, timerfd_create = 283, timerfd_settime = 286,
        timerfd_gettime = 287, signalfd4 = 289, eventfd2 = 290, epoll_create1 = 291, dup3 = 292,
        pipe2 = 293, rt_tgsigqueueinfo = 297, prlimit64 = 302, process_vm_readv = 310,
        process_vm_writev = 311, kcmp = 312, seccomp = 317, getrandom = 318, memfd_create = 319,
        userfaultfd = 323, membarrier = 324, rseq = 334, pidfd_send_signal = 424,
        pidfd_open = 434, clone3 = 435, close_range = 436, openat2 = 437, pidfd_getfd = 438,
        poll = 7, sendto = 44, recvfrom = 45, getsockname = 51, getpeername = 52, shmget = 29, shmat = 30,
        shmctl = 31, semget = 64, semctl = 66, shmdt = 67, msgget = 68, msgsnd = 69, msgrcv = 70, msgctl = 71,
        restart_syscall = 219, pselect6 = 270, ppoll = 271, tee = 276, epoll_pwait = 281, accept4 = 288,
        fsopen = 430, fsconfig = 431, fsmount = 432, epoll_pwait2 = 441, process_mrelease = 448;
}
