using System.Security.Cryptography;
using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Dump;
using Crisp.Linux;
using Crisp.Restore;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Integration;

/// <summary>Helpers for live checkpoint/restore tests: traced workloads spawned with posix_spawn (never
/// System.Diagnostics.Process), PIDs waited free, image directories hashed and decoded.</summary>
internal static class Live
{
    public const int O_RDONLY = 0, O_WRONLY = 1, O_CREAT = 0x40, O_TRUNC = 0x200, O_APPEND = 0x400;
    public const int SIGKILL = 9, SIGUSR1 = 10;

    /// <summary>stdin, stdout and stderr on /dev/null: nothing outside the tree that could not be restored.</summary>
    public static readonly (int Target, string Path, int Flags, int Mode)[] DevNullStdio =
        [(0, "/dev/null", O_RDONLY, 0), (1, "/dev/null", O_WRONLY, 0), (2, "/dev/null", O_WRONLY, 0)];

    /// <summary>Starts <paramref name="exe"/> as our child in its own session, its stdio on /dev/null.</summary>
    public static int StartQuiet(string exe, IReadOnlyList<string> argv) =>
        Spawn.Start(exe, argv, new SpawnOptions { NewSession = true, Opens = DevNullStdio });

    /// <summary>Starts statecheck in its own session with stdout/stderr in files under <paramref name="dir"/>
    /// (stdin /dev/null: nothing outside the tree that could not be restored). Returns its PIDs.</summary>
    public static (int Pid, int Child) StartStatecheck(string dir, string exe)
    {
        var w = Workload.Start(exe, ["statecheck"], dir);
        var parts = w.WaitReady("statecheck's ready line", p => p.Length == 3 && p[0] == "ready");
        Assert.Equal(w.Pid, int.Parse(parts[1]));
        return (w.Pid, int.Parse(parts[2]));
    }

    /// <summary>Starts statecheck in a scratch directory, hands <paramref name="body"/> the directory, the root's PID
    /// and both PIDs of the tree, and kills what is left afterwards.</summary>
    public static void WithStatecheck(Action<TempDir, int, int[]> body)
    {
        string exe = Support.Workloads.Build("statecheck");
        using var dir = new TempDir();
        var (pid, child) = StartStatecheck(dir.Path, exe);
        int[] pids = [pid, child];
        try
        {
            body(dir, pid, pids);
        }
        finally
        {
            KillAll(pids, pid);
        }
    }

