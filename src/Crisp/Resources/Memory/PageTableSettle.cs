using System.Diagnostics;
using Crisp.Compel;
using Crisp.Linux;
using Crisp.Linux.Proc;

namespace Crisp.Resources.Memory;

/// <summary>After crisp changed a sleeping task's page tables from outside (write-protected its pages while it ran,
/// <see cref="RunningCopy"/>), the task's next return to user mode pays for the change: on a VM whose hypervisor
/// shadows guest page tables (this project's PVM machines) the vCPU leaves the guest for ~10 ms there, even for a
/// few thousand changed entries. Left alone, that return is the first remote call of the dump's stop, so the tree
/// was frozen for it. Seizing, interrupting and detaching the task while the tree is still free makes it return now
/// (its interrupted sleep restarts, as at any seize), and crisp waits until it sleeps again. Only a task asleep in
/// 'S' is touched: a running one pays while running, and one in D or a stop is left as it is.</summary>
public static class PageTableSettle
{
    /// <summary>Longest wait for a nudged task to be back asleep; past it the dump goes on (the cost is then the stop's).</summary>
    private static readonly TimeSpan MostWait = TimeSpan.FromMilliseconds(50);

    public static void Nudge(Tracer tracer, IEnumerable<int> pids, Log log)
    {
        var seizer = new Seizer(tracer);
        var clock = Stopwatch.StartNew();
        var nudged = new List<int>();
        foreach (int pid in pids)
        {
            if (State(pid) != 'S')
                continue;
            try
            {
                // Seccomp is not suspended: no call is made in the task.
                if (seizer.SeizeThread(pid, pid, SeccompSuspend.Never) is not { } thread)
                    continue;
                seizer.Detach(thread);
                nudged.Add(pid);
            }
            catch (Exception e) when (e is SyscallException or CrispException)
            {
                log.Debug($"page tables of {pid} not settled before the stop: {e.Message}");
            }
        }
        foreach (int pid in nudged)
            while (State(pid) == 'R' && clock.Elapsed < MostWait)
            {
                if (clock.Elapsed < TimeSpan.FromMilliseconds(2))
                    System.Threading.Thread.Yield();
                else
                    System.Threading.Thread.Sleep(1);
            }
        if (nudged.Count > 0)
            log.Debug($"page tables of {nudged.Count} task(s) settled before the stop in {clock.Elapsed.TotalMilliseconds:F1} ms");
    }

    private static char State(int pid)
    {
        try { return ProcStat.ReadThread(pid, pid).State; }
        catch (Exception e) when (e is IOException or FormatException) { return '?'; }
    }
}
