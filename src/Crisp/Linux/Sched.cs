using System.Runtime.InteropServices;

namespace Crisp.Linux;

/// <summary>sched_getaffinity(2)/sched_setaffinity(2) with a 1024-CPU mask.</summary>
public static unsafe partial class Sched
{
    public const int MaskWords = 16; // 1024 CPUs, glibc's cpu_set_t

    [LibraryImport("libc", EntryPoint = "sched_getaffinity", SetLastError = true)]
    private static partial int sched_getaffinity(int pid, nuint size, ulong* mask);

    [LibraryImport("libc", EntryPoint = "sched_setaffinity", SetLastError = true)]
    private static partial int sched_setaffinity(int pid, nuint size, ulong* mask);

    /// <summary>The affinity mask as 64-bit words (CPU n is bit n%64 of word n/64).</summary>
    public static ulong[] GetAffinity(int pid)
    {
        var mask = new ulong[MaskWords];
        fixed (ulong* p = mask)
            SyscallException.Check(sched_getaffinity(pid, (nuint)(MaskWords * 8), p), "sched_getaffinity");
        return mask;
    }

    public static void SetAffinity(int pid, ReadOnlySpan<ulong> mask)
    {
        fixed (ulong* p = mask)
            SyscallException.Check(sched_setaffinity(pid, (nuint)(mask.Length * 8), p), "sched_setaffinity");
    }

    /// <summary>CPU numbers set in a mask.</summary>
    public static List<int> Cpus(ReadOnlySpan<ulong> mask)
    {
        var cpus = new List<int>();
        for (int w = 0; w < mask.Length; w++)
            for (int b = 0; b < 64; b++)
                if ((mask[w] & (1UL << b)) != 0)
                    cpus.Add(w * 64 + b);
        return cpus;
    }
}
