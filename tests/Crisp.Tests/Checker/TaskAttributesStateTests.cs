using Crisp.Dump;
using Crisp.Restore;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;

namespace Crisp.Tests.Checker;

/// <summary>taskattrs (the per-task state of issue 20 that /proc shows: scheduling, timer slack, THP, I/O
/// priority, personality, a POSIX timer, madvise'd mappings, a thread's own policy and affinity) across one
/// cycle. It may differ only where <see cref="StateAllowList.NotRestoredYet"/> says, and every entry there must
/// still be needed: once crisp restores a piece of state, this test names the entry to remove.</summary>
public class TaskAttributesStateTests
{
    [RootFact]
    public void DiffersOnlyWhereTheNotRestoredYetListSaysAndEveryEntryIsStillNeeded()
    {
        using var w = new DirWorkload("crisp-taskattrs-") { SkipStateCheck = "compared here, with and without the not-restored-yet entries" };
        w.Start(Support.Workloads.Build("taskattrs", "-pthread"), [], newSession: true);
        w.WaitReady("taskattrs", f => f.Length == 3);
        var before = TaskStateSnapshot.OfQuietTree(w.Pid);
        string images = w.NewImagesDir("images");
        w.Dump(new DumpOptions { RootPid = w.Pid, ImagesDir = images });
        Live.WaitPidsFree(Live.CheckpointPids(images));
        w.Restore(new RestoreOptions { ImagesDir = images, Detached = true });

        var after = StateDiff.Settled(before);
        StateDiff.AssertSame(before, after);
        var all = StateDiff.Between(before, after, new StateAllowList([.. StateAllowList.Volatile, .. StateAllowList.Unobservable]));
        // taskattrs stays in the test's cgroup: that entry is held to account by the hardened cgroup tests.
        var stale = StateAllowList.NotRestoredYet.Where(r => r.File != "cgroup" && !all.Any(d => r.Matches(d.Key))).ToList();
        Assert.True(stale.Count == 0, "restored now, remove from StateAllowList.NotRestoredYet:\n" + string.Join('\n', stale)
            + "\nremaining differences:\n" + string.Join('\n', all));
    }
}
