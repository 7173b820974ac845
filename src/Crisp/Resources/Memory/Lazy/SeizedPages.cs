using Crisp.Linux;
using Crisp.Linux.Proc;

namespace Crisp.Resources.Memory.Lazy;

/// <summary>The source side of a lazy migration: the lazy runs a dump --lazy-pages recorded, read out of the tasks,
/// which stay seized (stopped) until the lazy-pages daemon has every page, so what it reads is what was dumped.</summary>
public sealed class SeizedPages(IReadOnlyDictionary<int, (int HostPid, List<PlannedRun> Runs)> lazy)
{
    /// <summary>How many of <paramref name="asked"/> pages from <paramref name="vaddr"/> on are lazy pages of the
    /// task (one run): 0 when vaddr is not one.</summary>
    public int Available(int pid, ulong vaddr, int asked)
    {
        if (!lazy.TryGetValue(pid, out var task) || vaddr % Mman.PageSize != 0)
            return 0;
        foreach (var run in task.Runs)
            if (vaddr >= run.Start && vaddr < run.Start + run.Length)
                return (int)Math.Min((ulong)asked, (run.Start + run.Length - vaddr) / Mman.PageSize);
        return 0;
    }

    /// <summary>Reads the pages (process_vm_readv; /proc/PID/mem for what it refuses, such as PROT_NONE pages).</summary>
    public void Read(int pid, ulong vaddr, Span<byte> into)
    {
        int host = lazy[pid].HostPid;
        long done = ProcessVm.Read(host, [new RemoteRange(vaddr, (ulong)into.Length)], into);
        if (done >= into.Length)
            return;
        using var mem = File.OpenHandle(Procfs.Host.Path(host, "mem"), FileMode.Open, FileAccess.Read);
        for (int got = (int)Math.Max(done, 0); got < into.Length;)
        {
            int n = RandomAccess.Read(mem, into[got..], (long)vaddr + got);
            if (n <= 0)
                throw new CrispException($"lazy pages: task {host}'s memory at 0x{vaddr + (ulong)got:x} cannot be read");
            got += n;
        }
    }
}
