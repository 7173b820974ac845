using Crisp.Linux;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Footprint;

/// <summary>Issue 24: the crisp CLI inside a container's limits, as runc runs it (moved into the container's
/// cgroups, so crisp and the tree it restores are charged there). mem_sum checksums its own memory.
/// The memory limit is the 48 MiB for the JIT build too: crisp's own charge is what counts there, the
/// runtime's shared pages being charged to whoever first read them; see docs/bench.md "Footprint".</summary>
public class CgroupLimitTests(ITestOutputHelper output)
{
    private const long MiB = 1 << 20;
    private const long CrispLimit = 48 * MiB;
    private static readonly TimeSpan Slow = TimeSpan.FromMinutes(5);

    [RootFact]
    public void DumpsA256MiBTreeInside48MiBAndRestoresItInsideItsSizePlus48MiB()
    {
        using var w = MemSum.Start(256, kids: 0);
        try
        {
            using (var dumpCg = new TestCgroup(CrispLimit, null))
            {
                var dump = dumpCg.RunCrisp(Slow, "dump", "-t", w.Pid.ToString(), "-D", w.Images);
                output.WriteLine($"dump in {CrispLimit / MiB} MiB: exit {dump.ExitCode}, cgroup peak {dumpCg.PeakBytes / MiB} MiB; {dump.Stderr}");
                Assert.True(dump.ExitCode == 0, $"dump inside {CrispLimit / MiB} MiB failed: {dump.Stderr}");
            }
            Live.WaitPidsFree([w.Pid], ourChild: w.Pid);

            using var restoreCg = new TestCgroup(256 * MiB + CrispLimit, null);
            var restore = restoreCg.RunCrisp(Slow, "restore", "-d", "-D", w.Images);
            output.WriteLine($"restore in {(256 * MiB + CrispLimit) / MiB} MiB: exit {restore.ExitCode}, cgroup peak {restoreCg.PeakBytes / MiB} MiB; {restore.Stderr}");
            Assert.True(restore.ExitCode == 0, $"restore inside the tree's size + {CrispLimit / MiB} MiB failed: {restore.Stderr}");
            Assert.Contains(w.Pid, restoreCg.Procs());   // the restored tree lives where crisp ran, as under runc
            w.ExpectPass();
        }
        finally
        {
            w.KillTree();
        }
    }

    [RootFact]
    public void DumpsAndRestoresATenProcessTreeUnderPidsMax32()
    {
        using var w = MemSum.Start(8, kids: 9);
        try
        {
            var pids = Live.CheckpointPids(Dump(w, new TestCgroup(null, 32)));
            Assert.Equal(10, pids.Count);
            Live.WaitPidsFree(pids, ourChild: w.Pid);

            using var cg = new TestCgroup(null, 32);
            var restore = cg.RunCrisp(Slow, "restore", "-d", "-D", w.Images);
            Assert.True(restore.ExitCode == 0, $"restore under pids.max 32 failed: {restore.Stderr}");
            Assert.Equal(pids.Order(), cg.Procs().Order());   // the whole tree, and crisp gone
            w.ExpectPass();
        }
        finally
        {
            w.KillTree();
        }
    }

    [RootFact]
    public void ARestoreThatCannotFitItsCgroupIsRefusedUpFrontAndLeavesNothing()
    {
        using var w = MemSum.Start(64, kids: 0);
        try
        {
            Dump(w, null);
            Live.WaitPidsFree([w.Pid], ourChild: w.Pid);
            var hashes = Live.Hashes(w.Images);
            using (var cg = new TestCgroup(CrispLimit, null))
            {
                var r = cg.RunCrisp(Slow, "restore", "-d", "-D", w.Images);
                Assert.Equal(1, r.ExitCode);
                FailureSafetyTests.AssertOneLine(r.Stderr, "the restored tree alone needs");
                Assert.Contains("refusing to start a restore that would be OOM-killed", r.Stderr);
                Assert.Empty(cg.Procs());
            }
            Assert.False(Directory.Exists($"/proc/{w.Pid}"), "a task was created");
            Assert.Equal(hashes, Live.Hashes(w.Images));

            // The same images restore where there is room.
            var ok = CrispCli.Run(Slow, "restore", "-d", "-D", w.Images);
            Assert.True(ok.ExitCode == 0, ok.Stderr);
            w.ExpectPass();
        }
        finally
        {
            w.KillTree();
        }
    }

    /// <summary>Dumps (killing) the workload through the CLI, inside <paramref name="cg"/> when given.</summary>
    private string Dump(MemSum w, TestCgroup? cg)
    {
        using (cg)
        {
            string[] args = ["dump", "-t", w.Pid.ToString(), "-D", w.Images];
            var dump = cg is null ? CrispCli.Run(Slow, args) : cg.RunCrisp(Slow, args);
            output.WriteLine($"dump: exit {dump.ExitCode}; {dump.Stderr}");
            Assert.True(dump.ExitCode == 0, $"dump failed: {dump.Stderr}");
        }
        return w.Images;
    }

    /// <summary>tests/workloads/mem_sum.c in a scratch directory on disk (/var/tmp: images on tmpfs would be
    /// charged to the cgroup as memory), our child in its own session.</summary>
    private sealed class MemSum : IDisposable
    {
        private MemSum(string dir, int pid)
        {
            Dir = dir;
            Pid = pid;
        }

        public string Dir { get; }
        public int Pid { get; }
        public string Images => Path.Combine(Dir, "images");

        public static MemSum Start(int mib, int kids)
        {
            string exe = Support.Workloads.Build("mem_sum");
            string dir = Directory.CreateDirectory($"/var/tmp/crisp-footprint-{Guid.NewGuid():N}").FullName;
            int pid = Spawn.Start(exe, [exe, dir, mib.ToString(), kids.ToString()], new SpawnOptions { NewSession = true, Opens = Live.DevNullStdio });
            var w = new MemSum(dir, pid);
            Live.WaitFor(() => File.Exists(Path.Combine(dir, "ready")) || Spawn.TryReap(pid) is not null, "mem_sum to get ready", TimeSpan.FromSeconds(60));
            Assert.True(File.Exists(Path.Combine(dir, "ready")), "mem_sum exited before it was ready");
            return w;
        }

        /// <summary>SIGUSR1 to the restored root (no longer our child); every process checks its memory, the
        /// root writes the verdict and exits.</summary>
        public void ExpectPass()
        {
            Signals.Kill(Pid, Live.SIGUSR1);
            string verdict = Path.Combine(Dir, "verdict");
            Live.WaitFor(() => File.Exists(verdict) && File.ReadAllText(verdict).EndsWith('\n'), "mem_sum's verdict", TimeSpan.FromSeconds(60));
            Assert.Equal("PASS", File.ReadAllText(verdict).Trim());
            Live.WaitPidsFree([Pid]);
        }

        /// <summary>Test cleanup: the whole session, whether it is the original tree or the restored one.</summary>
        public void KillTree()
        {
            RawSyscall.TryCall(Sysno.kill, -Pid, Live.SIGKILL);
            Live.KillAll([Pid], Pid);
        }

        public void Dispose()
        {
            try { Directory.Delete(Dir, recursive: true); } catch (IOException) { }
        }
    }
}
