using Crisp.Compel.Freezer;
using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Linux.Proc;
using Crisp.Tests.Hardened;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;

namespace Crisp.Tests.Plugins;

/// <summary>The CUDA plugin and the plugin contract end to end, through the CLI, with the stand-in
/// cuda-checkpoint (Plugins/cuda-checkpoint.sh, put on PATH for crisp only). The stand-in refuses to lock a
/// frozen or stopped process and needs the restore thread running for checkpoint/restore/unlock, as the real
/// tool does; it logs every call, so the order lock, checkpoint, restore, unlock is asserted. The workload is a
/// hardened (uid 1000, no capabilities, no_new_privs, allowlist seccomp) three-thread process with a
/// "cuda-restore" thread.</summary>
[Collection("Hardened")]
public class CudaPluginTests : IDisposable
{
    private const string V1 = "/sys/fs/cgroup/freezer", V2 = "/sys/fs/cgroup/unified";
    private readonly Bench _bench = new();
    private readonly string _counter;
    private readonly Dictionary<string, string> _env;

    public CudaPluginTests()
    {
        _counter = Path.Combine(_bench.Work, "counter.txt");
        string bin = Path.Combine(_bench.Work, "bin");
        Directory.CreateDirectory(bin);
        string tool = Path.Combine(bin, "cuda-checkpoint");
        File.Copy(Path.Combine(AppContext.BaseDirectory, "Plugins", "cuda-checkpoint.sh"), tool);
        File.SetUnixFileMode(tool, (UnixFileMode)0x1ED);
        _env = new()
        {
            ["PATH"] = $"{bin}:{Environment.GetEnvironmentVariable("PATH")}",
            ["CRISP_PLUGIN_CUDA_FORCE"] = "1",
            ["CUDA_STANDIN_DIR"] = _bench.Work,
        };
    }

    public void Dispose() => _bench.Dispose();

    private string LibDir()
    {
        string dir = Path.Combine(_bench.Work, "plugins");
        Directory.CreateDirectory(dir);
        File.Copy(TestPlugin.Build(), Path.Combine(dir, "crisp_test_plugin.so"));
        _env["CRISP_TEST_PLUGIN_LOG"] = Path.Combine(_bench.Work, "hooks.log");
        return dir;
    }

    private int StartCudaProcess()
    {
        int pid = _bench.Start(Support.Workloads.Build("hardened", "-lseccomp"),
            ["hardened", "--no-second", "--", Support.Workloads.Build("hard_cuda", "-pthread"), _counter]);
        Bench.WaitFor(() => Bench.Numbers(_counter).Count >= 3 && ProcTasks.Threads(pid).Length == 3
            && ProcTasks.Threads(pid).All(t => ProcStatus.ReadThread(pid, t).Seccomp == 2), "the CUDA stand-in process to count");
        return pid;
    }

    /// <summary>The stand-in's successful calls, in order (refusals are listed as such).</summary>
    private List<string> Calls()
    {
        string log = Path.Combine(_bench.Work, "calls.log");
        return File.Exists(log) ? File.ReadAllLines(log).ToList() : [];
    }

    private List<string> Hooks() => File.ReadAllLines(_env["CRISP_TEST_PLUGIN_LOG"]).ToList();

    private string CudaState(int pid)
    {
        string file = Path.Combine(_bench.Work, $"{pid}.state");
        return File.Exists(file) ? File.ReadAllText(file).Trim() : "running";
    }

    private CrispCli.Result Crisp(params string[] args) => Live.Crisp(_env, args);

    private static string Why(CrispCli.Result r, string images) =>
        $"exit {r.ExitCode}: {r.Stderr}\n{(File.Exists(Path.Combine(images, "crisp.log")) ? File.ReadAllText(Path.Combine(images, "crisp.log")) : "")}";

    private static void AssertUntraced(int pid)
    {
        foreach (int tid in ProcTasks.Threads(pid))
            Assert.Equal(0, ProcStatus.ReadThread(pid, tid).TracerPid);
    }

    /// <summary>Every thread's core records the seccomp filter mode (the record the CRIU bug "seccomp: Can't
    /// find entry on tid_real" lost on the interrupt-only path), and the inventory lists the plugins.</summary>
    private void AssertImages(int pid, params string[] plugins)
    {
        var dir = ImageDirectory.Open(_bench.Images);
        var tree = dir.ReadAll<pstree_entry>(ImageFile.Pstree).Single();
        Assert.Equal(3, tree.Threads.Count);
        foreach (var tid in tree.Threads)
            Assert.Equal(seccomp_mode.Filter, dir.ReadAll<core_entry>(ImageFile.Core((int)tid)).Single().ThreadCore.SeccompMode);
        var inventory = dir.ReadAll<inventory_entry>(ImageFile.Inventory).Single();
        Assert.Equal(plugins, inventory.PluginsEntry.Plugins);
        Assert.Equal(pid, (int)tree.Pid);
    }

