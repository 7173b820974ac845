namespace Crisp.Linux;

/// <summary>A pidfd: a stable reference to a process that cannot be confused with a recycled PID.
/// Statics are the raw pidfd_open(2), pidfd_getfd(2), pidfd_send_signal(2) on plain descriptors.</summary>
public sealed class PidFd : UnixFd
{
    /// <summary>pidfd_open flag: the pidfd is non-blocking (waitid returns EAGAIN).</summary>
    public const uint PIDFD_NONBLOCK = 0x800;
    /// <summary>pidfd_open flag (6.9+): a pidfd for a thread rather than a thread-group leader.</summary>
    public const uint PIDFD_THREAD = 0x80;

    public PidFd(int fd, int pid) : base(fd) => Pid = pid;

    /// <summary>The PID this pidfd was opened for (in our PID namespace).</summary>
    public int Pid { get; }

    public static PidFd Open(int pid, uint flags = 0) => new(OpenRaw(pid, flags), pid);

    /// <summary>Duplicates the target's fd <paramref name="targetFd"/> into this process (needs ptrace
    /// access to the target). The copy shares the open file description and is close-on-exec.</summary>
    public UnixFd GetFd(int targetFd) => new(GetFdRaw(Fd, targetFd));

    public void SendSignal(int signal) => SendSignalRaw(Fd, signal);

    public static int OpenRaw(int pid, uint flags = 0)
        => (int)RawSyscall.Call($"pidfd_open({pid})", Sysno.pidfd_open, pid, flags);

    public static int GetFdRaw(int pidfd, int targetFd)
        => (int)RawSyscall.Call($"pidfd_getfd({targetFd})", Sysno.pidfd_getfd, pidfd, targetFd, 0);

    /// <summary>process_mrelease(2) (5.15+): frees the anonymous memory of this process, which has been sent SIGKILL,
    /// from the calling thread while its own exit frees the rest. 0, or -errno where it could not (older kernel, not
    /// dying, an mm shared with another process).</summary>
    public long TryReleaseMemory() => RawSyscall.TryCall(Sysno.process_mrelease, Fd, 0);

    public static void SendSignalRaw(int pidfd, int signal)
        => RawSyscall.Call($"pidfd_send_signal({signal})", Sysno.pidfd_send_signal, pidfd, signal, 0, 0);
}
