using Crisp.Cli.CommandLine;
using Crisp.Linux;

namespace Crisp.Cli;

/// <summary>--status-fd FD: as CRIU's status_ready(), one zero byte is written to FD when crisp is ready
/// (the dump is complete / the restored tree runs) and FD is closed, so a caller blocked reading it
/// wakes up with exactly one byte, or with EOF if crisp failed first.</summary>
public sealed class StatusFd
{
    private const int F_GETFD = 1;
    private int _fd;

    private StatusFd(int fd) => _fd = fd;

    public static StatusFd Parse(string value)
    {
        if (!int.TryParse(value, out int fd) || fd < 0)
            throw new UsageException($"bad --status-fd '{value}'");
        if (RawSyscall.TryCall(Sysno.fcntl, fd, F_GETFD) < 0)
            throw new UsageException($"--status-fd {fd} is not an open descriptor");
        return new StatusFd(fd);
    }

    public unsafe void Ready()
    {
        if (_fd < 0)
            return;
        byte zero = 0;
        long r = RawSyscall.TryCall(Sysno.write, _fd, (long)&zero, 1);
        RawSyscall.TryCall(Sysno.close, _fd);
        _fd = -1;
        if (r != 1)
            throw new CrispException($"can't write to --status-fd: errno {-r}");
    }
}
