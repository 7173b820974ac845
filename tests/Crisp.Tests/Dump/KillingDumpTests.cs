using Crisp.Linux.Proc;
using Crisp.Tests.Resources.Memory;
using Crisp.Tests.Support;

namespace Crisp.Tests.Dump;

/// <summary>A dump without --leave-running ends with the tree dead: killed, and its exits consumed, before crisp
/// returns. A large task's teardown (freeing its memory) is most of that wait, so crisp frees a killed large task's
/// memory from its own thread as well (process_mrelease) while the task's exit frees the rest. A task whose exit is
/// over before crisp's call (ESRCH, logged; 3 of ~40 runs here) has nothing left to free.</summary>
public class KillingDumpTests
{
    [RootFact]
    public void ALargeTaskIsFreedByCrispTooAndIsDeadWhenTheDumpReturns()
    {
        using var w = MemWorkload.Start(bigMiB: 96);
        var dump = CrispCli.Run("dump", "-t", w.Pid.ToString(), "-D", w.ImagesDir, "-v4", "-o", "dump.log");
        Assert.True(dump.ExitCode == 0, $"dump: {dump.Stderr}");
        // Dead already: a zombie for its parent (this test) to reap, or gone — never still running or exiting.
        char state = Directory.Exists($"/proc/{w.Pid}") ? ProcStat.Read(w.Pid).State : 'X';
        Assert.True(state is 'Z' or 'X', $"task {w.Pid} is in state {state} after the dump returned");
        var log = File.ReadAllLines(Path.Combine(w.ImagesDir, "dump.log"));
        var killed = log.Single(l => l.Contains("killed 1 task(s)", StringComparison.Ordinal));
        // Freed from crisp too; or already gone when crisp asked (ESRCH: its own exit beat the call, nothing was left).
        bool goneFirst = log.Any(l => l.Contains($"process_mrelease({w.Pid}): ESRCH", StringComparison.Ordinal));
        Assert.True(killed.Contains("(1 large one(s) freed from here too)", StringComparison.Ordinal) || goneFirst,
            string.Join('\n', log.Where(l => l.Contains("killed", StringComparison.Ordinal) || l.Contains("process_mrelease", StringComparison.Ordinal))));
        w.WaitGone();
    }
}