    [RootTheory]
    [InlineData(V1)]
    [InlineData(V2)]
    public void LeaveRunningFromAFrozenCgroupLocksCheckpointsRestoresUnlocksAndFreezesAgain(string hierarchy)
    {
        int pid = StartCudaProcess();
        string cgroup = _bench.Cgroup(hierarchy, pid);
        var before = Bench.Observe(pid);
        var freezer = CgroupFreezer.Open(cgroup);
        freezer.Freeze(TimeSpan.FromSeconds(5));

        var r = Crisp("dump", "-t", pid.ToString(), "-D", _bench.Images, "--freeze-cgroup", cgroup, "-R", "-v4", "-o", "crisp.log");
        Assert.True(r.ExitCode == 0, Why(r, _bench.Images));
        Assert.Equal([$"lock {pid} timeout=10000", $"checkpoint {pid}", $"restore {pid}", $"unlock {pid}"], Calls());
        Assert.True(freezer.IsFrozen(), "the cgroup is not frozen again after the dump");
        AssertUntraced(pid);
        AssertImages(pid, "cuda_plugin");
        long frozenAt = Bench.Numbers(_counter).Last();
        Thread.Sleep(400);
        Assert.Equal(frozenAt, Bench.Numbers(_counter).Last());

        freezer.Thaw();
        Bench.WaitCountsOn(_counter, "the process to run on once thawed");
        Assert.Equal("running", CudaState(pid));
        Bench.Observe(pid).AssertSameAs(before);
        var verdict = Bench.Verdict(pid);
        Assert.True(verdict.Exited && verdict.ExitCode == 0, $"hard_cuda: {verdict}; stderr: {_bench.Stderr}");
        Bench.AssertContinuous(_counter);
    }

    [RootFact]
    public void KilledFromAFrozenV1CgroupAndRestoredWithItsFiltersAndDevices()
    {
        int pid = StartCudaProcess();
        string cgroup = _bench.Cgroup(V1, pid);
        var before = Bench.Observe(pid);
        var freezer = CgroupFreezer.Open(cgroup);
        freezer.Freeze(TimeSpan.FromSeconds(5));

        var dump = Crisp("dump", "-t", pid.ToString(), "-D", _bench.Images, "--freeze-cgroup", cgroup, "-v4", "-o", "crisp.log");
        Assert.True(dump.ExitCode == 0, Why(dump, _bench.Images));
        Assert.Equal([$"lock {pid} timeout=10000", $"checkpoint {pid}"], Calls());
        Assert.True(freezer.IsFrozen(), "the cgroup is not frozen again after the dump");
        AssertImages(pid, "cuda_plugin");
        _bench.WaitDumpedPidsFree(pid);
        long stoppedAt = Bench.Numbers(_counter).Last();

        // Not detached: crisp waits for the restored root and exits with its status.
        var restore = Task.Run(() => Live.RunProcess(CrispCli.Exe, TimeSpan.FromSeconds(120), _env,
            "restore", "-D", _bench.Images, "-v4", "-o", "restore.log"));
        _bench.Track(pid);
        Bench.WaitFor(() => restore.IsCompleted || Directory.Exists($"/proc/{pid}") && ProcStatus.Read(pid).TracerPid == 0, "the restored process to run", 60);
        Assert.False(restore.IsCompleted, $"crisp restore ended early: {(restore.IsCompleted ? Why(restore.Result, _bench.Images) : "")}");
        Assert.Equal([$"lock {pid} timeout=10000", $"checkpoint {pid}", $"restore {pid}", $"unlock {pid}"], Calls());
        Assert.Equal("running", CudaState(pid));
        Bench.WaitFor(() => Bench.Numbers(_counter).Last() >= stoppedAt + 3, "the restored process to count on");
        Bench.Observe(pid).AssertSameAs(before);

        Signals.Kill(pid, Signals.SIGUSR1);
        Assert.True(restore.Wait(TimeSpan.FromSeconds(60)), "crisp restore did not return after the process exited");
        Assert.True(restore.Result.ExitCode == 0, $"hard_cuda after restore: {Why(restore.Result, _bench.Images)}; stderr: {_bench.Stderr}");
        Assert.Contains("PASS", _bench.Stderr);
        Bench.AssertContinuous(_counter);
    }

