using System.Runtime.InteropServices;

namespace Crisp.Linux;

/// <summary>A decoded wait status.</summary>
public readonly record struct WaitStatus(int Raw)
{
    public bool Exited => (Raw & 0x7f) == 0;
    public int ExitCode => (Raw >> 8) & 0xff;
    public bool Signaled => (Raw & 0x7f) != 0 && (Raw & 0x7f) != 0x7f;
    public int TermSignal => Raw & 0x7f;
    public bool Stopped => (Raw & 0xff) == 0x7f;
    /// <summary>Stop signal (for a syscall-stop with TRACESYSGOOD: SIGTRAP|0x80).</summary>
    public int StopSignal => (Raw >> 8) & 0xff;
    /// <summary>PTRACE_EVENT_* of a ptrace event stop, else 0.</summary>
    public int Event => (Raw >> 16) & 0xff;
    public bool Continued => Raw == 0xffff;
    /// <summary>Gone for good: exited or killed by a signal.</summary>
    public bool Dead => Exited || Signaled;

    public override string ToString() =>
        Exited ? $"exited {ExitCode}" :
        Signaled ? $"killed by signal {TermSignal}" :
        Stopped ? (Event != 0 ? $"stopped, signal {StopSignal}, event {Event}" : $"stopped, signal {StopSignal}") :
        $"status 0x{Raw:x}";
}

/// <summary>waitpid(2)/waitid(2). Tracees must only be waited for on the tracer thread.</summary>
public static partial class Wait
{
    public const int WNOHANG = 1, WUNTRACED = 2, WEXITED = 4, WCONTINUED = 8, WNOWAIT = 0x01000000,
        WNOTHREAD = 0x20000000, WALL = 0x40000000, WCLONE = unchecked((int)0x80000000);

    public const int P_ALL = 0, P_PID = 1, P_PGID = 2, P_PIDFD = 3;

    [LibraryImport("libc", EntryPoint = "waitpid", SetLastError = true)]
    private static partial int waitpid(int pid, out int status, int options);

    [LibraryImport("libc", EntryPoint = "waitid", SetLastError = true)]
    private static unsafe partial int waitid(int idtype, int id, byte* infop, int options);

    /// <summary>waitpid, retried on EINTR. Returns the pid reported (0 with WNOHANG and nothing to report).</summary>
    public static int WaitPid(int pid, out WaitStatus status, int options = WALL)
    {
        while (true)
        {
            int r = waitpid(pid, out int raw, options);
            if (r == -1 && Marshal.GetLastPInvokeError() == Errnos.EINTR)
                continue;
            SyscallException.Check(r, $"waitpid({pid})");
            status = new WaitStatus(raw);
            return r;
        }
    }

    /// <summary>waitpid returning -errno instead of throwing (ECHILD for a vanished thread).</summary>
    public static int TryWaitPid(int pid, out WaitStatus status, int options = WALL)
    {
        while (true)
        {
            int r = waitpid(pid, out int raw, options);
            if (r == -1)
            {
                int errno = Marshal.GetLastPInvokeError();
                if (errno == Errnos.EINTR)
                    continue;
                status = default;
                return -errno;
            }
            status = new WaitStatus(raw);
            return r;
        }
    }

    /// <summary>waitid; returns (si_pid, si_code, si_status), si_pid 0 when WNOHANG found nothing.</summary>
    public static unsafe (int Pid, int Code, int Status) WaitId(int idType, int id, int options)
    {
        byte* info = stackalloc byte[128];
        new Span<byte>(info, 128).Clear();
        while (true)
        {
            int r = waitid(idType, id, info, options);
            if (r == -1 && Marshal.GetLastPInvokeError() == Errnos.EINTR)
                continue;
            SyscallException.Check(r, $"waitid({idType}, {id})");
            // siginfo_t: si_signo, si_errno, si_code (ints), then pad to 16: si_pid, si_uid, si_status.
            return (*(int*)(info + 16), *(int*)(info + 8), *(int*)(info + 24));
        }
    }
}
