using System.Runtime.InteropServices;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;

namespace Crisp.Tests.Checker;

/// <summary>The state-diff checker on real snapshots of a live child (statediff_probe) that the test changes
/// between them: a nice value, a thread's signal mask and a new mapping are reported, counters are not.</summary>
public partial class StateDiffTests
{
    private const int PRIO_PROCESS = 0;

    /// <summary>The default list without its not-restored-yet entries (which hide nice, among others).</summary>
    private static readonly StateAllowList Compared = new([.. StateAllowList.Volatile, .. StateAllowList.Unobservable]);

    private sealed class Probe : DirWorkload
    {
        public int Tid { get; }

        public Probe() : base("crisp-statediff-")
        {
            Start(Support.Workloads.Build("statediff_probe"), []);
            Tid = int.Parse(WaitReady("statediff_probe", w => w.Length == 3)[2]);
        }

        /// <summary>SIGUSR1: the probe maps 3 pages at 0x200000000 and its second thread blocks SIGUSR2.</summary>
        public void Step()
        {
            Live.WaitFor(() => File.Exists(ReadyFile), "ready");
            Crisp.Linux.Signals.Kill(Pid, Live.SIGUSR1);
            Live.WaitFor(() => File.Exists(Path.Combine(Dir, "stepped")), "statediff_probe to step");
        }
    }

    [Fact]
    public void TwoSnapshotsOfAnUnchangedProcessAreEqual()
    {
        using var probe = new Probe();
        var first = TaskStateSnapshot.OfTree(probe.Pid);
        var second = TaskStateSnapshot.OfTree(probe.Pid);
        Assert.Empty(StateDiff.Between(first, second, Compared));
        Assert.Contains(new StateKey($"{probe.Pid}/{probe.Tid}", "task status", "SigBlk"), (IDictionary<StateKey, string>)first.Facts);
    }

    [Fact]
    public void ReportsChangedNiceSigBlkAndNewMappingButNotCounters()
    {
        using var probe = new Probe();
        var before = TaskStateSnapshot.OfTree(probe.Pid);
        Assert.Equal(0, setpriority(PRIO_PROCESS, probe.Pid, 7));
        probe.Step();
        var after = TaskStateSnapshot.OfTree(probe.Pid);

        var diffs = StateDiff.Between(before, after, Compared);
        string report = string.Join('\n', diffs);
        var nice = Assert.Single(diffs, d => d.Key == new StateKey($"{probe.Pid}", "stat", "nice"));
        Assert.Equal($"{probe.Pid}  stat  nice: 0 → 7", nice.ToString());
        // SIGUSR1 was blocked in the thread from the start (the leader takes it); SIGUSR2 (bit 11) is new.
        var sigBlk = Assert.Single(diffs, d => d.Key == new StateKey($"{probe.Pid}/{probe.Tid}", "task status", "SigBlk"));
        Assert.Equal(("0000000000000200", "0000000000000a00"), (sigBlk.Before, sigBlk.After));
        var mapping = Assert.Single(diffs, d => d.Key == new StateKey($"{probe.Pid}", "maps", "200000000-200003000"));
        Assert.Null(mapping.Before);
        Assert.StartsWith("---p 0 00:00 0", mapping.After);

        // Counters did change (the leader slept and woke), and the default allow-list hides them.
        var everything = StateDiff.Between(before, after, new StateAllowList([]));
        Assert.Contains(everything, d => d.Key.Field == "voluntary_ctxt_switches");
        Assert.DoesNotContain(diffs, d => Compared.Allowing(d.Key) is not null);
        Assert.True(everything.Count > diffs.Count, report);

        // A rule hides its own field and nothing else.
        var withoutNice = StateDiff.Between(before, after, Compared.With(new StateAllowList.Rule("stat", "nice", "test")));
        Assert.DoesNotContain(withoutNice, d => d.Key.File == "stat" && d.Key.Field == "nice");
        Assert.Contains(withoutNice, d => d.Key.Field == "SigBlk");
        Assert.Equal(diffs.Count - 1, withoutNice.Count);
    }

    [Fact]
    public void AFailureSaysOneLinePerDifference()
    {
        using var probe = new Probe();
        var before = TaskStateSnapshot.OfTree(probe.Pid);
        Assert.Equal(0, setpriority(PRIO_PROCESS, probe.Pid, 3));
        var e = Assert.ThrowsAny<Exception>(() => StateDiff.AssertSame(before, TaskStateSnapshot.OfTree(probe.Pid), Compared));
        Assert.Contains($"\n{probe.Pid}  stat  nice: 0 → 3", e.Message);
        Assert.Equal(4, e.Message.Split('\n').Length);   // the heading, stat nice and priority, sched prio
        StateDiff.AssertRestored(before, Compared.With(new StateAllowList.Rule("stat", "nice|priority", "test"), new StateAllowList.Rule("sched", "prio", "test")));
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int setpriority(int which, int who, int prio);
}
