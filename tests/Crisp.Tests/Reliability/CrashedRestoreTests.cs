using System.Diagnostics;
using Crisp.Linux;
using Crisp.Restore;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Reliability;

/// <summary>Issue #9: `crisp restore` killed with SIGKILL at random moments. Puppets are traced with
/// PTRACE_O_EXITKILL, so a restore that dies before it lets the tree go leaves nothing: every PID of the
/// checkpoint is free again. One that dies after leaves the whole tree running, untraced. Never a part
/// of it, never a traced or stopped task; the images stay byte-identical, and a last restore passes the
/// workload's own check.</summary>
public class CrashedRestoreTests(ITestOutputHelper output)
{
    private const int SIGKILL = 9, Kills = 20;

    [RootFact]
    public void RestoresKilledAtRandomMomentsLeaveNothingOrTheWholeTree()
    {
        string exe = Support.Workloads.Build("statecheck");
        using var dir = new Live.TempDir();
        var (pid, child) = Live.StartStatecheck(dir.Path, exe);
        try
        {
            var state = TaskStateSnapshot.OfQuietTree(pid);
            var dump = CrispCli.Run("dump", "-t", pid.ToString(), "-D", dir.Images);
            Assert.True(dump.ExitCode == 0, $"dump: {dump.Stderr}");
            var pids = Live.CheckpointPids(dir.Images);
            Live.WaitPidsFree(pids, pid);
            var hashes = Live.Hashes(dir.Images);

            // When, as this machine runs them now, the root's puppet exists and the restore is over.
            var (born, end) = TimedRestore(dir, pids);
            output.WriteLine($"normal restore: root born after {born:F0} ms, done after {end:F0} ms (process start to exit)");

            var random = new Random();
            var landed = new Dictionary<string, int>();
            for (int i = 0; i < Kills; i++)
            {
                // One in five at any moment before the first puppet; the others once the root's puppet
                // exists, somewhere in the building of the tree.
                bool early = i % 5 == 0;
                double delay = early ? random.NextDouble() * born : random.NextDouble() * (end - born) * 0.4;
                string log = Path.Combine(dir.Path, $"kill{i}.log");
                using var crisp = StartRestore(dir.Images, log);
                if (!early)
                    while (!Directory.Exists($"/proc/{pid}") && !crisp.HasExited)
                        Thread.Sleep(1);
                Thread.Sleep(TimeSpan.FromMilliseconds(delay));
                bool rootExisted = Directory.Exists($"/proc/{pid}");
                RawSyscall.TryCall(Sysno.kill, crisp.Id, SIGKILL);
                crisp.WaitForExit();
                string outcome = Outcome(pids, $"kill {i} {delay:F0} ms after {(early ? "the start" : "the root's birth")}");
                string where = File.Exists(log) && File.ReadAllText(log).Contains("restored ") ? "after the restore"
                    : rootExisted ? "while the tree was being built" : "before the first puppet";
                landed[$"{where}: {outcome}"] = landed.GetValueOrDefault($"{where}: {outcome}") + 1;
                if (outcome == "whole tree running")
                {
                    // restore -d leaves the root a child of crisp, so crisp's death re-parents it to init;
                    // every other task must still be its own parent's child.
                    var settled = StateDiff.Settled(state, ReparentedRoot);
                    StateDiff.AssertSame(state, settled, ReparentedRoot, $"after kill {i}, the whole tree running");
                    foreach (var (key, parent) in state.Facts.Where(f => f.Key.File == "status" && f.Key.Field == "PPid" && f.Key.Task != pid.ToString()))
                        Assert.Equal(parent, settled.Facts.GetValueOrDefault(key));
                    Live.KillAll(pids);
                }
            }
            // A kill between spawning the first puppet and seizing it leaves that puppet untraced: it must
            // sleep and end by itself, never spin on (one once burnt a core for the rest of a CI run).
            Live.WaitFor(() => OrphanPuppets().Count == 0, "orphaned puppets to end by themselves",
                TimeSpan.FromSeconds(Crisp.Compel.Puppets.PuppetElf.UnseizedLifetimeSeconds + 15));
            string summary = $"{Kills} restores killed: " + string.Join(", ", landed.OrderBy(kv => kv.Key).Select(kv => $"{kv.Value} {kv.Key}"));
            output.WriteLine(summary);
            Console.WriteLine(summary);
            // Untouched; a restore that got through adds only its stats-restore (CRIU's work-dir file).
            var after = Live.Hashes(dir.Images);
            Assert.Equal(hashes, after.Where(kv => hashes.ContainsKey(kv.Key)).ToDictionary());
            Assert.Empty(after.Keys.Except(hashes.Keys).Except(["stats-restore"]));
            Assert.True(landed.Where(kv => kv.Key.StartsWith("while the tree was being built")).Sum(kv => kv.Value) >= 3,
                $"too few kills landed inside the restore to tell anything: {summary}");

            // The images still restore, and the restored workload passes its own check.
            var tree = new Restorer(new RestoreOptions { ImagesDir = dir.Images, Detached = true }, Log.Null).Run();
            Assert.Equal(pid, tree.RootPid);
            StateDiff.AssertRestored(state);
            Live.SignalAndExpectPass(pid, dir.Path, () => Live.ExitCodeWithin(tree));
        }
        finally
        {
            Live.KillAll([pid, child], pid);
        }
    }

    private static readonly StateAllowList ReparentedRoot = StateAllowList.Default.With(
        new("stat", "ppid", "the root of a detached restore is re-parented when crisp dies"),
        new("status", "PPid", "the root of a detached restore is re-parented when crisp dies"));

    /// <summary>After crisp's death: every PID free ("nothing left") or every task there, untraced and
    /// not stopped ("whole tree running"); anything else fails, naming what is left.</summary>
    private static string Outcome(List<int> pids, string when)
    {
        string state = "";
        try
        {
            Live.WaitFor(() =>
            {
                var present = pids.Where(p => Directory.Exists($"/proc/{p}")).ToList();
                if (present.Count == 0)
                    return (state = "nothing left") != "";
                // Twice, 50 ms apart: a task on its way out can look running for a moment.
                if (present.Count == pids.Count && present.All(Healthy))
                {
                    Thread.Sleep(50);
                    if (pids.All(Healthy))
                        return (state = "whole tree running") != "";
                }
                state = string.Join(", ", present.Select(Describe));
                return false;
            }, "nothing or the whole tree", TimeSpan.FromSeconds(20));
        }
        catch (TimeoutException)
        {
            Assert.Fail($"{when}: part of the tree is left: {state}");
        }
        return state;
    }

    /// <summary>crisp-puppet processes whose parent is gone (re-parented to PID 1).</summary>
    private static List<int> OrphanPuppets() => Directory.EnumerateDirectories("/proc")
        .Select(d => int.TryParse(Path.GetFileName(d), out int p) ? p : 0).Where(p => p > 0)
        .Where(p =>
        {
            try
            {
                return IsPuppet(p) && File.ReadAllLines($"/proc/{p}/status").Any(l => l == "PPid:\t1");
            }
            catch (IOException) { return false; }
        }).ToList();

    /// <summary>A crisp puppet: its comm is the memfd's fd number; argv[0] names it.</summary>
    private static bool IsPuppet(int pid) => File.ReadAllText($"/proc/{pid}/cmdline") == "crisp-puppet\0";

    private static bool Healthy(int pid)
    {
        try
        {
            var status = File.ReadAllLines($"/proc/{pid}/status");
            string Field(string name) => status.First(l => l.StartsWith(name + ":"))[(name.Length + 1)..].Trim();
            // A puppet that EXITKILL has just hit is untraced and may still be running on its way out:
            // SIGKILL pending (bit 8 of SigPnd or ShdPnd) means it is dying, not running.
            bool killed = ((Convert.ToUInt64(Field("SigPnd"), 16) | Convert.ToUInt64(Field("ShdPnd"), 16)) & (1UL << (SIGKILL - 1))) != 0;
            // Once the SIGKILL is taken the task is exiting (PF_EXITING, 0x4 in stat's flags) with nothing
            // pending; a puppet never seized is not a restored task either.
            bool exiting = (Crisp.Linux.Proc.ProcStat.Read(pid).Flags & 0x4) != 0;
            return Field("TracerPid") == "0" && Field("State")[0] is 'S' or 'R' && !killed && !exiting && !IsPuppet(pid);
        }
        catch (IOException) { return false; }
        catch (InvalidOperationException) { return false; }
    }

    private static string Describe(int pid)
    {
        try
        {
            var status = File.ReadAllLines($"/proc/{pid}/status").Where(l => l.StartsWith("State") || l.StartsWith("TracerPid")).Select(l => l.Replace('\t', ' '));
            return $"{pid} ({string.Join(", ", status)})";
        }
        catch (IOException) { return $"{pid} (gone)"; }
    }

    /// <summary>A whole `restore -d`: ms from start until the root's PID exists, ms until crisp exits.</summary>
    private static (double Born, double End) TimedRestore(Live.TempDir dir, List<int> pids)
    {
        var clock = Stopwatch.StartNew();
        using var crisp = StartRestore(dir.Images, Path.Combine(dir.Path, "timed.log"));
        double born = -1;
        while (!crisp.HasExited)
        {
            if (born < 0 && Directory.Exists($"/proc/{pids[0]}"))
                born = clock.Elapsed.TotalMilliseconds;
            Thread.Sleep(1);
        }
        crisp.WaitForExit();
        double end = clock.Elapsed.TotalMilliseconds;
        Assert.True(crisp.ExitCode == 0, $"restore: {File.ReadAllText(Path.Combine(dir.Path, "timed.log"))}");
        Live.KillAll(pids);
        return (born < 0 ? end / 2 : born, end);
    }

    private static Process StartRestore(string images, string log)
    {
        var psi = new ProcessStartInfo(CrispCli.Exe) { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in new[] { "restore", "-D", images, "-d", "-v4", "-o", log })
            psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        p.StandardOutput.ReadToEndAsync();
        p.StandardError.ReadToEndAsync();
        return p;
    }
}
