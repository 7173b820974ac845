using System.Text.Json.Nodes;
using Crisp.Linux.Proc;
using Crisp.Tests.Hardened;
using Crisp.Tests.Support;

namespace Crisp.Tests.Runtimes;

/// <summary>Debian's runc checkpoints and restores a busybox container through crisp installed as `criu`: runc
/// starts `criu swrk`, sends its RPC (root, external mounts for masked paths, devices and cgroup binds, cgroup
/// roots, inherit_fd for the stdio pipes, evasive devices, rst_sibling) and expects the container back as its
/// own. The counter goes on with no gap and no repeat, twice; the hardened container (uid 1000, no capabilities,
/// no_new_privs, a seccomp profile) comes back with the same status lines and byte-identical filters.</summary>
[Collection(ContainerEngines.Name)]
public class RuncTests
{
    [RootFact]
    public void ABusyboxContainerIsCheckpointedAndRestoredTwice()
    {
        using var c = new RuncContainer("plain");
        c.Run();
        c.WaitCounting(5, "the container to count");
        for (int n = 0; n < 2; n++)
        {
            c.Checkpoint(n);
            Assert.Throws<Xunit.Sdk.TrueException>(() => c.Runc(TimeSpan.FromSeconds(20), "state", c.Id));   // runc forgot it
            int stoppedAt = c.Numbers().Count;
            Thread.Sleep(200);
            Assert.Equal(stoppedAt, c.Numbers().Count);
            c.Restore(n);
            Assert.Equal("running", c.Status);
            c.WaitCounting(stoppedAt + 5, "the restored container to count on");
            Assert.Equal(1, ProcStatus.Read(c.Pid).NSpid.Last());   // its init is PID 1 of its own pid namespace
        }
        c.AssertContinuous();
    }

    /// <summary>`runc checkpoint --pre-dump` sends PRE_DUMP (after asking FEATURE_CHECK for memory tracking); the
    /// final checkpoint names it with --parent-path and stores only what changed; the restore reads through the chain.</summary>
    [RootFact]
    public void APreDumpChainIsCheckpointedAndRestored()
    {
        using var c = new RuncContainer("predump");
        c.Run();
        c.WaitCounting(5, "the container to count");
        c.Checkpoint(0, "--pre-dump");
        Assert.Equal("running", c.Status);
        Assert.NotEmpty(Directory.GetFiles(c.Images(0), "pages-*.img"));
        c.WaitCounting(c.Numbers().Count + 5, "the container to count on after the pre-dump");
        c.Checkpoint(1, "--parent-path", "../images0");
        int stoppedAt = c.Numbers().Count;
        c.Restore(1);
        c.WaitCounting(stoppedAt + 5, "the container restored through the chain to count on");
        c.AssertContinuous();
    }

    /// <summary>`terminal: true`: the container's stdio is a pty whose master runc sent to the console socket. The dump
    /// takes the slave alone (orphan_pts_master); the restore makes pty 0 again in the container's devpts before
    /// /dev/console is bound to it, and hands the new master to runc by the "orphan-pts-master" notify, which runc
    /// sends to the console socket: what the restored shell prints arrives there.</summary>
    [RootFact]
    public void AContainerWithATerminalGetsItsNewMasterThroughTheConsoleSocket()
    {
        using var c = new RuncContainer("tty", config =>
        {
            config["process"]!["terminal"] = true;
            config["process"]!["args"] = new JsonArray("/bin/sh", "-c", "i=0; while :; do echo $i >> /tmp/count; echo tick$i; i=$((i+1)); usleep 20000; done");
        });
        using var console = new ConsoleSocket(Path.Combine(c.Bundle, "console.sock"));
        c.Run("--console-socket", console.Path);
        c.WaitCounting(5, "the container with a terminal to count");
        Assert.Equal(1, console.Masters);
        Assert.Contains("tick3", console.Output(0));
        int pid = c.Pid;
        int ttyNr = ProcStat.Read(pid).TtyNr;
        Assert.NotEqual(0, ttyNr);

        c.Checkpoint(0);
        int stoppedAt = c.Numbers().Count;
        c.Restore(0, "--console-socket", console.Path);
        c.WaitCounting(stoppedAt + 5, "the restored container to count on");
        Assert.Equal(2, console.Masters);
        Bench.WaitFor(() => console.Output(1).Contains($"tick{stoppedAt + 3}"), "the restored shell's output on the new master");
        int now = c.Pid;
        Assert.Equal(ttyNr, ProcStat.Read(now).TtyNr);   // /dev/pts/0 is its controlling terminal again
        foreach (int fd in new[] { 0, 1, 2 })
            Assert.Equal("/dev/pts/0", new FileInfo($"/proc/{now}/fd/{fd}").LinkTarget);
        c.AssertContinuous();
    }

