using System.Diagnostics;
using Crisp.Cli.Demo;
using Crisp.Dump;
using Crisp.Linux;
using Crisp.Linux.Proc;
using Crisp.Restore;

namespace Crisp.Cli.Commands;

/// <summary>`crisp demo`: the main job end to end. A counter loop runs as a hardened pod would (uid 1000,
/// no capabilities, no_new_privs, a runtime-default seccomp allowlist plus a LOG filter); crisp dumps
/// it (it is gone), restores it (same PID, same credentials and filters) and shows it counting on
/// from where it was, with no gap and no repeat.</summary>
public static class DemoCommand
{
    private static readonly string[] StatusKeys = ["Uid", "Gid", "Groups", "CapEff", "CapBnd", "NoNewPrivs", "Seccomp", "Seccomp_filters"];

    public static int Run(CommandContext ctx)
    {
        var o = ctx.Out;
        var work = Directory.CreateTempSubdirectory("crisp-demo-");
        File.SetUnixFileMode(work.FullName, (UnixFileMode)0x1FF);   // the uid-1000 workload writes here
        string images = Path.Combine(work.FullName, "images");
        string counter = Path.Combine(work.FullName, "counter.txt");
        int pid = 0;
        try
        {
            o.WriteLine("crisp demo: a counter loop run like a hardened pod (uid 1000, all capabilities dropped,");
            o.WriteLine("no_new_privs, runtime-default seccomp allowlist + a LOG-flagged filter)");
            pid = HardenedLauncher.Start("/bin/sh", ["sh", "-c", "i=0; while :; do echo $i >> counter.txt; i=$((i+1)); sleep 0.2; done"], work.FullName);
            WaitFor(() => Numbers(counter).Count >= 5, "the counter to start");
            var before = Status(pid);
            o.WriteLine($"  started pid {pid}: {string.Join(", ", before.Select(kv => $"{kv.Key} {kv.Value}"))}");
            o.WriteLine($"  counting: {string.Join(' ', Numbers(counter).TakeLast(5))}");

            var clock = Stopwatch.StartNew();
            var stats = new Dumper(new DumpOptions { RootPid = pid, ImagesDir = images }, ctx.Log).Run();
            o.WriteLine($"dump: {stats.Tasks} task(s) in {clock.ElapsedMilliseconds} ms, {ImageBytes(images) / 1024} KiB of images in {images}");
            Wait.TryWaitPid(pid, out _, Wait.WALL);   // our child: free its PID (ECHILD if the dump reaped it)
            // Killed tasks that were not our children linger as zombies until init reaps them.
            var pids = Images.ImageDirectory.Open(images).ReadAll<Images.Proto.pstree_entry>(Images.ImageFile.Pstree)
                .SelectMany(e => e.Threads).ToList();
            WaitFor(() => pids.All(p => !Procfs.Host.Exists((int)p)), "the dumped PIDs to be free");
            int lastBefore = Numbers(counter).Last();
            Thread.Sleep(500);
            Check(Numbers(counter).Last() == lastBefore, "the counter stopped while dumped");
            o.WriteLine($"  pid {pid} is gone; the counter stopped at {lastBefore}");

            clock.Restart();
            var tree = new Restorer(new RestoreOptions { ImagesDir = images, Detached = true }, ctx.Log).Run();
            o.WriteLine($"restore: pid {tree.RootPid} back in {clock.ElapsedMilliseconds} ms");
            Check(tree.RootPid == pid, $"restored with the same pid ({tree.RootPid})");
            var after = Status(pid);
            foreach (var key in StatusKeys)
                Check(before[key] == after[key], $"{key} is the same after restore ({before[key]} / {after[key]})");
            o.WriteLine($"  {Procfs.Host.Path(pid, "status")}: {string.Join(", ", StatusKeys.Select(k => $"{k} {after[k]}"))} — as before");
            WaitFor(() => Numbers(counter).Last() >= lastBefore + 5, "the counter to go on");
            var numbers = Numbers(counter);
            Check(numbers.SequenceEqual(Enumerable.Range(0, numbers.Count)), "the numbers go on with no gap and no repeat");
            string beforeDump = string.Join(' ', numbers.Where(n => n > lastBefore - 3 && n <= lastBefore));
            string afterRestore = string.Join(' ', numbers.Where(n => n > lastBefore).Take(5));
            o.WriteLine($"  counting on: {beforeDump} | restored: {afterRestore} … (no gap, no repeat)");
            o.WriteLine("Demo passed.");
            return 0;
        }
        finally
        {
            if (pid > 0 && Signals.Exists(pid))
            {
                Signals.TryKill(pid);
                Wait.TryWaitPid(pid, out _, Wait.WALL);
            }
            work.Delete(recursive: true);
        }
    }

    private static Dictionary<string, string> Status(int pid)
    {
        var status = ProcStatus.Read(pid);
        return StatusKeys.ToDictionary(k => k, k => System.Text.RegularExpressions.Regex.Replace(status[k] ?? "", @"\s+", " "));
    }

    private static List<int> Numbers(string file) =>
        File.Exists(file) ? File.ReadAllLines(file).Where(l => l.Length > 0).Select(int.Parse).ToList() : [];

    private static long ImageBytes(string dir) => new DirectoryInfo(dir).EnumerateFiles().Sum(f => f.Length);

    private static void Check(bool ok, string what)
    {
        if (!ok)
            throw new CrispException($"demo: expected {what}");
    }

    private static void WaitFor(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
                throw new CrispException($"demo: timed out waiting for {what}");
            Thread.Sleep(50);
        }
    }
}
