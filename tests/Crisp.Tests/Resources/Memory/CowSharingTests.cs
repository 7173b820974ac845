using Crisp.Dump;
using Crisp.Linux;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Resources.Memory;

/// <summary>Pages a parent and its forked child share copy-on-write at dump are shared again after restore (the
/// same page frames in both tasks' /proc/PID/pagemap), the child's own pages are its own, and a write in either task
/// after restore stays private to it (tests/workloads/cow_share.c checks its data and that). A dump --leave-running
/// leaves the sharing of the running tree as it was.</summary>
[Collection("compel")]
public sealed class CowSharingTests(ITestOutputHelper output)
{
    private const int MiB = 64, Changed = 8;

    [RootFact]
    public void PagesSharedWithAForkedChildStaySharedAcrossTwoRoundTrips()
    {
        using var dir = new Live.TempDir();
        string exe = Support.Workloads.Build("cow_share");
        var w = Workload.Start(exe, [exe, MiB.ToString()], dir.Path);
        var ready = w.WaitReady("cow_share's ready line", p => p.Length == 5);
        int parent = int.Parse(ready[1]), child = int.Parse(ready[2]);
        ulong area = Convert.ToUInt64(ready[3], 16);
        int pages = int.Parse(ready[4]);
        int[] pids = [parent, child];
        Assert.Equal(w.Pid, parent);
        Crisp.Restore.RestoredTree? tree = null;
        try
        {
            // The original tree shares every page the child did not rewrite: what the restore must give back.
            var before = Frames(parent, child, area, pages);
            output.WriteLine($"before: {before}");
            Assert.Equal((pages - Changed, Changed), (before.Same, before.Different));

            // A dump that leaves the tree running must not have copied the shared pages while reading them.
            string kept = Path.Combine(dir.Path, "images-leave-running");
            Directory.CreateDirectory(kept, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            Live.Logged(output, log => { new Dumper(new DumpOptions { RootPid = parent, ImagesDir = kept, LeaveRunning = true }, log).Run(); return 0; });
            var running = Frames(parent, child, area, pages);
            output.WriteLine($"after dump --leave-running: {running}");
            Assert.Equal((pages - Changed, Changed), (running.Same, running.Different));
            // Back in sigsuspend (the cycle's state snapshot is taken next).
            Live.WaitFor(() => pids.All(p => Sleeping(p)), "the tree to sleep again after the dump");

            for (int round = 1; round <= 2; round++)
            {
                string images = Path.Combine(dir.Path, $"images-{round}");
                Directory.CreateDirectory(images, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
                tree = Live.Cycle(output, new DumpOptions { RootPid = parent, ImagesDir = images }, pids);
                var after = Frames(parent, child, area, pages);
                output.WriteLine($"after round {round}: {after}; parent {Pss(parent)}, child {Pss(child)}");
                Assert.Equal((pages - Changed, Changed), (after.Same, after.Different));
                // stats-restore counts them as CRIU does: compared, skipped (left shared), not restored.
                Assert.InRange(tree.Counters.PagesSkippedCow, pages - Changed, tree.Counters.PagesCompared);
            }

            Crisp.Linux.Signals.Kill(parent, Live.SIGUSR1);
            int rc = Live.ExitCodeWithin(tree!);
            Assert.True(rc == 0, $"cow_share exited {rc}; out:\n{w.Out}\nerr:\n{w.Err}");
            Assert.Contains("PASS", w.Out);
        }
        finally
        {
            Live.KillAll(pids, parent);
        }
    }

    /// <summary>Over the area: pages present in both tasks on the same frame, and present in both on different frames.</summary>
    private static (int Same, int Different) Frames(int a, int b, ulong area, int pages)
    {
        var fa = Pfns(a, area, pages);
        var fb = Pfns(b, area, pages);
        int same = 0, different = 0;
        for (int i = 0; i < pages; i++)
        {
            if (fa[i] == 0 || fb[i] == 0)
                continue;
            if (fa[i] == fb[i])
                same++;
            else
                different++;
        }
        return (same, different);
    }

    /// <summary>Page frame numbers (0: not present) from /proc/PID/pagemap (root sees them).</summary>
    private static ulong[] Pfns(int pid, ulong area, int pages)
    {
        var raw = new byte[pages * 8];
        using (var f = File.OpenHandle($"/proc/{pid}/pagemap"))
            Assert.Equal(raw.Length, RandomAccess.Read(f, raw, (long)(area / 4096 * 8)));
        var pfns = new ulong[pages];
        for (int i = 0; i < pages; i++)
        {
            ulong e = BitConverter.ToUInt64(raw, i * 8);
            pfns[i] = (e & (1UL << 63)) != 0 ? e & ((1UL << 55) - 1) : 0;
        }
        return pfns;
    }

    private static bool Sleeping(int pid) => File.ReadAllText($"/proc/{pid}/stat").Split(") ")[1].StartsWith('S');

    private static string Pss(int pid) =>
        string.Join(", ", File.ReadAllLines($"/proc/{pid}/smaps_rollup").Where(l => l.StartsWith("Rss:") || l.StartsWith("Pss:"))
            .Select(l => string.Join(' ', l.Split(' ', StringSplitOptions.RemoveEmptyEntries))));
}
