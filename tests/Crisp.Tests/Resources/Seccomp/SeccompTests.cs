using Crisp.Compel;
using Crisp.Compel.Puppets;
using Crisp.Dump;
using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Linux.Proc;
using Crisp.Resources.Seccomp;
using Crisp.Restore;
using Crisp.Tests.Support;

namespace Crisp.Tests.Resources.Seccomp;

public class SeccompTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("crisp-seccomp-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void ChainsAreStoredOnceWithPrevLinks()
    {
        var chains = new SeccompChains();
        byte[] a = [1, 0, 0, 0, 0, 0, 0, 0], b = [2, 0, 0, 0, 0, 0, 0, 0], c = [3, 0, 0, 0, 0, 0, 0, 0];
        int parent = chains.Add([(a, 0)]);
        int child = chains.Add([(a, 0), (b, 2)]);       // inherited prefix + its own filter
        int thread = chains.Add([(a, 0), (b, 2)]);      // same chain as child: shared
        int other = chains.Add([(c, 0)]);
        Assert.Equal(3, chains.Filters.Count);
        Assert.Equal(child, thread);
        Assert.Equal((uint)parent, chains.Filters[child].Prev);
        Assert.Equal(2u, chains.Filters[child].Flags);
        Assert.False(chains.Filters[other].HasPrev);
        var chain = SeccompChains.Chain(chains.Filters, (uint)child);
        Assert.Equal([a, b], chain.Select(f => f.Filter.ToByteArray()));
    }

    [Fact]
    public void HostileChainsAreRefused()
    {
        var loop = new List<seccomp_filter> { new() { Filter = Google.Protobuf.ByteString.CopyFrom(new byte[8]), Prev = 0 } };
        Assert.Contains("loops", Assert.Throws<CrispException>(() => SeccompChains.Chain(loop, 0)).Message);
        Assert.Contains("does not exist", Assert.Throws<CrispException>(() => SeccompChains.Chain(loop, 7)).Message);
    }

    /// <summary>The hardened launcher's two filters (allowlist, then a LOG-flagged one) are dumped from a live
    /// uid-1000 process left running, then installed into a puppet and read back byte for byte.</summary>
    [RootFact]
    public void HardenedFiltersDumpAndInstallByteIdentical()
    {
        string hardened = Support.Workloads.Build("hardened", "-lseccomp");
        int pid = Spawn.Start(hardened, ["hardened", "--", "/bin/sleep", "100"], new SpawnOptions
        {
            NewSession = true,
            Opens = [(0, "/dev/null", 0, 0), (1, "/dev/null", 1, 0), (2, "/dev/null", 1, 0)],
        });
        try
        {
            WaitFor(() => File.Exists($"/proc/{pid}/exe") && ProcStatus.Read(pid).SeccompFilters == 2
                && File.ReadAllText($"/proc/{pid}/comm").Trim() == "sleep");
            var state = TaskStateSnapshot.OfQuietTree(pid);
            new Dumper(new DumpOptions { RootPid = pid, ImagesDir = _dir, LeaveRunning = true }, Log.Null).Run();
            StateDiff.AssertRestored(state, when: "after dump --leave-running");

            // Left running, untouched: still sleeping with its filters.
            var status = ProcStatus.Read(pid);
            Assert.Equal(0, status.TracerPid);
            Assert.Equal(2, status.SeccompFilters);

            var images = ImageDirectory.Open(_dir);
            var core = images.ReadAll<core_entry>(ImageFile.Core(pid)).Single();
            Assert.Equal(seccomp_mode.Filter, core.ThreadCore.SeccompMode);
            var filters = images.ReadAll<seccomp_entry>(new ImageFile(ImageKind.Seccomp, null)).Single().SeccompFilters;
            Assert.Equal(2, filters.Count);
            var newest = filters[(int)core.ThreadCore.SeccompFilter];
            Assert.Equal(Crisp.Linux.Seccomp.SECCOMP_FILTER_FLAG_LOG, newest.Flags);
            var oldest = filters[(int)newest.Prev];
            Assert.True(oldest.Filter.Length > 100 * 8, "the allowlist filter is the oldest");

            using var tracer = new Tracer();
            var seizer = new Seizer(tracer);
            var puppet = Puppet.Spawn(seizer);
            try
            {
                var ctx = new RestoreContext(new RestoreOptions { ImagesDir = _dir }, Log.Null, images, tracer, seizer,
                    FaultInjection.None, new inventory_entry());
                var task = new RestoreTask(new pstree_entry { Pid = (uint)puppet.Pid }, [new RestoreThread(puppet.Pid, core)], null)
                {
                    Puppet = puppet,
                };
                var stage = new SeccompRestore();
                stage.Prepare(ctx);
                stage.Restore(ctx, task);
                Assert.Equal(2, ProcStatus.Read(puppet.Pid).SeccompFilters);
                Assert.Equal(oldest.Filter.ToByteArray(), puppet.Thread.SeccompFilter(0));
                Assert.Equal(newest.Filter.ToByteArray(), puppet.Thread.SeccompFilter(1));
                Assert.Equal(0UL, puppet.Thread.SeccompFilterFlags(0));
                Assert.Equal((ulong)Crisp.Linux.Seccomp.SECCOMP_FILTER_FLAG_LOG, puppet.Thread.SeccompFilterFlags(1));
                // Filters suspended for us: remote syscalls still work (getpriority is blocked by the filter).
                Assert.Equal(puppet.Pid, puppet.Remote.Getpid());
            }
            finally
            {
                puppet.Kill();
            }
        }
        finally
        {
            RawSyscall.TryCall(Sysno.kill, pid, 9);
            Spawn.Reap(pid);
        }
    }

    private static void WaitFor(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException("workload did not get ready");
            Thread.Sleep(10);
        }
    }
}
