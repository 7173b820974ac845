using Crisp.Restore;
using System.Text.RegularExpressions;
using Crisp.Compel;
using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Linux.Proc;

namespace Crisp.Tests.Hardened;

/// <summary>What the hardened-process tests share: a world-writable work folder, cgroups made for a test
/// (thawed and removed at the end), the workloads they started (killed and reaped at the end), and the
/// observations they compare before and after a checkpoint: /proc status lines and each thread's
/// seccomp filters as the kernel reports them.</summary>
internal sealed class Bench : IDisposable
{
    public static readonly string[] StatusKeys =
        ["Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp", "Seccomp_filters"];

    private readonly List<string> _cgroups = [];
    private readonly List<int> _pids = [];

    public Bench()
    {
        Work = Directory.CreateTempSubdirectory("crisp-hard-").FullName;
        File.SetUnixFileMode(Work, (UnixFileMode)0x1FF);   // uid-1000 workloads write here
    }

    public string Work { get; }

    public string Images => Path.Combine(Work, "images");

    public static readonly (int, string, int, int)[] DevNull = [(0, "/dev/null", 0, 0), (1, "/dev/null", 1, 0), (2, "/dev/null", 1, 0)];

    /// <summary>Starts a workload as a child of the test in a session of its own, stderr to a file.</summary>
    public int Start(string exe, string[] argv)
    {
        int pid = Spawn.Start(exe, argv, new SpawnOptions
        {
            NewSession = true,
            Opens = [(0, "/dev/null", 0, 0), (1, "/dev/null", 1, 0), (2, Path.Combine(Work, "stderr.txt"), 0x441 /* O_WRONLY|O_CREAT|O_APPEND */, 0x1b6)],
        });
        _pids.Add(pid);
        return pid;
    }

    public string Stderr => File.Exists(Path.Combine(Work, "stderr.txt")) ? File.ReadAllText(Path.Combine(Work, "stderr.txt")) : "";

    public void Track(int pid) => _pids.Add(pid);

    /// <summary>Restores the checkpoint in <see cref="Images"/> detached, once the dumped PIDs are free,
    /// and tracks the restored root for clean-up; returns its PID.</summary>
    public int RestoreDumped(int dumpedPid)
    {
        WaitDumpedPidsFree(dumpedPid);
        int root = new Restorer(new RestoreOptions { ImagesDir = Images, Detached = true }, Log.Null).Run().RootPid;
        Track(root);
        return root;
    }

    /// <summary>Waits until the counter file has grown by three numbers.</summary>
    public static void WaitCountsOn(string counter, string what)
    {
        long last = Numbers(counter).Last();
        WaitFor(() => Numbers(counter).Last() >= last + 3, what);
    }

    /// <summary>A fresh cgroup under <paramref name="hierarchy"/> holding <paramref name="pid"/>.</summary>
    public string Cgroup(string hierarchy, int pid)
    {
        string cg = Path.Combine(hierarchy, $"crisp-hard-{Environment.ProcessId}-{pid}");
        Directory.CreateDirectory(cg);
        _cgroups.Add(cg);
        File.WriteAllText(Path.Combine(cg, "cgroup.procs"), pid.ToString());
        return cg;
    }

    public static Dictionary<string, string> Status(int pid, int tid)
    {
        var status = ProcStatus.ReadThread(pid, tid);
        return StatusKeys.ToDictionary(k => k, k => Regex.Replace(status[k] ?? "", @"\s+", " ").Trim());
    }

    /// <summary>Every thread's status lines and filters (program bytes and flags, oldest first).</summary>
    public static Snapshot Observe(int pid)
    {
        var snap = new Snapshot();
        foreach (int tid in ProcTasks.Threads(pid).Order())
        {
            snap.Status[tid] = Status(pid, tid);
            snap.Filters[tid] = snap.Status[tid]["Seccomp"] == "2" ? Filters(pid, tid) : [];
        }
        return snap;
    }

    /// <summary>Seizes one thread briefly and reads its filter chain with PTRACE_SECCOMP_GET_FILTER and
    /// PTRACE_SECCOMP_GET_METADATA, then lets it go.</summary>
    public static List<(string Program, ulong Flags)> Filters(int pid, int tid)
    {
        using var tracer = new Tracer("bench-tracer");
        var seizer = new Seizer(tracer);
        var thread = seizer.SeizeThread(pid, tid) ?? throw new InvalidOperationException($"thread {tid} vanished");
        try
        {
            var chain = new List<(string, ulong)>();
            for (int i = 0; thread.SeccompFilter(i) is { } program; i++)
                chain.Add((Convert.ToHexString(program), thread.SeccompFilterFlags(i)));
            return chain;
        }
        finally
        {
            seizer.Detach(thread);
        }
    }

