using System.Text;
using System.Text.RegularExpressions;
using Crisp.Compel.Freezer;
using Crisp.Linux;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Reliability;

/// <summary>Issue #9's resource hygiene: after any dump or restore, successful or not, crisp's target tasks
/// have the same mappings (no scratch page left), the same fds, nobody tracing them, none stopped, the same
/// blocked masks — per thread — and a freezer cgroup is in the state it was found in. The tree: a shell
/// whose child is thr_state (a leader and four threads spinning, in futex, nanosleep and read).</summary>
public class HygieneTests(ITestOutputHelper output)
{
    private const string V1Freezer = "/sys/fs/cgroup/freezer";
    private static readonly string[] FailPoints = ["dump:seized", "dump:memory", "dump:files", "dump:signals", "dump:creds", "dump:images"];

    private sealed class Tree : IDisposable
    {
        public Live.TempDir Dir { get; } = new();
        public int Shell, Worker;
        public int[] Pids => [Shell, Worker];
        public string? Cgroup;

        public void Start()
        {
            string exe = Support.Workloads.Build("thr_state", "-pthread");
            Shell = Live.StartQuiet("/bin/sh", ["sh", "-c", $"{exe} {Dir.Path} & wait"]);
            string ready = Path.Combine(Dir.Path, "ready");
            Live.WaitFor(() => File.Exists(ready), "thr_state's ready file", TimeSpan.FromSeconds(20));
            Worker = int.Parse(File.ReadAllText(ready).Split(' ')[1]);
        }

        public void Dispose()
        {
            if (Cgroup is not null)
            {
                try { CgroupFreezer.Open(Cgroup).Thaw(); } catch (Exception) { }
            }
            Live.KillAll(Pids, Shell);
            if (Cgroup is not null)
            {
                try { Live.WaitFor(() => File.ReadAllText(Path.Combine(Cgroup, "cgroup.procs")).Trim().Length == 0, "the cgroup to empty"); Directory.Delete(Cgroup); }
                catch (Exception) { }
            }
            Dir.Dispose();
        }
    }

    /// <summary>What must be the same before and after: maps, fds (number → target), and per thread the
    /// stop state, tracer and blocked mask. <paramref name="normalise"/> blanks kernel object numbers
    /// (pipe:[123]), which a restore cannot keep.</summary>
    private static string Snapshot(IEnumerable<int> pids, bool normalise = false, bool masks = true)
    {
        var sb = new StringBuilder();
        foreach (int pid in pids)
        {
            sb.Append($"== {pid} maps\n").Append(normalise ? MapsText.Normalized(pid) : File.ReadAllText($"/proc/{pid}/maps"));
            sb.Append($"== {pid} fds\n");
            foreach (var fd in Directory.GetFiles($"/proc/{pid}/fd").Select(f => int.Parse(Path.GetFileName(f))).Order())
            {
                string target;
                try { target = new FileInfo($"/proc/{pid}/fd/{fd}").LinkTarget ?? "?"; }
                catch (IOException) { continue; }
                sb.Append($"{fd} -> {(normalise ? Regex.Replace(target, @"\[\d+\]", "[]") : target)}\n");
            }
            foreach (var task in Directory.GetDirectories($"/proc/{pid}/task").Order())
            {
                var status = File.ReadAllLines(Path.Combine(task, "status")).ToDictionary(l => l[..l.IndexOf(':')], l => l[(l.IndexOf(':') + 1)..].Trim());
                char state = status["State"][0];
                sb.Append($"thread {Path.GetFileName(task)}: {(state is 'T' or 't' ? "stopped" : "not stopped")}, tracer {status["TracerPid"]}{(masks ? $", blocked {status["SigBlk"]}" : "")}\n");
            }
        }
        return sb.ToString();
    }

