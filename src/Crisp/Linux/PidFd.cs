namespace Crisp.Linux;

/// <summary>A pidfd: a stable reference to a process that cannot be confused with a recycled PID.</summary>
public sealed class PidFd : UnixFd
{
    public PidFd(int fd, int pid) : base(fd) => Pid = pid;

    /// <summary>The PID this pidfd was opened for (in our PID namespace).</summary>
    public int Pid { get; }

    public static PidFd Open(int pid, uint flags = 0) => new(Pidfd.Open(pid, flags), pid);

    /// <summary>Duplicates the target's fd <paramref name="targetFd"/> into this process (needs ptrace access).</summary>
    public UnixFd GetFd(int targetFd) => new(Pidfd.GetFd(Fd, targetFd));

    public void SendSignal(int signal) => Pidfd.SendSignal(Fd, signal);
}

/// <summary>pidfd_open(2), pidfd_getfd(2), pidfd_send_signal(2) on raw descriptors.</summary>
public static class Pidfd
{
    /// <summary>pidfd_open flag: the pidfd is non-blocking (waitid returns EAGAIN).</summary>
    public const uint PIDFD_NONBLOCK = 0x800;
    /// <summary>pidfd_open flag (6.9+): open a pidfd for a thread rather than a thread-group leader.</summary>
    public const uint PIDFD_THREAD = 0x80;

    public static int Open(int pid, uint flags = 0)
        => (int)RawSyscall.Call("pidfd_open", Sysno.pidfd_open, pid, flags);

    /// <summary>The new fd is always close-on-exec.</summary>
    public static int GetFd(int pidfd, int targetFd)
        => (int)RawSyscall.Call("pidfd_getfd", Sysno.pidfd_getfd, pidfd, targetFd, 0);

    public static void SendSignal(int pidfd, int signal)
        => RawSyscall.Call("pidfd_send_signal", Sysno.pidfd_send_signal, pidfd, signal, 0, 0);
}
