using Crisp.Compel.Freezer;
using Crisp.Linux;
using Crisp.Linux.Proc;
using Crisp.Rpc.Proto;
using Crisp.Tests.Hardened;
using Crisp.Tests.Support;

namespace Crisp.Tests.Rpc;

/// <summary>The seed's workload over RPC, as a container engine would send it: the hardened seccomp counter (uid 1000,
/// no capabilities, no_new_privs, two filters) in a frozen v2 cgroup — a paused container — dumped through
/// freeze_cgroup and restored with rst_sibling. The cgroup is frozen again after the dump, the restored counter
/// carries on with no gap and the same credentials and filters, byte for byte.</summary>
[Collection("Hardened")]
public class HardenedRpcTests : IDisposable
{
    private const string V2 = "/sys/fs/cgroup/unified";
    private readonly Bench _bench = new();

    public void Dispose() => _bench.Dispose();

    [RootFact]
    public void PausedHardenedCounterDumpedAndRestoredOverRpc()
    {
        string counter = Path.Combine(_bench.Work, "counter.txt");
        string probe = Support.Workloads.Build("seccomp_probe");
        int pid = _bench.Start(Support.Workloads.Build("hardened", "-lseccomp"), ["hardened", "--strict", "--", probe, "--loop", counter]);
        Bench.WaitFor(() => Bench.Numbers(counter).Count >= 3 && ProcStatus.Read(pid).SeccompFilters == 2, "the probe to count");
        string cgroup = _bench.Cgroup(V2, pid);
        var before = Bench.Observe(pid);
        CgroupFreezer.Open(cgroup).Freeze(TimeSpan.FromSeconds(5));
        string images = SwrkTests.MakeDir(_bench.Images);
        using var imagesFd = FileIo.Open(images, FileIo.O_RDONLY | FileIo.O_DIRECTORY);

        using (var client = new RpcClient(_bench.Work))
        {
            var dump = client.Call(new criu_req
            {
                Type = criu_req_type.Dump,
                Opts = new criu_opts { ImagesDirFd = imagesFd.Fd, Pid = pid, FreezeCgroup = cgroup, NotifyScripts = true, LogFile = "dump.log", LogLevel = 4 },
            });
            Assert.True(dump.Success, $"{dump.CrErrmsg}\n{SwrkTests.Log(images, "dump.log")}");
            client.AssertCleanExit();
        }
        _bench.WaitDumpedPidsFree(pid);
        Assert.True(CgroupFreezer.Open(cgroup).IsFrozen(), "the paused cgroup is paused again after the dump");
        long stoppedAt = Bench.Numbers(counter).Last();

        using (var client = new RpcClient(_bench.Work))
        {
            var restore = client.Call(new criu_req
            {
                Type = criu_req_type.Restore,
                Opts = new criu_opts { ImagesDirFd = imagesFd.Fd, RstSibling = true, NotifyScripts = true, LogFile = "restore.log", LogLevel = 4 },
            });
            Assert.True(restore.Success, $"{restore.CrErrmsg}\n{SwrkTests.Log(images, "restore.log")}");
            Assert.Equal(pid, restore.Restore.Pid);
            client.AssertCleanExit();
        }
        _bench.Track(pid);
        Assert.Equal(Environment.ProcessId, ProcStat.Read(pid).PPid);
        Bench.WaitFor(() => Bench.Numbers(counter).Last() >= stoppedAt + 3, "the restored probe to count on");
        Bench.Observe(pid).AssertSameAs(before);
        var verdict = Bench.Verdict(pid);
        Assert.True(verdict.Exited && verdict.ExitCode == 0, $"probe after restore: {verdict}; stderr: {_bench.Stderr}");
        Bench.AssertContinuous(counter);
    }
}
