using Crisp.Dump;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Integration;

/// <summary>The round trip most resource tests share: a workload started as `NAME DIR ARGS…` in a scratch
/// directory prints "ready PID [PID…]", is dumped and restored in-process (<see cref="Live.Cycle"/>: crit,
/// state diff), then checks its own state on SIGUSR1 and must say PASS. Or its dump must be refused in one
/// line that names the task and leaves it running.</summary>
internal static class WorkloadRoundTrip
{
    /// <summary><paramref name="checkImages"/> sees the image directory and the ready line's pids before the restore.</summary>
    public static void ExpectPass(ITestOutputHelper output, string workload, IReadOnlyList<string> args, Action<string, int[]>? checkImages = null)
    {
        using var dir = new Live.TempDir();
        var (w, pids) = Start(workload, args, dir);
        try
        {
            string images = Path.Combine(dir.Path, "img");
            var tree = Live.Cycle(output, new DumpOptions { RootPid = w.Pid, ImagesDir = images }, pids,
                written => checkImages?.Invoke(written, pids));
            Live.SignalAndExpectPass(w.Pid, dir.Path, () => Live.ExitCodeWithin(tree));
        }
        finally
        {
            Live.KillAll(pids, w.Pid);
        }
    }

    /// <summary>The CLI's dump fails with one line holding "task PID fd " and <paramref name="expected"/>.</summary>
    public static void ExpectRefused(string workload, IReadOnlyList<string> args, string expected)
    {
        using var dir = new Live.TempDir();
        var (w, pids) = Start(workload, args, dir);
        try
        {
            var r = CrispCli.Run("dump", "-t", w.Pid.ToString(), "-D", dir.Images);
            Assert.Equal(1, r.ExitCode);
            FailureSafetyTests.AssertOneLine(r.Stderr, $"task {w.Pid} fd ");
            Assert.Contains(expected.Replace("{testpid}", Environment.ProcessId.ToString()), r.Stderr);
            Assert.True(Directory.Exists($"/proc/{w.Pid}"), "a refused dump must leave the task running");
        }
        finally
        {
            Live.KillAll(pids, w.Pid);
        }
    }

    private static (Workload W, int[] Pids) Start(string workload, IReadOnlyList<string> args, Live.TempDir dir)
    {
        string exe = Support.Workloads.Build(workload);
        var w = Workload.Start(exe, [workload, dir.Path, .. args], dir.Path);
        var words = w.WaitReady($"{workload}'s ready line", p => p.Length >= 2);
        return (w, [.. words[1..].Select(int.Parse)]);
    }
}
