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
        => Live.WithStatecheck((dir, pid, pids) =>
        {
            RunCycle(dir, pid, pids, "cycle1");
            var tree = RunCycle(dir, pid, pids, "cycle2");
            Live.SignalAndExpectPass(pid, dir.Path, () => Live.ExitCodeWithin(tree));
        });

    private RestoredTree RunCycle(Live.TempDir dir, int pid, int[] pids, string name)
    {
        string images = Path.Combine(dir.Path, name);
        return Live.Logged(output, log =>
        {
            var before = TaskStateSnapshot.OfQuietTree(pid);
            var clock = Stopwatch.StartNew();
            var stats = new Dumper(new DumpOptions { RootPid = pid, ImagesDir = images }, log).Run();
            long dumpMs = clock.ElapsedMilliseconds;
            Assert.Equal(2, stats.Tasks);
            Live.WaitPidsFree(pids, pid);
            Live.AssertCritDecodesAll(images);
            clock.Restart();
            var tree = new Restorer(new RestoreOptions { ImagesDir = images, Detached = true }, log).Run();
            output.WriteLine($"{name}: dump {dumpMs} ms, restore {clock.ElapsedMilliseconds} ms, images {Live.Bytes(images) / 1024} KiB");
            Assert.Equal(pid, tree.RootPid);
            StateDiff.AssertRestored(before);
            return tree;
        });
    }
}
