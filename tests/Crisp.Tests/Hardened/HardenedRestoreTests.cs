using Crisp.Compel.Freezer;
using Crisp.Dump;
using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Linux.Proc;
using Crisp.Resources.Seccomp;
using Crisp.Restore;
using Crisp.Tests.Support;

namespace Crisp.Tests.Hardened;

/// <summary>The issue's end-to-end proof: a hardened process (uid 1000, no capabilities, no_new_privs,
/// an allowlist filter and a LOG-flagged marker filter) checkpointed and restored through every seize
/// path, and left running on a frozen or thawed cgroup. Before and after: the same credentials, the
/// same filters byte for byte with the same flags, the filters still enforced (the probe checks its
/// marker errno every iteration and its denied syscalls on SIGUSR1), and a counter with no gap.</summary>
[Collection("Hardened")]
public class HardenedRestoreTests : IDisposable
{
    private const string V1 = "/sys/fs/cgroup/freezer", V2 = "/sys/fs/cgroup/unified";
    private readonly Bench _bench = new();

    public void Dispose() => _bench.Dispose();

    /// <summary>The probes write to their counter files all the time: an fd's offset moves between the snapshot
    /// and the dump, so offsets are not compared here (the counters' continuity is checked instead).</summary>
    private static readonly StateAllowList Counting = StateAllowList.Default.With(
        new StateAllowList.Rule(@"fd/\d+", "pos", "the probe appends to its counter file while it runs"));

    private int StartProbe(string counter)
    {
        string probe = Support.Workloads.Build("seccomp_probe");
        int pid = _bench.Start(Support.Workloads.Build("hardened", "-lseccomp"), ["hardened", "--strict", "--", probe, "--loop", counter]);
        Bench.WaitFor(() => Bench.Numbers(counter).Count >= 3 && ProcStatus.Read(pid).SeccompFilters == 2, "the probe to count");
        return pid;
    }

    [RootTheory]
    [InlineData(null, false)]
    [InlineData(V1, false)]
    [InlineData(V1, true)]
    [InlineData(V2, false)]
    [InlineData(V2, true)]
    public void ProbeIsKilledAndRestoredWithCredentialsAndEnforcedFilters(string? hierarchy, bool frozenBefore)
    {
        string counter = Path.Combine(_bench.Work, "counter.txt");
        int pid = StartProbe(counter);
        string? cgroup = hierarchy is null ? null : _bench.Cgroup(hierarchy, pid);
        var before = Bench.Observe(pid);
        Assert.Equal(2, before.Filters[pid].Count);
        Assert.Equal((ulong)Crisp.Linux.Seccomp.SECCOMP_FILTER_FLAG_LOG, before.Filters[pid][1].Flags);
        if (frozenBefore)
            CgroupFreezer.Open(cgroup!).Freeze(TimeSpan.FromSeconds(5));

        var state = TaskStateSnapshot.OfQuietTree(pid);
        new Dumper(new DumpOptions { RootPid = pid, ImagesDir = _bench.Images, FreezeCgroup = cgroup }, Log.Null).Run();
        _bench.WaitDumpedPidsFree(pid);
        if (cgroup is not null)
            Assert.Equal(frozenBefore, CgroupFreezer.Open(cgroup).IsFrozen());
        long stoppedAt = Bench.Numbers(counter).Last();

        var tree = new Restorer(new RestoreOptions { ImagesDir = _bench.Images, Detached = true }, Log.Null).Run();
        Assert.Equal(pid, tree.RootPid);
        _bench.Track(pid);
        StateDiff.AssertRestored(state, Counting);
        Bench.WaitFor(() => Bench.Numbers(counter).Last() >= stoppedAt + 3, "the restored probe to count on");
        Bench.Observe(pid).AssertSameAs(before);

        var verdict = Bench.Verdict(pid);
        Assert.True(verdict.Exited && verdict.ExitCode == 0, $"probe after restore: {verdict}; stderr: {_bench.Stderr}");
        Assert.Contains("PASS", _bench.Stderr);
        Bench.AssertContinuous(counter);
    }