    public static void WaitFor(Func<bool> condition, string what, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(15));
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"timed out waiting for {what}");
            Thread.Sleep(20);
        }
    }

    /// <summary>Waits at most <paramref name="within"/> (default 60 s) for our child to exit and reaps it. One still
    /// running then is killed and the test fails: a lost wake-up must fail its test, never hang the run.</summary>
    public static WaitStatus ReapWithin(int pid, TimeSpan? within = null)
    {
        WaitStatus? status = null;
        try
        {
            WaitFor(() => (status = Spawn.TryReap(pid)) is not null, $"PID {pid} to exit", within ?? TimeSpan.FromSeconds(60));
        }
        catch (TimeoutException)
        {
            RawSyscall.TryCall(Sysno.kill, pid, SIGKILL);
            try { Spawn.Reap(pid); } catch (SyscallException) { }
            throw;
        }
        return status!.Value;
    }

    /// <summary>The restored root's exit code the way a shell reports it, waiting at most <paramref name="within"/>.</summary>
    public static int ExitCodeWithin(Crisp.Restore.RestoredTree tree, TimeSpan? within = null)
    {
        var status = ReapWithin(tree.RootPid, within);
        return status.Signaled ? 128 + status.TermSignal : status.ExitCode;
    }

    /// <summary>Runs <paramref name="body"/> with a debug log that goes to <paramref name="output"/> only when it
    /// throws: a passing test stays quiet, a failing one shows what crisp did.</summary>
    public static T Logged<T>(ITestOutputHelper output, Func<Log, T> body)
    {
        var log = new StringWriter();
        try
        {
            return body(new Log(log, 4));
        }
        catch
        {
            output.WriteLine(log.ToString());
            throw;
        }
    }

    /// <summary>One in-process cycle, logged: dumps (and so kills) the tree as <paramref name="dump"/> says, waits
    /// until <paramref name="pids"/> are free, has crit decode every image (then <paramref name="checkImages"/>
    /// looks at them), restores detached and asserts the root has its PID again and the tree the state it had
    /// before the dump (<see cref="StateDiff"/>, up to <paramref name="stateAllow"/>; a test that cannot be
    /// compared says why in <paramref name="skipStateCheck"/>).</summary>
    public static RestoredTree Cycle(ITestOutputHelper output, DumpOptions dump, IEnumerable<int> pids, Action<string>? checkImages = null,
        StateAllowList? stateAllow = null, string? skipStateCheck = null) =>
        Logged(output, log =>
        {
            var before = skipStateCheck is null ? TaskStateSnapshot.OfQuietTree(dump.RootPid) : null;
            new Dumper(dump, log).Run();
            WaitPidsFree(pids, dump.RootPid);
            AssertCritDecodesAll(dump.ImagesDir);
            checkImages?.Invoke(dump.ImagesDir);
            var tree = new Restorer(new RestoreOptions { ImagesDir = dump.ImagesDir, Detached = true, FileLocks = dump.FileLocks }, log).Run();
            Assert.Equal(dump.RootPid, tree.RootPid);
            if (before is not null)
                StateDiff.AssertRestored(before, stateAllow);
            return tree;
        });

    /// <summary>Every PID and TID of the checkpoint in <paramref name="images"/>.</summary>
    public static List<int> CheckpointPids(string images) =>
        ImageDirectory.Open(images).ReadAll<pstree_entry>(ImageFile.Pstree).SelectMany(e => e.Threads).Select(t => (int)t).ToList();

    /// <summary>Reaps <paramref name="ourChild"/> if it is ours, then waits at most <paramref name="within"/> (default
    /// 15 s) until init has reaped the rest.</summary>
    public static void WaitPidsFree(IEnumerable<int> pids, int ourChild = 0, TimeSpan? within = null)
    {
        if (ourChild > 0)
            Wait.TryWaitPid(ourChild, out _, Wait.WALL | Wait.WNOHANG);
        var list = pids.ToList();
        WaitFor(() =>
        {
            if (ourChild > 0)
                Wait.TryWaitPid(ourChild, out _, Wait.WALL | Wait.WNOHANG);
            return list.All(p => !Directory.Exists($"/proc/{p}"));
        }, $"PIDs {string.Join(',', list)} to be free", within);
    }

    /// <summary>SIGKILL whatever of <paramref name="pids"/> still runs (test cleanup).</summary>
    public static void KillAll(IEnumerable<int> pids, int ourChild = 0)
    {
        foreach (int p in pids)
            if (p > 0)
                RawSyscall.TryCall(Sysno.kill, p, SIGKILL);
        try { WaitPidsFree(pids.Where(p => p > 0), ourChild); }
        catch (TimeoutException) { }
    }

    /// <summary>Sends SIGUSR1 to a statecheck root that is our child and asserts its verdict is PASS.</summary>
    public static void SignalAndExpectPass(int pid, string dir, Func<int> waitExit)
    {
        Signals.Kill(pid, SIGUSR1);
        int rc = waitExit();
        string err = File.ReadAllText(Path.Combine(dir, "err"));
        Assert.True(rc == 0, $"statecheck exited {rc}; stderr:\n{err}");
        Assert.Contains("PASS", err);
        Assert.DoesNotContain("FAIL", err);
    }

    /// <summary>SHA-256 of every file (name → hash).</summary>
    public static Dictionary<string, string> Hashes(string dir) =>
        Directory.EnumerateFiles(dir).ToDictionary(f => Path.GetFileName(f),
            f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f))));

    public static long Bytes(string dir) => new DirectoryInfo(dir).EnumerateFiles().Sum(f => f.Length);

    /// <summary>`crit decode` must accept every image in the directory (raw pages-*.img excepted), and every entry must
    /// have the fields CRIU's schema requires (<see cref="Images.RequiredFields"/>).</summary>
    public static void AssertCritDecodesAll(string dir)
    {
        // pages-*.img are raw pages, tmpfs-dev-*.tar.gz.img gzip'd tar, a network namespace's ifaddr/route/route6
        // and nftables images iproute2's and nft's formats: no entries for crit to decode (as CRIU's).
        string[] raw = ["pages-", "tmpfs-dev-", "ifaddr-", "route-", "route6-", "nftables-"];
        var files = Directory.EnumerateFiles(dir, "*.img").Where(f => !raw.Any(Path.GetFileName(f).StartsWith)).ToList();
        Assert.NotEmpty(files);
        foreach (var f in files)
        {
            var r = RunProcess("/usr/bin/crit", TimeSpan.FromSeconds(60), null, "decode", "-i", f);
            Assert.True(r.ExitCode == 0, $"crit decode {Path.GetFileName(f)} failed ({r.ExitCode}): {r.Stderr}");
        }
        Images.RequiredFields.AssertAllSet(dir);
    }

    /// <summary>The crisp CLI with extra environment (e.g. CRISP_FAULT).</summary>
    public static CrispCli.Result Crisp(IDictionary<string, string>? env, params string[] args) =>
        CrispCli.Run(TimeSpan.FromSeconds(60), env, args);

    public static CrispCli.Result RunProcess(string exe, TimeSpan timeout, IDictionary<string, string>? env, params string[] args) =>
        CrispCli.RunProcess(exe, timeout, env, args);

    /// <summary>A scratch directory removed at the end.</summary>
    public sealed class TempDir : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("crisp-integ-").FullName;
        public string Images => System.IO.Path.Combine(Path, "images");
        public void Dispose()
        {
            try { Directory.Delete(Path, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }
}
