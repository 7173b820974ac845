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

    /// <summary>Gives the calling thread the CPUs of the process's main thread. A thread inherits the mask of the
    /// thread that starts it, and the tracer thread is pinned to one CPU (Tracer.PinToCpuOf): a worker started
    /// from it (the page pipe's drain, dump and restore stages run on the tracer) would share that CPU with it and
    /// overlap nothing. Best effort: a mask that cannot be read or set leaves the thread as it is.</summary>
    public static void UseProcessCpus() => UseProcessCpusBut(-1);

    [LibraryImport("libc", EntryPoint = "sched_getcpu")]
    private static partial int sched_getcpu();

    /// <summary>The CPU the calling thread runs on now (-1 when unknown).</summary>
    public static int CurrentCpu() => sched_getcpu();

    /// <summary>As <see cref="UseProcessCpus"/>, less <paramref name="cpu"/> (-1: none) where that leaves one: a worker that must
    /// run beside a pinned thread (the tracer), not take turns with it. The scheduler alone moved such a worker off the
    /// busy CPU only after ~10 ms on this VM.</summary>
    public static void UseProcessCpusBut(int cpu)
    {
        try
        {
            var mask = GetAffinity(Environment.ProcessId);
            if (cpu >= 0 && cpu < MaskWords * 64)
            {
                var without = (ulong[])mask.Clone();
                without[cpu / 64] &= ~(1UL << (cpu % 64));
                if (Cpus(without).Count > 0)
                    mask = without;
            }
            SetAffinity(0, mask);
        }
        catch (SyscallException) { }
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
