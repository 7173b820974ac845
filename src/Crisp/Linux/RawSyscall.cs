using System.Runtime.InteropServices;

namespace Crisp.Linux;

/// <summary>glibc's syscall(2), for calls glibc has no wrapper for (clone3, kcmp, seccomp, …).
/// Declared with six long arguments: on x86-64 unused ones are simply ignored by the kernel.</summary>
public static partial class RawSyscall
{
    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long syscall6(long number, long a1, long a2, long a3, long a4, long a5, long a6);

    /// <summary>Runs the syscall; throws SyscallException naming <paramref name="name"/> on -1.</summary>
    public static long Call(string name, long number, long a1 = 0, long a2 = 0, long a3 = 0,
        long a4 = 0, long a5 = 0, long a6 = 0)
        => SyscallException.Check(syscall6(number, a1, a2, a3, a4, a5, a6), name);

    /// <summary>Runs the syscall and returns -errno instead of throwing (for probes).</summary>
    public static long TryCall(long number, long a1 = 0, long a2 = 0, long a3 = 0,
        long a4 = 0, long a5 = 0, long a6 = 0)
    {
        long r = syscall6(number, a1, a2, a3, a4, a5, a6);
        return r == -1 ? -Marshal.GetLastPInvokeError() : r;
    }
}
