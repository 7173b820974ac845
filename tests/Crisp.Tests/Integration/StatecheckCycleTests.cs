using System.Diagnostics;
using Crisp.Dump;
using Crisp.Restore;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Integration;

/// <summary>statecheck (a parent and a child holding ~50 kinds of state) dumped and restored twice in a
/// row; after each restore its own checks must pass, and crit must decode every image written.</summary>
public class StatecheckCycleTests(ITestOutputHelper output)
{
    [RootFact]
    public void PassesAfterTwoDumpRestoreCycles()
    {
        string exe = Support.Workloads.Build("statecheck");
        using var dir = new Live.TempDir();
        var (pid, child) = Live.StartStatecheck(dir.Path, exe);
        int[] pids = [pid, child];
        try
        {
            RunCycle(dir, pid, pids, "cycle1");
            var tree = RunCycle(dir, pid, pids, "cycle2");
            Live.SignalAndExpectPass(pid, dir.Path, tree.WaitForExit);
        }
        finally
        {
            Live.KillAll(pids, pid);
        }
    }

    private RestoredTree RunCycle(Live.TempDir dir, int pid, int[] pids, string name)
    {
        string images = Path.Combine(dir.Path, name);
        var log = new StringWriter();
        try
        {
            var clock = Stopwatch.StartNew();
            var stats = new Dumper(new DumpOptions { RootPid = pid, ImagesDir = images }, new Log(log, 4)).Run();
            long dumpMs = clock.ElapsedMilliseconds;
            Assert.Equal(2, stats.Tasks);
            Live.WaitPidsFree(pids, pid);
            Live.AssertCritDecodesAll(images);
            clock.Restart();
            var tree = new Restorer(new RestoreOptions { ImagesDir = images, Detached = true }, new Log(log, 4)).Run();
            output.WriteLine($"{name}: dump {dumpMs} ms, restore {clock.ElapsedMilliseconds} ms, images {Live.Bytes(images) / 1024} KiB");
            Assert.Equal(pid, tree.RootPid);
            return tree;
        }
        catch
        {
            output.WriteLine(log.ToString());
            throw;
        }
    }
}