    /// <summary>After a dump killed the tree: reap what was our child, then wait for init to reap the rest.</summary>
    public void WaitDumpedPidsFree(int rootPid, Crisp.Security.Encryption.ImageKey? key = null)
    {
        Wait.TryWaitPid(rootPid, out _, Wait.WALL);
        var pids = ImageDirectory.Open(Images, key).ReadAll<pstree_entry>(ImageFile.Pstree).SelectMany(e => e.Threads).Select(t => (int)t).ToList();
        WaitFor(() => pids.All(p => !Directory.Exists($"/proc/{p}")), "the dumped PIDs to be free", 15);
    }

    public static List<long> Numbers(string file) =>
        File.Exists(file) ? File.ReadAllLines(file).Where(l => l.Length > 0 && l != "SECCOMP-LOST").Select(long.Parse).ToList() : [];

    /// <summary>The counter file has no SECCOMP-LOST line and counts 0, 1, 2… with no gap and no repeat.</summary>
    public static void AssertContinuous(string file)
    {
        var text = File.ReadAllText(file);
        Assert.DoesNotContain("SECCOMP-LOST", text);
        var numbers = Numbers(file);
        Assert.Equal(Enumerable.Range(0, numbers.Count).Select(i => (long)i), numbers);
    }

    public static void WaitFor(Func<bool> condition, string what, int seconds = 10)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"timed out waiting for {what}");
            Thread.Sleep(20);
        }
    }

    /// <summary>SIGUSR1 (the workloads' "check yourself now") and the exit status, reaped.</summary>
    public static WaitStatus Verdict(int pid)
    {
        RawSyscall.Call("kill", Sysno.kill, pid, 10);
        return Spawn.Reap(pid);
    }

    public void Dispose()
    {
        foreach (var cg in _cgroups)
            Thaw(cg);
        foreach (int pid in _pids)
        {
            RawSyscall.TryCall(Sysno.kill, pid, 9);
            Wait.TryWaitPid(pid, out _, Wait.WALL);
        }
        foreach (var cg in _cgroups)
        {
            for (int i = 0; i < 100 && Directory.Exists(cg); i++)
            {
                try { Directory.Delete(cg); }
                catch (IOException) { Thread.Sleep(50); }
            }
        }
        try { Directory.Delete(Work, recursive: true); } catch (IOException) { }
    }

    private static void Thaw(string cg)
    {
        try
        {
            if (File.Exists(Path.Combine(cg, "freezer.state")))
                File.WriteAllText(Path.Combine(cg, "freezer.state"), "THAWED");
            else
                File.WriteAllText(Path.Combine(cg, "cgroup.freeze"), "0");
        }
        catch (IOException) { }
    }
}

internal sealed class Snapshot
{
    public Dictionary<int, Dictionary<string, string>> Status { get; } = [];
    public Dictionary<int, List<(string Program, ulong Flags)>> Filters { get; } = [];

    /// <summary>Same threads, same status lines, byte-identical filters with the same flags.</summary>
    public void AssertSameAs(Snapshot before)
    {
        Assert.Equal(before.Status.Keys.Order(), Status.Keys.Order());
        foreach (var (tid, was) in before.Status)
            foreach (var key in Bench.StatusKeys)
                Assert.True(was[key] == Status[tid][key], $"thread {tid}: {key} was '{was[key]}', now '{Status[tid][key]}'");
        foreach (var (tid, was) in before.Filters)
        {
            var now = Filters[tid];
            Assert.True(was.Count == now.Count, $"thread {tid}: {was.Count} filter(s) before, {now.Count} after");
            for (int i = 0; i < was.Count; i++)
            {
                Assert.True(was[i].Program == now[i].Program, $"thread {tid}: filter {i} differs");
                Assert.True(was[i].Flags == now[i].Flags, $"thread {tid}: filter {i} flags 0x{was[i].Flags:x} before, 0x{now[i].Flags:x} after");
            }
        }
    }
}
