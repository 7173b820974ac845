using Crisp.Compel.Freezer;
using Crisp.Dump;
using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Linux.Proc;
using Crisp.Tests.Support;

namespace Crisp.Tests.Dump;

/// <summary>The case crisp exists for: a hardened (uid 1000, no caps, no_new_privs, two seccomp filters)
/// shell loop, seized by each path — ptrace only, a v1 freezer cgroup and a v2 cgroup, frozen or not
/// beforehand. Every task's and thread's seccomp state must be recorded whichever path ran, and the
/// cgroup must end in the freezer state it started in.</summary>
public class SeizePathTests : IDisposable
{
    private readonly string _work = Directory.CreateTempSubdirectory("crisp-seize-").FullName;
    private readonly List<string> _cgroups = [];
    private int _pid;

    public void Dispose()
    {
        if (_pid > 0)
        {
            foreach (var cg in _cgroups)
                TryWrite(Path.Combine(cg, File.Exists(Path.Combine(cg, "freezer.state")) ? "freezer.state" : "cgroup.freeze"),
                    File.Exists(Path.Combine(cg, "freezer.state")) ? "THAWED" : "0");
            RawSyscall.TryCall(Sysno.kill, _pid, 9);
            Spawn.Reap(_pid);
        }
        foreach (var cg in _cgroups)
        {
            for (int i = 0; i < 100 && Directory.Exists(cg); i++)
            {
                try { Directory.Delete(cg); }
                catch (IOException) { Thread.Sleep(50); }
            }
        }
        Directory.Delete(_work, recursive: true);
    }

    [RootTheory]
    [InlineData(null, false)]
    [InlineData("/sys/fs/cgroup/freezer", false)]
    [InlineData("/sys/fs/cgroup/freezer", true)]
    [InlineData("/sys/fs/cgroup/unified", false)]
    [InlineData("/sys/fs/cgroup/unified", true)]
    public void HardenedLoopIsSeizedWithItsSeccompStateInEveryPath(string? hierarchy, bool frozenBefore)
    {
        string counter = Path.Combine(_work, "counter.txt");
        File.SetUnixFileMode(_work, (UnixFileMode)0x1FF);
        StartHardened("--", "/bin/sh", "-c", $"i=0; while :; do echo $i >> {counter}; i=$((i+1)); sleep 0.05; done");
        string? cgroup = JoinCgroup(hierarchy);
        WaitFor(() => Lines(counter) >= 3 && ProcStatus.Read(_pid).SeccompFilters == 2);
        var (dir, freezer) = DumpLeavingRunning(cgroup, frozenBefore);

        // Every task and thread of the tree has its seccomp state in the images. A `sleep` that had just
        // exited is in the tree as a zombie (CRIU's TASK_DEAD: no thread state to record); the shell never is.
        var tree = dir.ReadAll<pstree_entry>(ImageFile.Pstree);
        var filters = dir.ReadAll<seccomp_entry>(new ImageFile(ImageKind.Seccomp, null)).Single().SeccompFilters;
        int alive = 0;
        foreach (var tid in tree.SelectMany(t => t.Threads))
        {
            var core = dir.ReadAll<core_entry>(ImageFile.Core(tid)).Single();
            if (core.Tc.TaskState == Crisp.Resources.Core.TaskStates.Dead && tid != _pid)
                continue;
            alive++;
            Assert.Equal(seccomp_mode.Filter, core.ThreadCore.SeccompMode);
            Assert.True(core.ThreadCore.HasSeccompFilter, $"thread {tid} has no filter entry");
            Assert.Equal(2, Crisp.Resources.Seccomp.SeccompChains.Chain(filters, core.ThreadCore.SeccompFilter).Count);
        }
        Assert.True(alive >= 1, "the shell's core is in the images");

        // The cgroup is back in the state it was in; thawed, the loop carries on.
        if (freezer is not null)
        {
            Assert.Equal(frozenBefore, freezer.IsFrozen());
            if (frozenBefore)
            {
                int frozenAt = Lines(counter);
                Thread.Sleep(300);
                Assert.Equal(frozenAt, Lines(counter));
                freezer.Thaw();
            }
        }
        Assert.Equal(0, ProcStatus.Read(_pid).TracerPid);
        int now = Lines(counter);
        WaitFor(() => Lines(counter) >= now + 3);
    }

