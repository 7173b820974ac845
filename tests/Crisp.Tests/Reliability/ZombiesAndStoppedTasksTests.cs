using Crisp.Dump;
using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Restore;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Reliability;

/// <summary>Issue #6/#9: zombies and SIGSTOP'ed tasks are dumped in those states (CRIU's TASK_DEAD with the
/// exit status, TASK_STOPPED with stop_signo) and come back in them: the parent's waitpid returns the same
/// PIDs and statuses, a stopped task is in group-stop again (every thread) and runs on after SIGCONT.</summary>
public class ZombiesAndStoppedTasksTests(ITestOutputHelper output)
{
    private const int SIGKILL = 9, SIGUSR1 = 10, SIGCONT = 18, SIGSTOP = 19;

    private sealed class ZState : IDisposable
    {
        public string Dir { get; } = Directory.CreateTempSubdirectory("crisp-zs-").FullName;
        public int Pid, A, B, C;
        public bool Alive;

        public void Start()
        {
            string exe = Support.Workloads.Build("zstate", "-pthread");
            Pid = Live.StartQuiet(exe, [exe, Dir]);
            Alive = true;
            string ready = Path.Combine(Dir, "ready");
            Live.WaitFor(() => File.Exists(ready) && File.ReadAllText(ready).EndsWith('\n') || Spawn.TryReap(Pid) is not null, "zstate's ready line", TimeSpan.FromSeconds(20));
            var f = File.ReadAllText(ready).Trim().Split(' ');
            Assert.Equal("ready", f[0]);
            (A, B, C) = (int.Parse(f[2]), int.Parse(f[3]), int.Parse(f[4]));
        }

        public void Dispose()
        {
            if (Alive)
            {
                RawSyscall.TryCall(Sysno.kill, Pid, SIGKILL);
                RawSyscall.TryCall(Sysno.kill, C, SIGKILL);
                try { Spawn.Reap(Pid); } catch (SyscallException) { }
            }
            try { Live.WaitPidsFree([Pid, A, B, C]); } catch (TimeoutException) { }
            Directory.Delete(Dir, recursive: true);
        }
    }

    /// <summary>"Z"/"T"/... of every thread of <paramref name="pid"/>, and its TracerPid lines.</summary>
    private static string States(int pid) => string.Join(",", Directory.GetDirectories($"/proc/{pid}/task").Order()
        .Select(d => File.ReadAllLines(Path.Combine(d, "status")))
        .Select(s => s.First(l => l.StartsWith("State:"))[6..].Trim()[0] + "/" + s.First(l => l.StartsWith("TracerPid:"))[10..].Trim()));

    private static string Comm(int pid) => File.ReadAllText($"/proc/{pid}/comm").Trim();

    private void AssertTreeStates(ZState w, string when)
    {
        // A detached thread re-enters its group stop (and the parent its sigsuspend) a moment after crisp
        // lets it go: wait for that, then hold the states.
        try { Live.WaitFor(() => States(w.C) == "T/0,T/0" && States(w.Pid) == "S/0", "the tree to settle", TimeSpan.FromSeconds(5)); }
        catch (TimeoutException) { }
        string a = States(w.A), b = States(w.B), c = States(w.C), p = States(w.Pid);
        output.WriteLine($"{when}: parent {p}, A {a}, B {b}, C {c}");
        Assert.Equal("Z/0", a);
        Assert.Equal("Z/0", b);
        Assert.Equal("T/0,T/0", c);   // both threads in group-stop, nobody tracing
        Assert.Contains(p, new[] { "S/0", "R/0" });
        Assert.Equal(("zs-exit", "zs-kill", "zs-stop"), (Comm(w.A), Comm(w.B), Comm(w.C)));
        foreach (int z in new[] { w.A, w.B, w.C })
            Assert.Equal(w.Pid, Crisp.Linux.Proc.ProcStat.Read(z).PPid);
    }