    [RootFact]
    public void LeaveRunningKeepsTheContainerAndItsImagesRestore()
    {
        using var c = new RuncContainer("leave");
        c.Run();
        c.WaitCounting(5, "the container to count");
        int pid = c.Pid;
        c.Checkpoint(0, "--leave-running");
        Assert.Equal("running", c.Status);
        Assert.Equal(pid, c.Pid);
        int after = c.Numbers().Count;
        c.WaitCounting(after + 5, "the container to count on after a --leave-running checkpoint");
        c.Runc(TimeSpan.FromSeconds(20), "delete", "-f", c.Id);
        Bench.WaitFor(() => !Directory.Exists($"/proc/{pid}"), "the container's init to go", 15);
        Thread.Sleep(100);
        File.WriteAllText(c.CountFile, "");
        c.Restore(0);
        Assert.Equal("running", c.Status);
        c.WaitCounting(5, "the container restored from a --leave-running checkpoint to count");
        var numbers = c.Numbers();
        Assert.Equal(Enumerable.Range(0, numbers.Count).Select(i => numbers[0] + i), numbers);
        Assert.InRange(numbers[0], 1, after);   // it starts where the checkpoint caught it
    }

    [RootFact]
    public void AHardenedContainerKeepsItsCredentialsAndFiltersByteForByte()
    {
        using var c = new RuncContainer("hardened", Harden);
        c.Run();
        c.WaitCounting(5, "the hardened container to count");
        var before = ContainerInit.Of(c.Pid).AssertHardened();

        c.Checkpoint(0);
        int stoppedAt = c.Numbers().Count;
        c.Restore(0);
        c.WaitCounting(stoppedAt + 5, "the restored hardened container to count on");
        before.AssertSameIn(c.Pid);
        c.AssertContinuous();
    }