    /// <summary>Threads of one task with different chains (a shared allowlist, one thread with a filter of its
    /// own): whichever seize path runs, every thread's core names its own chain, read back byte-identical
    /// with its flags, and the shared prefix is stored once.</summary>
    [RootTheory]
    [InlineData(null, false)]
    [InlineData("/sys/fs/cgroup/freezer", true)]
    [InlineData("/sys/fs/cgroup/unified", false)]
    [InlineData("/sys/fs/cgroup/unified", true)]
    public void ThreadsWithTheirOwnChainsAreRecordedInEveryPath(string? hierarchy, bool frozenBefore)
    {
        StartHardened("--no-second", "--", Support.Workloads.Build("hard_threads", "-pthread"));
        WaitFor(() => ProcTasks.Threads(_pid).Length == 3
            && ProcTasks.Threads(_pid).Sum(t => ProcStatus.ReadThread(_pid, t).SeccompFilters ?? 0) == 4);
        string? cgroup = JoinCgroup(hierarchy);
        var before = ProcTasks.Threads(_pid).ToDictionary(t => t, t => Crisp.Tests.Hardened.Bench.Filters(_pid, t));
        var (dir, freezer) = DumpLeavingRunning(cgroup, frozenBefore);

        var filters = dir.ReadAll<seccomp_entry>(new ImageFile(ImageKind.Seccomp, null)).Single().SeccompFilters;
        Assert.Equal(2, filters.Count);
        var tids = dir.ReadAll<pstree_entry>(ImageFile.Pstree).Single().Threads.Select(t => (int)t).Order();
        Assert.Equal(before.Keys.Order(), tids);
        foreach (var (tid, chain) in before)
        {
            var core = dir.ReadAll<core_entry>(ImageFile.Core(tid)).Single();
            Assert.Equal(seccomp_mode.Filter, core.ThreadCore.SeccompMode);
            var stored = Crisp.Resources.Seccomp.SeccompChains.Chain(filters, core.ThreadCore.SeccompFilter);
            Assert.Equal(chain.Select(f => f.Program), stored.Select(f => Convert.ToHexString(f.Filter.ToByteArray())));
            Assert.Equal(chain.Select(f => f.Flags), stored.Select(f => (ulong)f.Flags));
        }
        if (freezer is not null)
        {
            Assert.Equal(frozenBefore, freezer.IsFrozen());
            freezer.Thaw();
        }
        Assert.All(ProcTasks.Threads(_pid), t => Assert.Equal(0, ProcStatus.ReadThread(_pid, t).TracerPid));
    }

    /// <summary>The hardened launcher in its own session (stdio /dev/null) running what <paramref name="args"/> say.</summary>
    private void StartHardened(params string[] args) =>
        _pid = Spawn.Start(Support.Workloads.Build("hardened", "-lseccomp"), ["hardened", .. args],
            new SpawnOptions { NewSession = true, Opens = [(0, "/dev/null", 0, 0), (1, "/dev/null", 1, 0), (2, "/dev/null", 1, 0)] });

    /// <summary>A fresh cgroup under <paramref name="hierarchy"/> (none if null) holding the workload; removed on Dispose.</summary>
    private string? JoinCgroup(string? hierarchy)
    {
        if (hierarchy is null)
            return null;
        string cgroup = Path.Combine(hierarchy, $"crisp-test-{Environment.ProcessId}-{_pid}");
        Directory.CreateDirectory(cgroup);
        _cgroups.Add(cgroup);
        File.WriteAllText(Path.Combine(cgroup, "cgroup.procs"), _pid.ToString());
        return cgroup;
    }

    /// <summary>Freezes <paramref name="cgroup"/> first if <paramref name="frozenBefore"/>, then dumps the workload
    /// with --leave-running through it (if any); returns the images and the cgroup's freezer.</summary>
    private (ImageDirectory Images, CgroupFreezer? Freezer) DumpLeavingRunning(string? cgroup, bool frozenBefore)
    {
        var freezer = cgroup is null ? null : CgroupFreezer.Open(cgroup);
        if (frozenBefore)
            freezer!.Freeze(TimeSpan.FromSeconds(5));
        string images = Path.Combine(_work, "images");
        new Dumper(new DumpOptions { RootPid = _pid, ImagesDir = images, LeaveRunning = true, FreezeCgroup = cgroup }, Log.Null).Run();
        return (ImageDirectory.Open(images), freezer);
    }

    private static int Lines(string file) => File.Exists(file) ? File.ReadAllLines(file).Length : 0;

    private static void TryWrite(string file, string value)
    {
        try { File.WriteAllText(file, value); } catch (IOException) { }
    }

    private static void WaitFor(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException("condition not met in 10 s");
            Thread.Sleep(20);
        }
    }
}
