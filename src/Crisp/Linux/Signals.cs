using System.Runtime.InteropServices;

namespace Crisp.Linux;

/// <summary>kill(2), tgkill(2) and x86-64 signal numbers.</summary>
public static partial class Signals
{
    public const int SIGHUP = 1, SIGINT = 2, SIGQUIT = 3, SIGILL = 4, SIGTRAP = 5, SIGABRT = 6, SIGBUS = 7,
        SIGFPE = 8, SIGKILL = 9, SIGUSR1 = 10, SIGSEGV = 11, SIGUSR2 = 12, SIGPIPE = 13, SIGALRM = 14,
        SIGTERM = 15, SIGSTKFLT = 16, SIGCHLD = 17, SIGCONT = 18, SIGSTOP = 19, SIGTSTP = 20, SIGTTIN = 21,
        SIGTTOU = 22, SIGURG = 23, SIGXCPU = 24, SIGXFSZ = 25, SIGVTALRM = 26, SIGPROF = 27, SIGWINCH = 28,
        SIGIO = 29, SIGPWR = 30, SIGSYS = 31, SIGRTMIN = 32, SIGRTMAX = 64;

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int kill(int pid, int sig);

    [LibraryImport("libc", EntryPoint = "tgkill", SetLastError = true)]
    private static partial int tgkill(int tgid, int tid, int sig);

    public static void Kill(int pid, int signal) => SyscallException.Check(kill(pid, signal), $"kill({pid}, {signal})");

    /// <summary>kill(2) that ignores failure (the task may be gone already); SIGKILL unless told.</summary>
    public static void TryKill(int pid, int signal = SIGKILL) => kill(pid, signal);

    public static void TgKill(int tgid, int tid, int signal)
        => SyscallException.Check(tgkill(tgid, tid, signal), $"tgkill({tgid}, {tid}, {signal})");

    /// <summary>kill(pid, 0): does the process exist (and may we signal it)?</summary>
    public static bool Exists(int pid) => kill(pid, 0) == 0 || Marshal.GetLastPInvokeError() == Errnos.EPERM;

    /// <summary>Bit for <paramref name="signal"/> in a 64-bit sigset (signal 1 is bit 0).</summary>
    public static ulong Mask(int signal) => 1UL << (signal - 1);
}