    /// <summary>--leave-running: a cgroup that was frozen is frozen again after the dump (the probe does not
    /// move) and carries on once thawed; one that was thawed stays thawed. Nothing about the task changed.</summary>
    [RootTheory]
    [InlineData(V1, true)]
    [InlineData(V1, false)]
    [InlineData(V2, true)]
    [InlineData(V2, false)]
    public void LeaveRunningPutsTheCgroupBackAndTheProbeCarriesOn(string hierarchy, bool frozenBefore)
    {
        string counter = Path.Combine(_bench.Work, "counter.txt");
        int pid = StartProbe(counter);
        string cgroup = _bench.Cgroup(hierarchy, pid);
        var before = Bench.Observe(pid);
        var freezer = CgroupFreezer.Open(cgroup);
        if (frozenBefore)
            freezer.Freeze(TimeSpan.FromSeconds(5));

        new Dumper(new DumpOptions { RootPid = pid, ImagesDir = _bench.Images, FreezeCgroup = cgroup, LeaveRunning = true }, Log.Null).Run();

        Assert.Equal(frozenBefore, freezer.IsFrozen());
        Assert.Equal(0, ProcStatus.Read(pid).TracerPid);
        if (frozenBefore)
        {
            long frozenAt = Bench.Numbers(counter).Last();
            Thread.Sleep(400);
            Assert.Equal(frozenAt, Bench.Numbers(counter).Last());
            freezer.Thaw();
        }
        long now = Bench.Numbers(counter).Last();
        Bench.WaitFor(() => Bench.Numbers(counter).Last() >= now + 3, "the probe to carry on");
        Bench.Observe(pid).AssertSameAs(before);
        var verdict = Bench.Verdict(pid);
        Assert.True(verdict.Exited && verdict.ExitCode == 0, $"probe: {verdict}; stderr: {_bench.Stderr}");
        Bench.AssertContinuous(counter);
    }

    /// <summary>A parent with one filter forks a child that stacks a second one: seccomp.img stores the shared
    /// allowlist once, each task's core points at its own chain, and both come back byte-identical and
    /// enforced (the parent's getpriority works, the child's fails with the marker errno).</summary>
    [RootTheory]
    [InlineData(null)]
    [InlineData(V2)]
    public void InheritedPrefixIsStoredOnceAndBothChainsComeBack(string? hierarchy)
    {
        int pid = _bench.Start(Support.Workloads.Build("hardened", "-lseccomp"),
            ["hardened", "--no-second", "--", Support.Workloads.Build("hard_tree"), _bench.Work]);
        string parentFile = Path.Combine(_bench.Work, "parent.txt"), childFile = Path.Combine(_bench.Work, "child.txt");
        Bench.WaitFor(() => Bench.Numbers(parentFile).Count >= 3 && Bench.Numbers(childFile).Count >= 3, "both tasks to count");
        string? cgroup = hierarchy is null ? null : _bench.Cgroup(hierarchy, pid);
        int child = ProcTasks.AllChildren(pid).Single();
        var parentBefore = Bench.Observe(pid);
        var childBefore = Bench.Observe(child);
        Assert.Single(parentBefore.Filters[pid]);
        Assert.Equal(2, childBefore.Filters[child].Count);
        Assert.Equal(parentBefore.Filters[pid][0], childBefore.Filters[child][0]);

        var state = TaskStateSnapshot.OfQuietTree(pid);
        new Dumper(new DumpOptions { RootPid = pid, ImagesDir = _bench.Images, FreezeCgroup = cgroup }, Log.Null).Run();
        var dir = ImageDirectory.Open(_bench.Images);
        var filters = dir.ReadAll<seccomp_entry>(new ImageFile(ImageKind.Seccomp, null)).Single().SeccompFilters;
        Assert.Equal(2, filters.Count);   // the allowlist once, the child's marker once
        var parentChain = SeccompChains.Chain(filters, dir.ReadAll<core_entry>(ImageFile.Core(pid)).Single().ThreadCore.SeccompFilter);
        var childChain = SeccompChains.Chain(filters, dir.ReadAll<core_entry>(ImageFile.Core(child)).Single().ThreadCore.SeccompFilter);
        Assert.Single(parentChain);
        Assert.Equal(2, childChain.Count);
        Assert.Same(parentChain[0], childChain[0]);
        Assert.Equal((uint)Crisp.Linux.Seccomp.SECCOMP_FILTER_FLAG_LOG, childChain[1].Flags);

        _bench.WaitDumpedPidsFree(pid);
        var tree = new Restorer(new RestoreOptions { ImagesDir = _bench.Images, Detached = true }, Log.Null).Run();
        Assert.Equal(pid, tree.RootPid);
        _bench.Track(pid);
        StateDiff.AssertRestored(state, Counting);
        long p = Bench.Numbers(parentFile).Last(), c = Bench.Numbers(childFile).Last();
        Bench.WaitFor(() => Bench.Numbers(parentFile).Last() >= p + 3 && Bench.Numbers(childFile).Last() >= c + 3, "both restored tasks to count on");
        Assert.Equal([child], ProcTasks.AllChildren(pid));
        Bench.Observe(pid).AssertSameAs(parentBefore);
        Bench.Observe(child).AssertSameAs(childBefore);

        var verdict = Bench.Verdict(pid);
        Assert.True(verdict.Exited && verdict.ExitCode == 0, $"hard_tree after restore: {verdict}; stderr: {_bench.Stderr}");
        Bench.AssertContinuous(parentFile);
        Bench.AssertContinuous(childFile);
    }