    [RootFact]
    public void ZombiesAndAStoppedChildComeBackInTheirStatesTwice()
    {
        using var w = new ZState();
        w.Start();
        AssertTreeStates(w, "before");

        // --leave-running: nothing changes (a zombie is not touched, the stopped child is stopped again).
        string first = Path.Combine(w.Dir, "leave");
        Directory.CreateDirectory(first);
        var before = TaskStateSnapshot.OfQuietTree(w.Pid);
        new Dumper(new DumpOptions { RootPid = w.Pid, ImagesDir = first, LeaveRunning = true }, Log.Null).Run();
        AssertTreeStates(w, "after dump -R");
        StateDiff.AssertRestored(before);
        AssertImages(w, first);

        RestoredTree? tree = null;
        for (int cycle = 0; cycle < 2; cycle++)
        {
            string images = Path.Combine(w.Dir, $"images{cycle}");
            Directory.CreateDirectory(images);
            before = TaskStateSnapshot.OfQuietTree(w.Pid);
            new Dumper(new DumpOptions { RootPid = w.Pid, ImagesDir = images }, Log.Null).Run();
            // The dumper's tracer (a thread of this process, the root's parent) may have reaped it already.
            try { Spawn.Reap(w.Pid); } catch (SyscallException) { }
            w.Alive = false;
            Live.WaitPidsFree(Live.CheckpointPids(images));
            AssertImages(w, images);
            tree = new Restorer(new RestoreOptions { ImagesDir = images, Detached = true }, Log.Null).Run();
            w.Alive = true;
            Assert.Equal(w.Pid, tree.RootPid);
            AssertTreeStates(w, $"after restore {cycle + 1}");
            StateDiff.AssertRestored(before);
        }

        DirWorkload.SignalAndExpectPass(tree!, w.Dir, () => w.Alive = false);
    }

    /// <summary>A restore that fails after the zombies were made (right after the puppets, and at the very end)
    /// leaves no PID taken (the zombies go with their killed parent) and the images as they were.</summary>
    [RootFact]
    public void AFailedRestoreOfATreeWithZombiesLeavesNothingBehind()
    {
        using var w = new ZState();
        w.Start();
        string images = Path.Combine(w.Dir, "images");
        Directory.CreateDirectory(images);
        new Dumper(new DumpOptions { RootPid = w.Pid, ImagesDir = images }, Log.Null).Run();
        try { Spawn.Reap(w.Pid); } catch (SyscallException) { }
        w.Alive = false;
        var pids = Live.CheckpointPids(images);
        Live.WaitPidsFree(pids);
        var hashes = Live.Hashes(images);
        foreach (string point in new[] { "restore:puppets", "restore:release" })
        {
            var e = Assert.ThrowsAny<CrispException>(() => new Restorer(new RestoreOptions { ImagesDir = images, Detached = true },
                Log.Null, new FaultInjection(point)).Run());
            Assert.Contains(point, e.Message);
            try { Spawn.Reap(w.Pid); } catch (SyscallException) { }
            Live.WaitPidsFree(pids);   // init reaps the orphaned zombies
            Assert.Equal(hashes, Live.Hashes(images));
            output.WriteLine($"{point}: nothing left, images unchanged");
        }
        var tree = new Restorer(new RestoreOptions { ImagesDir = images, Detached = true }, Log.Null).Run();
        w.Alive = true;
        AssertTreeStates(w, "after the restore that works");
        RawSyscall.Call("kill", Sysno.kill, w.Pid, SIGUSR1);
        int rc = Live.ExitCodeWithin(tree);
        w.Alive = false;
        Assert.True(rc == 0, DirWorkload.VerdictIn(w.Dir));
    }