    /// <summary>Compares, giving the tasks up to 3 s to settle: a task woken from sigsuspend by the seize
    /// shows its saved mask until it re-enters the call (see the frozen case).</summary>
    private void AssertSame(string before, Func<string> now, string what)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        string after = now();
        for (; after != before && clock.Elapsed < TimeSpan.FromSeconds(3); after = now())
            Thread.Sleep(50);
        if (before != after)
        {
            var b = before.Split('\n');
            var a = after.Split('\n');
            string diff = string.Join('\n', b.Except(a).Select(l => "- " + l).Concat(a.Except(b).Select(l => "+ " + l)));
            Assert.Fail($"{what}: the tasks changed:\n{diff}");
        }
        output.WriteLine($"{what}: same{(clock.ElapsedMilliseconds > 40 ? $" (after {clock.ElapsedMilliseconds} ms)" : "")}");
    }

    private static Support.CrispCli.Result Crisp(string? fault, params string[] args) =>
        Live.Crisp(fault is null ? null : new Dictionary<string, string> { [FaultInjection.Variable] = fault }, args);

    [RootFact]
    public void DumpsSuccessfulOrFailedLeaveNoTraceOutsideACgroup()
    {
        using var tree = new Tree();
        tree.Start();
        string before = Snapshot(tree.Pids);
        Assert.DoesNotContain("stopped\n", before.Replace("not stopped", ""));

        var r = Crisp(null, "dump", "-t", tree.Shell.ToString(), "-D", Path.Combine(tree.Dir.Path, "ok"), "-R");
        Assert.True(r.ExitCode == 0, r.Stderr);
        AssertSame(before, () => Snapshot(tree.Pids), "dump -R");

        foreach (string point in FailPoints)
        {
            r = Crisp(point, "dump", "-t", tree.Shell.ToString(), "-D", Path.Combine(tree.Dir.Path, point.Replace(':', '-')));
            Assert.True(r.ExitCode == 1, $"{point}: exit {r.ExitCode}: {r.Stderr}");
            AssertSame(before, () => Snapshot(tree.Pids), $"failed dump at {point}");
        }
    }

    [RootTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void FreezeCgroupDumpsPutTheCgroupBackAndLeaveNoTrace(bool frozen)
    {
        Assert.True(Directory.Exists(V1Freezer), "no v1 freezer hierarchy");
        using var tree = new Tree();
        tree.Start();
        tree.Cgroup = Path.Combine(V1Freezer, $"crisp-hygiene-{Environment.ProcessId}-{tree.Shell}");
        Directory.CreateDirectory(tree.Cgroup);
        foreach (int pid in tree.Pids)
            File.WriteAllText(Path.Combine(tree.Cgroup, "cgroup.procs"), pid.ToString());
        var freezer = CgroupFreezer.Open(tree.Cgroup);
        if (frozen)
            freezer.Freeze(TimeSpan.FromSeconds(10));
        string State() => File.ReadAllText(Path.Combine(tree.Cgroup, "freezer.state")).Trim();
        string want = frozen ? "FROZEN" : "THAWED";
        Assert.Equal(want, State());
        // While frozen, masks are compared only after the thaw: a frozen task in sigsuspend (the shell's
        // wait) that crisp stopped and let go is frozen again on its way back into the call, where
        // SigBlk shows the mask sigsuspend saved; once thawed it is back in sigsuspend with its mask.
        string before = Snapshot(tree.Pids, masks: !frozen), beforeMasks = Snapshot(tree.Pids);

        var r = Crisp(null, "dump", "-t", tree.Shell.ToString(), "-D", Path.Combine(tree.Dir.Path, "ok"), "-R", "--freeze-cgroup", tree.Cgroup);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(want, State());
        AssertSame(before, () => Snapshot(tree.Pids, masks: !frozen), $"dump -R --freeze-cgroup ({want})");

        foreach (string point in new[] { "dump:seized", "dump:memory", "dump:images" })
        {
            r = Crisp(point, "dump", "-t", tree.Shell.ToString(), "-D", Path.Combine(tree.Dir.Path, point.Replace(':', '-')), "--freeze-cgroup", tree.Cgroup);
            Assert.True(r.ExitCode == 1, $"{point}: exit {r.ExitCode}: {r.Stderr}");
            Assert.Equal(want, State());
            AssertSame(before, () => Snapshot(tree.Pids, masks: !frozen), $"failed dump --freeze-cgroup ({want}) at {point}");
        }
        if (frozen)
        {
            freezer.Thaw();
            AssertSame(beforeMasks, () => Snapshot(tree.Pids), "masks after the thaw");
        }
        // The workload still works: its own checks pass once woken.
        RawSyscall.Call("kill", Sysno.kill, tree.Worker, 10);
        Live.WaitFor(() => File.Exists(Path.Combine(tree.Dir.Path, "verdict")), "thr_state's verdict");
        Assert.Equal("PASS", File.ReadAllText(Path.Combine(tree.Dir.Path, "verdict")).Trim());
    }

    /// <summary>A restored tree has exactly the dumped mappings and fds (no puppet page, no transfer socket),
    /// untraced threads with their masks; a failed restore leaves no PID taken and the images untouched.</summary>
    [RootFact]
    public void RestoresSuccessfulOrFailedLeaveNoTrace()
    {
        using var tree = new Tree();
        tree.Start();
        string before = Snapshot(tree.Pids, normalise: true);
        string images = Path.Combine(tree.Dir.Path, "images");
        var r = Crisp(null, "dump", "-t", tree.Shell.ToString(), "-D", images);
        Assert.True(r.ExitCode == 0, r.Stderr);
        var pids = Live.CheckpointPids(images);
        Live.WaitPidsFree(pids, tree.Shell);
        var hashes = Live.Hashes(images);

        r = Crisp("restore:release", "restore", "-D", images, "-d");
        Assert.True(r.ExitCode == 1, $"exit {r.ExitCode}: {r.Stderr}");
        Live.WaitPidsFree(pids);   // nothing left behind: every PID free again (init reaps orphans slowly)
        Assert.Equal(hashes, Live.Hashes(images));
        output.WriteLine("failed restore: no PID left taken, images unchanged");

        r = Crisp(null, "restore", "-D", images, "-d");
        Assert.True(r.ExitCode == 0, r.Stderr);
        AssertSame(before, () => Snapshot(tree.Pids, normalise: true), "restore");
        RawSyscall.Call("kill", Sysno.kill, tree.Worker, 10);
        Live.WaitFor(() => File.Exists(Path.Combine(tree.Dir.Path, "verdict")), "thr_state's verdict");
        Assert.Equal("PASS", File.ReadAllText(Path.Combine(tree.Dir.Path, "verdict")).Trim());
    }
}