    /// <summary>A child in SECCOMP_MODE_STRICT, blocked in read() on a pipe inside the tree. After restore
    /// /proc says Seccomp 1; fed a byte it answers (it is alive and its pipe works), then its getpid() gets
    /// it SIGKILLed — strict mode is enforced, not just displayed.</summary>
    [RootFact]
    public void StrictModeChildIsRestoredAndEnforced()
    {
        string counter = Path.Combine(_bench.Work, "counter.txt");
        int pid = _bench.Start(Support.Workloads.Build("hard_strict"), ["hard_strict", counter]);
        Bench.WaitFor(() => Bench.Numbers(counter).Count >= 3 && ProcTasks.AllChildren(pid).Length == 1
            && ProcStatus.Read(ProcTasks.AllChildren(pid)[0]).Seccomp == 1, "the strict child");
        int child = ProcTasks.AllChildren(pid)[0];
        var before = Bench.Status(child, child);

        var state = TaskStateSnapshot.OfQuietTree(pid);
        new Dumper(new DumpOptions { RootPid = pid, ImagesDir = _bench.Images }, Log.Null).Run();
        var core = ImageDirectory.Open(_bench.Images).ReadAll<core_entry>(ImageFile.Core(child)).Single();
        Assert.Equal(seccomp_mode.Strict, core.ThreadCore.SeccompMode);
        _bench.WaitDumpedPidsFree(pid);

        var tree = new Restorer(new RestoreOptions { ImagesDir = _bench.Images, Detached = true }, Log.Null).Run();
        _bench.Track(tree.RootPid);
        StateDiff.AssertRestored(state, Counting);
        Assert.Equal([child], ProcTasks.AllChildren(pid));
        var after = Bench.Status(child, child);
        foreach (var key in Bench.StatusKeys)
            Assert.Equal(before[key], after[key]);
        Assert.Equal("1", after["Seccomp"]);
        Bench.WaitFor(() => ProcStat.Read(child).State == 'S', "the strict child to block in read() again");
        long last = Bench.Numbers(counter).Last();
        Bench.WaitFor(() => Bench.Numbers(counter).Last() >= last + 3, "the parent to count on");

        var verdict = Bench.Verdict(pid);
        Assert.True(verdict.Exited && verdict.ExitCode == 0, $"hard_strict after restore: {verdict}; stderr: {_bench.Stderr}");
        Bench.AssertContinuous(counter);
    }

    /// <summary>Distinct real/effective/saved uids and gids, supplementary groups, permitted + inheritable +
    /// ambient capabilities, a trimmed bounding set and securebits: /proc status identical after restore,
    /// and the task's own check (getresuid, capget, PR_GET_SECUREBITS, PR_CAP_AMBIENT_IS_SET…) passes.</summary>
    [RootFact]
    public void RichCredentialsRoundTrip() => KillRestoreCounting("hard_creds", pid => true,
        (pid, before) =>
        {
            Assert.Equal("1004 1005 1006 1005", before.Status[pid]["Uid"]);
            Assert.Equal("0000000000000400", before.Status[pid]["CapAmb"]);
        },
        verdict => Assert.True(verdict.Exited && verdict.ExitCode == 0, $"hard_creds after restore: {verdict}; stderr: {_bench.Stderr}"));

