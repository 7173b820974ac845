using System.Runtime.InteropServices;

namespace Crisp.Linux;

/// <summary>prlimit64(2) and the RLIMIT_* numbers.</summary>
public static unsafe partial class Rlimits
{
    public const int RLIMIT_CPU = 0, RLIMIT_FSIZE = 1, RLIMIT_DATA = 2, RLIMIT_STACK = 3, RLIMIT_CORE = 4,
        RLIMIT_RSS = 5, RLIMIT_NPROC = 6, RLIMIT_NOFILE = 7, RLIMIT_MEMLOCK = 8, RLIMIT_AS = 9,
        RLIMIT_LOCKS = 10, RLIMIT_SIGPENDING = 11, RLIMIT_MSGQUEUE = 12, RLIMIT_NICE = 13,
        RLIMIT_RTPRIO = 14, RLIMIT_RTTIME = 15, RLIM_NLIMITS = 16;

    public const ulong RLIM_INFINITY = ulong.MaxValue;

    [LibraryImport("libc", EntryPoint = "prlimit64", SetLastError = true)]
    private static partial int prlimit64(int pid, int resource, Rlimit* newLimit, Rlimit* oldLimit);

    public static Rlimit Get(int pid, int resource)
    {
        Rlimit old;
        SyscallException.Check(prlimit64(pid, resource, null, &old), $"prlimit64(get {resource})");
        return old;
    }

    /// <summary>Sets a limit and returns the previous one.</summary>
    public static Rlimit Set(int pid, int resource, Rlimit limit)
    {
        Rlimit old;
        SyscallException.Check(prlimit64(pid, resource, &limit, &old), $"prlimit64(set {resource})");
        return old;
    }
}

/// <summary>struct rlimit64.</summary>
[StructLayout(LayoutKind.Sequential)]
public record struct Rlimit(ulong Cur, ulong Max);
