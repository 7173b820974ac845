using Crisp.Dump;
using Crisp.Restore;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Integration;

/// <summary>A fault injected at any step (CRISP_FAULT, through the real CLI): a dump fails with one line and
/// leaves the tree running exactly as it was; a restore fails, leaves no task behind and never touches
/// the image directory.</summary>
public class FailureSafetyTests(ITestOutputHelper output)
{
    public static IEnumerable<string> DumpPoints =>
        new[] { "seized" }.Concat(Dumper.Stages.Select(s => s.Name)).Append("images").Select(s => "dump:" + s);

    public static IEnumerable<string> RestorePoints =>
        new[] { "puppets" }.Concat(Restorer.Stages.Select(s => s.Name)).Append("release").Select(s => "restore:" + s);

    [RootFact]
    public void FailedDumpAtEveryStageLeavesTheTreeAsItWas()
        => Live.WithStatecheck((dir, pid, pids) =>
        {
            var before = pids.ToDictionary(p => p, Snapshot);
            var state = TaskStateSnapshot.OfQuietTree(pid);
            foreach (string point in DumpPoints)
            {
                string images = Path.Combine(dir.Path, point.Replace(':', '-'));
                var r = Live.Crisp(new Dictionary<string, string> { [FaultInjection.Variable] = point },
                    "dump", "-t", pid.ToString(), "-D", images);
                output.WriteLine($"{point}: exit {r.ExitCode}: {r.Stderr.Trim()}");
                Assert.True(r.ExitCode == 1, $"{point}: exit {r.ExitCode}; stderr:\n{r.Stderr}");
                AssertOneLine(r.Stderr, $"fault injected at {point}");
                foreach (int p in pids)
                {
                    var status = Status(p);
                    Assert.True(status["TracerPid"] == "0", $"{point}: {p} still traced by {status["TracerPid"]}");
                    Assert.True(status["State"][0] is 'S' or 'R', $"{point}: {p} is {status["State"]}");
                    var now = Snapshot(p);
                    Assert.True(before[p] == now, $"{point}: {p} changed.\nbefore:\n{before[p]}\nafter:\n{now}");
                }
                StateDiff.AssertRestored(state, when: $"after the dump failed at {point}");
            }
            Live.SignalAndExpectPass(pid, dir.Path, () => Live.ReapWithin(pid).ExitCode);
        });

    [RootFact]
    public void FailedRestoreAtEveryStageLeavesNothingAndKeepsTheImages()
        => Live.WithStatecheck((dir, pid, pids) =>
        {
            var state = TaskStateSnapshot.OfQuietTree(pid);
            new Dumper(new DumpOptions { RootPid = pid, ImagesDir = dir.Images }, Log.Null).Run();
            Live.WaitPidsFree(pids, pid);
            var hashes = Live.Hashes(dir.Images);
            foreach (string point in RestorePoints)
            {
                var r = Live.Crisp(new Dictionary<string, string> { [FaultInjection.Variable] = point },
                    "restore", "-d", "-D", dir.Images);
                output.WriteLine($"{point}: exit {r.ExitCode}: {r.Stderr.Trim()}");
                Assert.True(r.ExitCode == 1, $"{point}: exit {r.ExitCode}; stderr:\n{r.Stderr}");
                AssertOneLine(r.Stderr, $"fault injected at {point}");
                Live.WaitPidsFree(pids);   // every puppet killed (init reaps them once crisp is gone)
                Assert.Equal(hashes, Live.Hashes(dir.Images));
            }
            // The images are still good: a plain restore passes the workload's checks.
            var tree = new Restorer(new RestoreOptions { ImagesDir = dir.Images, Detached = true }, Log.Null).Run();
            StateDiff.AssertRestored(state);
            Live.SignalAndExpectPass(tree.RootPid, dir.Path, () => Live.ExitCodeWithin(tree));
        });

    internal static void AssertOneLine(string stderr, string expected)
    {
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, $"expected one line on stderr, got {lines.Length}:\n{stderr}");
        Assert.Contains(expected, lines[0]);
        Assert.DoesNotContain("   at ", stderr);
    }

    private static Dictionary<string, string> Status(int pid) =>
        File.ReadAllLines($"/proc/{pid}/status").Where(l => l.Contains(':'))
            .ToDictionary(l => l[..l.IndexOf(':')], l => l[(l.IndexOf(':') + 1)..].Trim());

    /// <summary>What a failed dump must not change: the mappings and the signal state.</summary>
    private static string Snapshot(int pid)
    {
        var s = Status(pid);
        return File.ReadAllText($"/proc/{pid}/maps") +
            string.Join('\n', new[] { "SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt", "Seccomp", "NoNewPrivs" }.Select(k => $"{k}: {s[k]}"));
    }
}