    /// <summary>The seed's case through runc: a hardened container whose process is a CUDA stand-in (three threads,
    /// one the driver's restore thread), with the CUDA plugin forced on and the stand-in cuda-checkpoint on PATH, paused
    /// (`runc pause`, as CRI-O and containerd do before a checkpoint). `checkpoint --leave-running` goes through the
    /// frozen cgroup and the plugin's interrupt-only seize, records every thread's seccomp mode, and leaves the
    /// container paused; a second checkpoint kills it and `runc restore` brings it back with the same credentials
    /// and filters, the driver state restored and unlocked, counting on with no gap.</summary>
    [RootFact]
    public void APausedHardenedCudaContainerIsCheckpointedThroughThePluginAndStaysPaused()
    {
        string standIn = Directory.CreateTempSubdirectory("crisp-runc-cuda-").FullName;
        try
        {
            string bin = Path.Combine(standIn, "bin");
            Directory.CreateDirectory(bin);
            string tool = Path.Combine(bin, "cuda-checkpoint");
            File.Copy(Path.Combine(AppContext.BaseDirectory, "Plugins", "cuda-checkpoint.sh"), tool);
            File.SetUnixFileMode(tool, (UnixFileMode)0x1ED);
            var env = new Dictionary<string, string>
            {
                ["PATH"] = $"{bin}:{Environment.GetEnvironmentVariable("PATH")}",
                ["CRISP_PLUGIN_CUDA_FORCE"] = "1",
                ["CUDA_STANDIN_DIR"] = standIn,
            };
            using var c = new RuncContainer("cuda", config =>
            {
                Harden(config);
                config["process"]!["args"] = new JsonArray("/hard_cuda", "/tmp/count");
            }, env);
            string exe = Path.Combine(c.Rootfs, "hard_cuda");
            File.Copy(Support.Workloads.Build("hard_cuda", "-pthread -static"), exe);
            File.SetUnixFileMode(exe, (UnixFileMode)0x1ED);
            List<string> Calls() => File.Exists(Path.Combine(standIn, "calls.log")) ? [.. File.ReadAllLines(Path.Combine(standIn, "calls.log"))] : [];

            c.Run();
            c.WaitCounting(3, "the CUDA stand-in to count");
            int pid = c.Pid;
            Bench.WaitFor(() => ProcTasks.Threads(pid).Length == 3 && ProcTasks.Threads(pid).All(t => ProcStatus.ReadThread(pid, t).Seccomp == 2),
                "three filtered threads");
            var before = ContainerInit.Of(pid).AssertHardened();

            c.Runc(TimeSpan.FromSeconds(20), "pause", c.Id);
            c.Checkpoint(0, "--leave-running");
            Assert.Equal("paused", c.Status);
            Assert.Equal([$"lock {pid} timeout=10000", $"checkpoint {pid}", $"restore {pid}", $"unlock {pid}"], Calls());
            foreach (int tid in ProcTasks.Threads(pid))
                Assert.Equal(0, ProcStatus.ReadThread(pid, tid).TracerPid);
            var images = Crisp.Images.ImageDirectory.Open(c.Images(0));
            var tree = images.ReadAll<Crisp.Images.Proto.pstree_entry>(Crisp.Images.ImageFile.Pstree).Single();
            Assert.Equal(3, tree.Threads.Count);
            foreach (var tid in tree.Threads)
                Assert.Equal(Crisp.Images.Proto.seccomp_mode.Filter,
                    images.ReadAll<Crisp.Images.Proto.core_entry>(Crisp.Images.ImageFile.Core((int)tid)).Single().ThreadCore.SeccompMode);
            int frozenAt = c.Numbers().Count;
            Thread.Sleep(300);
            Assert.Equal(frozenAt, c.Numbers().Count);

            c.Checkpoint(1);
            Assert.Equal([$"lock {pid} timeout=10000", $"checkpoint {pid}"], Calls().Skip(4));
            c.Restore(1);
            Assert.Equal("running", c.Status);
            int now = c.Pid;
            Assert.Equal([$"restore {now}", $"unlock {now}"], Calls().Skip(6));
            c.WaitCounting(frozenAt + 5, "the restored CUDA stand-in to count on");
            Assert.Equal(3, ProcTasks.Threads(now).Length);
            before.AssertSameIn(now);
            c.AssertContinuous();
        }
        finally
        {
            Directory.Delete(standIn, recursive: true);
        }
    }

    /// <summary>What a hardened pod spec asks of runc: uid/gid 1000, every capability set empty, no_new_privs, and
    /// a seccomp profile (allow by default, EPERM for calls a container must not make).</summary>
    private static void Harden(JsonObject config)
    {
        var process = config["process"]!.AsObject();
        process["user"] = new JsonObject { ["uid"] = 1000, ["gid"] = 1000 };
        process["noNewPrivileges"] = true;
        process["capabilities"] = new JsonObject
        {
            ["bounding"] = new JsonArray(), ["effective"] = new JsonArray(), ["permitted"] = new JsonArray(),
            ["inheritable"] = new JsonArray(), ["ambient"] = new JsonArray(),
        };
        var denied = new JsonArray();
        foreach (var name in new[] { "mount", "umount2", "unshare", "setns", "keyctl", "add_key", "request_key", "ptrace", "kexec_load", "reboot", "swapon" })
            denied.Add(name);
        config["linux"]!["seccomp"] = new JsonObject
        {
            ["defaultAction"] = "SCMP_ACT_ALLOW",
            ["architectures"] = new JsonArray("SCMP_ARCH_X86_64"),
            ["syscalls"] = new JsonArray(new JsonObject { ["names"] = denied, ["action"] = "SCMP_ACT_ERRNO", ["errnoRet"] = 1 }),
        };
    }
}
