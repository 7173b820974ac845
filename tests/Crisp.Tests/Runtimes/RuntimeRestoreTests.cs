using System.Diagnostics;
using Crisp.Dump;
using Crisp.Linux;
using Crisp.Restore;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Runtimes;

/// <summary>Real language runtimes dumped (killed) and restored: Python 3, the JVM and .NET each number
/// their output lines from a timer thread; after restore the numbering goes on exactly where it stopped
/// (no gap, no repeat) and keeps going, and a thread that was blocked on a lock across the checkpoint is
/// released and runs. (.NET also runs its GC — membarrier — and JIT — memfd double mapping — after restore.)</summary>
public class RuntimeRestoreTests(ITestOutputHelper output)
{
    private const int SIGKILL = 9;

    [RootFact]
    public void Python3ThreadsCarryOn() => CarryOn(RuntimeApps.Python(), cycles: 2);

    [RootFact]
    public void JavaThreadsCarryOn() => CarryOn(RuntimeApps.Java(), cycles: 1);

    [RootFact]
    public void DotNetTimerAndThreadPoolCarryOn() => CarryOn(RuntimeApps.DotNet(), cycles: 2);   // diagnostics IPC listener included

    /// <summary>With --file-locks, as a user must: .NET's FileStream holds a shared flock on files it opens.</summary>
    private void CarryOn((string Exe, string[] Argv) app, int cycles, string[]? env = null)
    {
        string dir = Directory.CreateTempSubdirectory("crisp-rt-").FullName;
        string outFile = Path.Combine(dir, "out");
        File.WriteAllText(outFile, "");
        int pid = Spawn.Start(app.Exe, [.. app.Argv, outFile, dir], new SpawnOptions
        {
            Environment = [.. Environment.GetEnvironmentVariables().Keys.Cast<string>()
                .Select(k => $"{k}={Environment.GetEnvironmentVariable(k)}"), .. env ?? []],
            Opens = [(0, "/dev/null", FileIo.O_RDONLY, 0), (1, "/dev/null", FileIo.O_WRONLY, 0), (2, Path.Combine(dir, "err"), FileIo.O_WRONLY | 0x40, 0x1a4)],
        });
        bool alive = true;
        try
        {
            WaitForTick(outFile, 20, pid, dir);
            for (int cycle = 0; cycle < cycles; cycle++)
            {
                var tids = Directory.GetDirectories($"/proc/{pid}/task").Select(d => int.Parse(Path.GetFileName(d))).ToList();
                string images = Path.Combine(dir, $"images{cycle}");
                Directory.CreateDirectory(images);
                var clock = Stopwatch.StartNew();
                new Dumper(new DumpOptions { RootPid = pid, ImagesDir = images, ShellJob = true, FileLocks = true }, Log.Null).Run();
                var dumpTime = clock.Elapsed;
                try { Spawn.Reap(pid); } catch (SyscallException) { }
                alive = false;
                long atDump = LastTick(outFile);
                Live.WaitPidsFree(tids, within: TimeSpan.FromSeconds(20));
                clock.Restart();
                var tree = new Restorer(new RestoreOptions { ImagesDir = images, ShellJob = true, Detached = true, FileLocks = true }, Log.Null).Run();
                alive = true;
                Assert.Equal(pid, tree.RootPid);
                output.WriteLine($"cycle {cycle}: {tids.Count} threads, dump {dumpTime.TotalMilliseconds:F0} ms, " +
                    $"restore {clock.Elapsed.TotalMilliseconds:F0} ms, last line at dump {atDump}");
                WaitForTick(outFile, atDump + 20, pid, dir);
            }
            Assert.DoesNotContain("released", File.ReadAllText(outFile));
            File.WriteAllText(Path.Combine(dir, "release"), "");
            WaitFor(() => File.ReadAllText(outFile).Contains("released\n"), "the thread blocked on a lock to run", pid, dir);
            WaitForTick(outFile, LastTick(outFile) + 5, pid, dir);
            AssertNumberedWithoutGaps(outFile);
        }
        finally
        {
            if (alive)
            {
                RawSyscall.TryCall(Sysno.kill, pid, SIGKILL);
                try { Spawn.Reap(pid); } catch (SyscallException) { }
            }
            Directory.Delete(dir, recursive: true);
        }
    }

    private static IEnumerable<long> Numbers(string outFile) => File.ReadAllLines(outFile)
        .Where(l => l.Length > 0 && char.IsDigit(l[0])).Select(l => long.Parse(l.Split(' ')[0]));

    private static long LastTick(string outFile) => Numbers(outFile).DefaultIfEmpty(0).Max();

    private static void AssertNumberedWithoutGaps(string outFile)
    {
        long expect = 1;
        foreach (long n in Numbers(outFile))
        {
            Assert.True(n == expect, $"line number {n} where {expect} was due (a gap or repeat around the checkpoint)");
            expect++;
        }
    }

    private static void WaitForTick(string outFile, long tick, int pid, string dir)
        => WaitFor(() => LastTick(outFile) >= tick, $"output line {tick}", pid, dir);

    private static void WaitFor(Func<bool> condition, string what, int pid, string dir)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!condition())
        {
            string err = File.Exists(Path.Combine(dir, "err")) ? File.ReadAllText(Path.Combine(dir, "err")) : "";
            Assert.True(Directory.Exists($"/proc/{pid}") && !File.ReadAllText($"/proc/{pid}/stat").Contains(") Z "),
                $"the runtime died waiting for {what}: {err}");
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}; stderr: {err}");
            Thread.Sleep(20);
        }
    }
}