    /// <summary>A filter that kills the task on the syscalls the restore runs in it after installing the filters
    /// (credentials, release): the puppet must be traced with PTRACE_O_SUSPEND_SECCOMP from the start, so the
    /// restore survives; afterwards the filter is enforced again (getresuid kills the task with SIGSYS).</summary>
    [RootFact]
    public void FilterThatKillsTheRestoresOwnSyscallsIsSuspendedWhileRestoring() => KillRestoreCounting("hard_deny",
        pid => ProcStatus.Read(pid).SeccompFilters == 1, (_, _) => { },
        verdict => Assert.True(verdict.Signaled && verdict.TermSignal == 31, $"hard_deny after restore: {verdict} (expected SIGSYS)"));

    /// <summary>Starts <paramref name="name"/> counting into counter.txt until it has counted three and
    /// <paramref name="ready"/> holds; <paramref name="checkBefore"/> looks at its snapshot. Then dumped (killed) and
    /// restored, it must count on with the same snapshot, end as <paramref name="checkVerdict"/> wants and leave
    /// no gap in its count.</summary>
    private void KillRestoreCounting(string name, Func<int, bool> ready, Action<int, Snapshot> checkBefore, Action<WaitStatus> checkVerdict)
    {
        string counter = Path.Combine(_bench.Work, "counter.txt");
        int pid = _bench.Start(Support.Workloads.Build(name), [name, counter]);
        Bench.WaitFor(() => Bench.Numbers(counter).Count >= 3 && ready(pid), $"{name} to count");
        var before = Bench.Observe(pid);
        checkBefore(pid, before);

        var state = TaskStateSnapshot.OfQuietTree(pid);
        new Dumper(new DumpOptions { RootPid = pid, ImagesDir = _bench.Images }, Log.Null).Run();
        Assert.Equal(pid, _bench.RestoreDumped(pid));
        StateDiff.AssertRestored(state, Counting);
        Bench.WaitCountsOn(counter, $"{name} to count on");
        Bench.Observe(pid).AssertSameAs(before);
        checkVerdict(Bench.Verdict(pid));
        Bench.AssertContinuous(counter);
    }

    /// <summary>A multi-threaded hardened task whose threads have different chains (a shared prefix, one
    /// thread with a LOG filter of its own): the dump kills and reaps every thread (it used to wait for
    /// the leader first and hang), and the restore brings every thread back with its own chain, byte for
    /// byte, and its credentials.</summary>
    [RootFact]
    public void MultiThreadedTaskComesBackWithEachThreadsOwnChain()
    {
        int pid = _bench.Start(Support.Workloads.Build("hardened", "-lseccomp"),
            ["hardened", "--no-second", "--", Support.Workloads.Build("hard_threads", "-pthread")]);
        Bench.WaitFor(() => ProcTasks.Threads(pid).Length == 3
            && ProcTasks.Threads(pid).Sum(t => ProcStatus.ReadThread(pid, t).SeccompFilters ?? 0) == 4, "three threads with their filters");
        var before = Bench.Observe(pid);
        var state = TaskStateSnapshot.OfQuietTree(pid);
        var dump = Task.Run(() => new Dumper(new DumpOptions { RootPid = pid, ImagesDir = _bench.Images }, Log.Null).Run());
        Assert.True(dump.Wait(TimeSpan.FromSeconds(20)), "the dump did not finish (waiting for the killed threads?)");
        _bench.WaitDumpedPidsFree(pid);
        var tree = new Restorer(new RestoreOptions { ImagesDir = _bench.Images, Detached = true }, Log.Null).Run();
        _bench.Track(pid);
        StateDiff.AssertRestored(state, Counting);
        Assert.Equal(pid, tree.RootPid);
        Assert.Equal(3, ProcTasks.Threads(pid).Length);
        Bench.Observe(pid).AssertSameAs(before);
    }
}