    /// <summary>The same tree in a v1 freezer cgroup, dumped with --freeze-cgroup (CLI) while the cgroup is
    /// thawed or frozen: zombies are set aside, the stopped child (whose threads a frozen cgroup keeps from
    /// reaching a ptrace trap: seizing them while frozen would hang) is seized after the thaw; the cgroup ends
    /// as it was, and the restored tree passes its checks.</summary>
    [RootTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void ZombiesAndAStoppedChildThroughAFreezerCgroup(bool frozen)
    {
        using var w = new ZState();
        w.Start();
        string cgroup = $"/sys/fs/cgroup/freezer/crisp-zs-{Environment.ProcessId}-{w.Pid}";
        Directory.CreateDirectory(cgroup);
        try
        {
            foreach (int pid in new[] { w.Pid, w.C })
                File.WriteAllText(Path.Combine(cgroup, "cgroup.procs"), pid.ToString());
            var freezer = Crisp.Compel.Freezer.CgroupFreezer.Open(cgroup);
            string want = frozen ? "FROZEN" : "THAWED";
            string State() => File.ReadAllText(Path.Combine(cgroup, "freezer.state")).Trim();
            if (frozen)
                freezer.Freeze(TimeSpan.FromSeconds(10));
            var r = CrispCli.Run("dump", "-t", w.Pid.ToString(), "-D", Path.Combine(w.Dir, "leave"), "-R", "--freeze-cgroup", cgroup);
            Assert.True(r.ExitCode == 0, r.Stderr);
            Assert.Equal(want, State());
            freezer.Thaw();
            AssertTreeStates(w, $"after dump -R --freeze-cgroup ({want})");
            AssertImages(w, Path.Combine(w.Dir, "leave"));

            if (frozen)
                freezer.Freeze(TimeSpan.FromSeconds(10));
            string images = Path.Combine(w.Dir, "images");
            r = CrispCli.Run("dump", "-t", w.Pid.ToString(), "-D", images, "--freeze-cgroup", cgroup);
            Assert.True(r.ExitCode == 0, r.Stderr);
            try { Spawn.Reap(w.Pid); } catch (SyscallException) { }
            w.Alive = false;
            freezer.Thaw();
            Live.WaitPidsFree(Live.CheckpointPids(images));
            var tree = new Restorer(new RestoreOptions { ImagesDir = images, Detached = true }, Log.Null).Run();
            w.Alive = true;
            AssertTreeStates(w, "after restore");
            DirWorkload.SignalAndExpectPass(tree, w.Dir, () => w.Alive = false);
        }
        finally
        {
            try { File.WriteAllText(Path.Combine(cgroup, "freezer.state"), "THAWED"); } catch (IOException) { }
            RawSyscall.TryCall(Sysno.kill, w.C, SIGKILL);
            RawSyscall.TryCall(Sysno.kill, w.Pid, SIGKILL);
            try { Live.WaitFor(() => File.ReadAllText(Path.Combine(cgroup, "cgroup.procs")).Trim().Length == 0, "the cgroup to empty"); Directory.Delete(cgroup); }
            catch (Exception) { }
        }
    }

    /// <summary>pstree.img lists the zombies under their parent; their cores hold TASK_DEAD and the status
    /// (crit decodes them); the stopped child's core holds TASK_STOPPED and SIGSTOP.</summary>
    private static void AssertImages(ZState w, string images)
    {
        var dir = ImageDirectory.Open(images);
        var tree = dir.ReadAll<pstree_entry>(ImageFile.Pstree);
        Assert.Equal(new[] { w.Pid, w.C, w.A, w.B }.Order(), tree.Select(e => (int)e.Pid).Order());
        Assert.All(tree.Skip(1), e => Assert.Equal((uint)w.Pid, e.Ppid));
        var a = Images.Crit.Decode(dir.PathOf(ImageFile.Core(w.A))).GetProperty("entries")[0].GetProperty("tc");
        Assert.Equal((2, 42 << 8, "zs-exit"), (a.GetProperty("task_state").GetInt32(), a.GetProperty("exit_code").GetInt32(), a.GetProperty("comm").GetString()));
        var b = Images.Crit.Decode(dir.PathOf(ImageFile.Core(w.B))).GetProperty("entries")[0].GetProperty("tc");
        Assert.Equal((2, 15), (b.GetProperty("task_state").GetInt32(), b.GetProperty("exit_code").GetInt32()));
        using var reader = dir.OpenReader(ImageFile.Core(w.C));
        var c = reader.Read<core_entry>()!.Tc;
        Assert.Equal((3u, (uint)SIGSTOP), (c.TaskState, c.StopSigno));
        // The image tools show a checkpoint with zombies (no ids, mm or fds of theirs are stored): podman's
        // `checkpoint --export` of a shell between two children once failed `inspect` on its zombie child.
        foreach (var view in new[] { "ps", "fds", "mems", "rss" })
        {
            var x = CrispCli.Run("x", images, view);
            Assert.True(x.ExitCode == 0, $"x {view}: {x.Stderr}");
            Assert.Contains($"{w.A}", x.Stdout);
        }
        var inspect = CrispCli.Run("inspect", images, "--format", "json");
        Assert.True(inspect.ExitCode == 0, $"inspect: {inspect.Stderr}");
        Assert.Contains($"{w.B}", inspect.Stdout);
    }

    /// <summary>A multi-threaded root stopped by SIGSTOP: dump -R leaves every thread stopped and untraced;
    /// dumped and restored it is stopped again, runs on after SIGCONT and passes its own checks.</summary>
    [RootFact]
    public void AStoppedMultiThreadedProcessStaysStoppedAndContinuesOnSigcont()
    {
        string dir = Directory.CreateTempSubdirectory("crisp-stop-").FullName;
        string exe = Support.Workloads.Build("thr_state", "-pthread");
        int pid = Live.StartQuiet(exe, [exe, dir]);
        bool ours = true;
        RestoredTree? tree = null;
        try
        {
            Live.WaitFor(() => File.Exists(Path.Combine(dir, "ready")) || Spawn.TryReap(pid) is not null, "thr_state ready");
            RawSyscall.Call("kill", Sysno.kill, pid, SIGSTOP);
            Live.WaitFor(() => States(pid).Split(',').All(s => s == "T/0"), "every thread to stop");
            string stopped = States(pid);

            string leave = Path.Combine(dir, "leave");
            Directory.CreateDirectory(leave);
            new Dumper(new DumpOptions { RootPid = pid, ImagesDir = leave, LeaveRunning = true }, Log.Null).Run();
            // Each detached thread goes back into the group stop a moment after crisp lets it go.
            Live.WaitFor(() => States(pid) == stopped, $"every thread stopped again after dump -R (now {States(pid)})", TimeSpan.FromSeconds(5));
            Thread.Sleep(200);
            Assert.Equal(stopped, States(pid));

            string images = Path.Combine(dir, "images");
            Directory.CreateDirectory(images);
            new Dumper(new DumpOptions { RootPid = pid, ImagesDir = images }, Log.Null).Run();
            try { Spawn.Reap(pid); } catch (SyscallException) { }
            ours = false;
            Live.WaitPidsFree(Live.CheckpointPids(images));
            tree = new Restorer(new RestoreOptions { ImagesDir = images, Detached = true }, Log.Null).Run();
            Live.WaitFor(() => States(pid) == stopped, $"every thread stopped again (now {States(pid)})", TimeSpan.FromSeconds(5));
            Thread.Sleep(200);
            Assert.Equal(stopped, States(pid));
            output.WriteLine($"restored stopped: {States(pid)}");

            RawSyscall.Call("kill", Sysno.kill, pid, SIGCONT);
            Live.WaitFor(() => States(pid).Split(',').All(s => s[0] is 'S' or 'R'), "the threads to run after SIGCONT");
            DirWorkload.SignalAndExpectPass(tree, dir, () => tree = null);
        }
        finally
        {
            if (ours || tree is not null)
            {
                RawSyscall.TryCall(Sysno.kill, pid, SIGKILL);
                try { Spawn.Reap(pid); } catch (SyscallException) { }
            }
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>The shell case of the CLI: `sleep` (after exec) never reaps its `true` child. dump and restore
    /// through the CLI bring the zombie back as sleep's child, with its name and exit status 0.</summary>
    [RootFact]
    public void ALastingZombieOfAShellIsDumpedAndRestoredThroughTheCli()
    {
        using var dir = new Live.TempDir();
        int pid = Live.StartQuiet("/bin/sh", ["sh", "-c", "/bin/true & exec sleep 1000"]);
        List<int> pids = [pid];
        try
        {
            Live.WaitFor(() => File.ReadAllText($"/proc/{pid}/comm").Trim() == "sleep" &&
                File.ReadAllText($"/proc/{pid}/task/{pid}/children").Trim().Length > 0, "sleep with a zombie child");
            int zombie = int.Parse(File.ReadAllText($"/proc/{pid}/task/{pid}/children").Trim());
            Live.WaitFor(() => File.ReadAllText($"/proc/{zombie}/stat").Contains(") Z "), "the child to be a zombie");
            pids.Add(zombie);
            var r = CrispCli.Run("dump", "-t", pid.ToString(), "-D", dir.Images);
            Assert.True(r.ExitCode == 0, r.Stderr);
            Live.WaitPidsFree(pids, pid);
            r = CrispCli.Run("restore", "-D", dir.Images, "-d");
            Assert.True(r.ExitCode == 0, r.Stderr);
            // Just released, sleep may still be on its way back into nanosleep (R) on a loaded machine.
            Live.WaitFor(() => States(pid) != "R/0", "the restored sleep to sleep again");
            Assert.Equal("S/0", States(pid));
            Assert.Equal("Z/0", States(zombie));
            Assert.Equal("true", Comm(zombie));
            Assert.Equal($"{zombie}", File.ReadAllText($"/proc/{pid}/task/{pid}/children").Trim());
            var stat = Crisp.Linux.Proc.ProcStat.Read(zombie);
            Assert.Equal(0, stat.Long(52));
        }
        finally
        {
            Live.KillAll(pids);
        }
    }
}