    /// <summary>A process that is not a CUDA process dumps normally with the CUDA plugin active; a CRIU plugin
    /// library (C ABI) from --libdir is loaded and its hooks are called at their points; through crisp's exports it
    /// records that the checkpoint depends on it and leaves its state in the images directory, which it reads back
    /// at restore; a restore without it is refused with one line and creates nothing.</summary>
    [RootFact]
    public void LibdirPluginHooksAreCalledAndARestoreWithoutItIsRefused()
    {
        string libdir = LibDir();
        int pid = _bench.Start(Support.Workloads.Build("counter"), ["counter", _counter, "50"]);
        Bench.WaitFor(() => Bench.Numbers(_counter).Count >= 3, "counter to count");

        var dump = Crisp("dump", "-t", pid.ToString(), "-D", _bench.Images, "--libdir", libdir, "-v4", "-o", "crisp.log");
        Assert.True(dump.ExitCode == 0, Why(dump, _bench.Images));
        Assert.Contains("plugin cuda_plugin: active", File.ReadAllText(Path.Combine(_bench.Images, "crisp.log")));
        Assert.DoesNotContain(Calls(), c => !c.Contains("refused"));   // nothing locked
        Assert.Equal(["Init Dump", $"PauseDevices {pid}", $"CheckpointDevices {pid}", $"DumpDevicesLate {pid}", "Exit Dump True"], Hooks());
        Assert.Equal(["crisp_test_plugin"], ImageDirectory.Open(_bench.Images).ReadAll<inventory_entry>(ImageFile.Inventory).Single().PluginsEntry.Plugins);
        Assert.Equal("saved by the test plugin\n", File.ReadAllText(Path.Combine(_bench.Images, TestPlugin.StateFile)));
        Live.AssertCritDecodesAll(_bench.Images);
        _bench.WaitDumpedPidsFree(pid);

        var refused = Crisp("restore", "-d", "-D", _bench.Images);
        Assert.Equal(1, refused.ExitCode);
        FailureSafetyTests.AssertOneLine(refused.Stderr, "the checkpoint needs plugin 'crisp_test_plugin', which is not loaded");
        Assert.False(Directory.Exists($"/proc/{pid}"), "the refused restore created the task");

        File.Delete(_env["CRISP_TEST_PLUGIN_LOG"]);
        var restore = Crisp("restore", "-d", "-D", _bench.Images, "-L", libdir);   // CRIU's short spelling
        _bench.Track(pid);
        Assert.True(restore.ExitCode == 0, Why(restore, _bench.Images));
        Assert.Equal(["Init Restore", "RestoreInit", "PostForking", $"ResumeDevicesLate {pid}", "Exit Restore True"], Hooks());
        Bench.WaitCountsOn(_counter, "the restored counter to count on");
    }

    /// <summary>A plugin that fails at the end of the dump (the test plugin), the device checkpoint failing, or
    /// the lock failing while the tree is being seized: the dump is aborted, the CUDA process is given back
    /// (restored and unlocked as far as it got), untraced, its cgroup frozen again if it was, and it runs on as it
    /// was once thawed.</summary>
    [RootTheory]
    [InlineData("CRISP_TEST_PLUGIN_FAIL", "DumpDevicesLate", "plugin crisp_test_plugin: DumpDevicesLate of tree", V1)]
    [InlineData("CUDA_STANDIN_FAIL", "checkpoint", "plugin cuda_plugin: CheckpointDevices of task", null)]
    [InlineData("CUDA_STANDIN_FAIL", "lock", "plugin cuda_plugin: PauseDevices of task", V2)]
    public void APluginFailureAbortsTheDumpAndGivesTheDevicesBack(string variable, string value, string message, string? frozenHierarchy)
    {
        string libdir = LibDir();
        _env[variable] = value;
        int pid = StartCudaProcess();
        var before = Bench.Observe(pid);
        var args = new List<string> { "dump", "-t", pid.ToString(), "-D", _bench.Images, "--libdir", libdir };
        CgroupFreezer? freezer = null;
        if (frozenHierarchy is not null)
        {
            string cgroup = _bench.Cgroup(frozenHierarchy, pid);
            freezer = CgroupFreezer.Open(cgroup);
            freezer.Freeze(TimeSpan.FromSeconds(5));
            args.AddRange(["--freeze-cgroup", cgroup]);
        }

        var r = Crisp([.. args]);
        Assert.NotEqual(0, r.ExitCode);
        FailureSafetyTests.AssertOneLine(r.Stderr, message);
        var expected = value switch
        {
            "lock" => [$"lock {pid} refused: injected failure"],
            "checkpoint" => new List<string> { $"lock {pid} timeout=10000", $"checkpoint {pid} refused: injected failure", $"unlock {pid}" },
            _ => [$"lock {pid} timeout=10000", $"checkpoint {pid}", $"restore {pid}", $"unlock {pid}"],
        };
        Assert.Equal(expected, Calls());
        if (value != "lock")
            Assert.Contains("Exit Dump False", Hooks());
        Assert.Equal("running", CudaState(pid));
        AssertUntraced(pid);
        if (freezer is not null)
        {
            Assert.True(freezer.IsFrozen(), "the cgroup is not frozen again after the failed dump");
            freezer.Thaw();
        }
        Bench.WaitCountsOn(_counter, "the process to run on");
        Bench.Observe(pid).AssertSameAs(before);
        var verdict = Bench.Verdict(pid);
        Assert.True(verdict.Exited && verdict.ExitCode == 0, $"hard_cuda: {verdict}; stderr: {_bench.Stderr}");
        Bench.AssertContinuous(_counter);
    }
}
