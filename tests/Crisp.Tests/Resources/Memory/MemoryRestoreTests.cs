using Crisp.Tests.Integration;
using System.Diagnostics;
using Crisp.Dump;
using Crisp.Linux;
using Crisp.Restore;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Resources.Memory;

[Collection("compel")]
public sealed class MemoryRestoreTests(ITestOutputHelper output)
{
    /// <summary>dump --leave-running reads the pages straight into its spool, on two threads in turn (issue 18, freeze
    /// time): 16 MiB beside mem_check's heap, sparse, read-only and PROT_NONE pages (the last read through /proc/PID/mem
    /// into the spool) must come back whole from the images the spool drained into.</summary>
    [RootFact]
    public void LeaveRunningDumpReadStraightIntoItsSpoolRestoresEveryPage()
    {
        using var w = MemWorkload.Start(bigMiB: 16);
        string maps = MapsText.Normalized(w.Pid);
        var logText = new StringWriter();
        new Dumper(new DumpOptions { RootPid = w.Pid, ImagesDir = w.ImagesDir, LeaveRunning = true }, new Log(logText, 4)).Run();
        Assert.Contains("page spool:", logText.ToString());
        Assert.Contains("tree released after", logText.ToString());
        Assert.True(Directory.Exists($"/proc/{w.Pid}"), "the workload runs on after dump -R");
        int waits = w.WaitingCount;
        RawSyscall.Call("kill", Sysno.kill, w.Pid, 9);
        Spawn.Reap(w.Pid);
        w.WaitGone();

        RestoreAndCheck(w, _ =>
        {
            Assert.Equal(maps, MapsText.Normalized(w.Pid));
            w.WaitUntil(() => w.WaitingCount > waits, "waiting again after restore");
        });
    }

    /// <summary>Restores the workload detached and runs <paramref name="checks"/> on it (the tree killed if one fails),
    /// then has the workload check every pattern and exit 0.</summary>
    private static void RestoreAndCheck(MemWorkload w, Action<RestoredTree> checks)
    {
        var tree = new Restorer(new RestoreOptions { ImagesDir = w.ImagesDir, Detached = true }, Log.Null).Run();
        try
        {
            checks(tree);
        }
        catch
        {
            RawSyscall.TryCall(Sysno.kill, tree.RootPid, 9);
            Live.ExitCodeWithin(tree);
            throw;
        }
        w.Signal(MemWorkload.SIGUSR1);
        Assert.Equal(0, Live.ExitCodeWithin(tree));
    }

    [RootFact]
    public void DumpThenRestoreGivesBackTheSameAddressSpaceAndTheWorkloadPasses()
    {
        using var w = MemWorkload.Start();
        string maps = MapsText.Normalized(w.Pid);
        string exe = File.ResolveLinkTarget($"/proc/{w.Pid}/exe", false)!.FullName;
        byte[] cmdline = File.ReadAllBytes($"/proc/{w.Pid}/cmdline");
        byte[] environ = File.ReadAllBytes($"/proc/{w.Pid}/environ");
        var before = TaskStateSnapshot.OfQuietTree(w.Pid);

        new Dumper(new DumpOptions { RootPid = w.Pid, ImagesDir = w.ImagesDir }, Log.Null).Run();
        w.WaitGone();

        RestoreAndCheck(w, tree =>
        {
            Assert.Equal(w.Pid, tree.RootPid);
            Assert.Equal(maps, MapsText.Normalized(w.Pid));
            Assert.Equal(exe, File.ResolveLinkTarget($"/proc/{w.Pid}/exe", false)!.FullName);
            Assert.Equal(cmdline, File.ReadAllBytes($"/proc/{w.Pid}/cmdline"));
            Assert.Equal(environ, File.ReadAllBytes($"/proc/{w.Pid}/environ"));
            StateDiff.AssertRestored(before);
            w.WaitUntil(() => w.WaitingCount >= 2, "waiting again after restore");
        });
    }

    [RootFact]
    public void ThroughputOf256MiBPopulatedAnonymousMemory()
    {
        const int MiB = 256;
        using var w = MemWorkload.Start(MiB);
        var clock = Stopwatch.StartNew();
        new Dumper(new DumpOptions { RootPid = w.Pid, ImagesDir = w.ImagesDir }, Log.Null).Run();
        double dumpS = clock.Elapsed.TotalSeconds;
        w.WaitGone();
        long bytes = Directory.GetFiles(w.ImagesDir, "pages-*.img").Sum(f => new FileInfo(f).Length);

        clock.Restart();
        var tree = new Restorer(new RestoreOptions { ImagesDir = w.ImagesDir, Detached = true }, Log.Null).Run();
        double restoreS = clock.Elapsed.TotalSeconds;
        w.WaitUntil(() => w.WaitingCount >= 2, "waiting again after restore");
        w.Signal(MemWorkload.SIGUSR1);
        Assert.Equal(0, Live.ExitCodeWithin(tree));

        string line = $"memory throughput: {bytes >> 20} MiB of pages; dump {bytes / 1e6 / dumpS:F0} MB/s ({dumpS * 1000:F0} ms whole dump), " +
            $"restore {bytes / 1e6 / restoreS:F0} MB/s ({restoreS * 1000:F0} ms whole restore)";
        output.WriteLine(line);
        Console.WriteLine(line);
    }
}
