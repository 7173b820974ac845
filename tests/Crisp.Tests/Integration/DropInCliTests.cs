using System.Text.Json;
using Crisp.Images;
using Crisp.Linux;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Integration;

/// <summary>crisp called exactly as a harness calls criu (issue #10): long option spellings, a restored
/// root that is the caller's own child (--restore-sibling), stats-dump consistent with pages-*.img,
/// action scripts, --status-fd and --timeout.</summary>
public class DropInCliTests(ITestOutputHelper output)
{
    [RootFact]
    public void HarnessCommandLinesDumpAndRestoreAsSiblingAndTheWorkloadPasses()
        => Live.WithStatecheck((dir, pid, pids) =>
        {
            string images = dir.Images, pidfile = Path.Combine(dir.Path, "restored.pid");
            var state = TaskStateSnapshot.OfQuietTree(pid);
            var dump = CrispCli.Run("dump", "--no-default-config", "--log-file", "dump.log", "--images-dir", images,
                "--verbosity=4", "--tree", pid.ToString(), "--timeout", "10");
            Assert.True(dump.ExitCode == 0, $"dump: {dump.Stderr}");
            Assert.Equal("", dump.Stderr);
            Assert.Contains("Dumping finished successfully", File.ReadAllText(Path.Combine(images, "dump.log")));
            Live.WaitPidsFree(pids, pid);
            AssertStatsMatchPages(images, pids);

            var restore = CrispCli.Run("restore", "--no-default-config", "--log-file", "restore.log", "--images-dir", images,
                "--verbosity=4", "--restore-sibling", "--restore-detached", "--pidfile", pidfile);
            Assert.True(restore.ExitCode == 0, $"restore: {restore.Stderr}\n{File.ReadAllText(Path.Combine(images, "restore.log"))}");
            Assert.Equal($"{pid}\n", File.ReadAllText(pidfile));
            // A sibling of crisp: its parent is the process that ran crisp, i.e. this test.
            Assert.Equal(Environment.ProcessId, global::Crisp.Linux.Proc.ProcStat.Read(pid).PPid);
            Assert.Equal(pid, global::Crisp.Linux.Proc.ProcStat.Read(pids[1]).PPid);
            Assert.Equal("0", Status(pid, "TracerPid"));
            StateDiff.AssertRestored(state);
            var stats = CritShow(Path.Combine(images, "stats-restore")).GetProperty("restore");
            Assert.True(stats.GetProperty("restore_time").GetUInt32() > 0);
            Assert.True(stats.GetProperty("forking_time").GetUInt32() > 0);

            Live.SignalAndExpectPass(pid, dir.Path, () =>
            {
                var status = Live.ReapWithin(pid);   // ours to reap: it is our child now
                return status.Signaled ? 128 + status.TermSignal : status.ExitCode;
            });
        });

    /// <summary>pages_written (and shpages_written) are exactly the PE_PRESENT pages of the pagemaps, which
    /// are exactly the pages pages-*.img hold.</summary>
    private void AssertStatsMatchPages(string images, int[] pids)
    {
        var d = CritShow(Path.Combine(images, "stats-dump")).GetProperty("dump");
        output.WriteLine(d.ToString());
        long written = d.GetProperty("pages_written").GetInt64(), shared = d.GetProperty("shpages_written").GetInt64();
        var dir = ImageDirectory.Open(images);
        long taskPages = pids.Sum(p => { using var m = dir.OpenPagemap(p); return m.PresentPages; });
        long shmemPages = dir.List().Where(f => f.File?.Kind == ImageKind.ShmemPagemap)
            .Sum(f => { using var m = dir.OpenPagemap(f.File!.Value); return m.PresentPages; });
        long inFiles = Directory.EnumerateFiles(images, "pages-*.img").Sum(f => new FileInfo(f).Length) / PagemapWriter.PageSize;
        Assert.True(written > 0);
        Assert.Equal(taskPages, written);
        Assert.Equal(shmemPages, shared);
        Assert.Equal(inFiles, written + shared);
        Assert.True(d.GetProperty("pages_scanned").GetInt64() >= written);
        Assert.Equal(0, d.GetProperty("pages_skipped_parent").GetInt64());
        Assert.True(d.GetProperty("frozen_time").GetUInt32() >= d.GetProperty("memdump_time").GetUInt32());
        Assert.True(d.GetProperty("memdump_time").GetUInt32() >= d.GetProperty("memwrite_time").GetUInt32());
        Assert.True(d.GetProperty("freezing_time").GetUInt32() > 0);
    }

    [RootFact]
    public void DisplayStatsPrintsWhatStatsDumpHolds()
        => WithSleeper((dir, pid) =>
        {
            var dump = CrispCli.Run("dump", "-t", pid.ToString(), "-D", dir.Images, "--display-stats", "-W", dir.Path);
            Assert.True(dump.ExitCode == 0, dump.Stderr);
            Live.WaitPidsFree([pid], pid);
            // -W: stats go to the work dir, not the images dir.
            Assert.False(File.Exists(Path.Combine(dir.Images, "stats-dump")));
            var d = CritShow(Path.Combine(dir.Path, "stats-dump")).GetProperty("dump");
            var lines = dump.Stdout.Split('\n');
            Assert.Equal("Displaying dump stats:", lines[0]);
            ulong written = d.GetProperty("pages_written").GetUInt64();
            Assert.Contains($"Memory pages written: {written} (0x{written:x})", lines);
            Assert.Contains($"Frozen time: {d.GetProperty("frozen_time").GetUInt32()} us", lines);
        });

    [RootFact]
    public void ActionScriptsRunInCriusOrderWithCriusEnvironment()
        => WithSleeper((dir, pid) =>
        {
            string script = WriteHook(dir.Path);
            DumpSleeper(dir, pid, "--action-script", script);
            var restore = CrispCli.Run("restore", "-d", "-D", dir.Images, "--action-script=" + script);
            Assert.True(restore.ExitCode == 0, restore.Stderr);
            string img = Path.GetFullPath(dir.Images);
            Assert.Equal(
            [
                $"pre-dump {pid} {img}", $"post-dump {pid} {img}",
                $"pre-restore none {img}", $"post-restore {pid} {img}", $"pre-resume {pid} {img}", $"post-resume {pid} {img}",
            ], HookLog(dir.Path));
            Assert.Equal("0", Status(pid, "TracerPid"));
        }, reapOurChild: false);

    [RootFact]
    public void FailingPreDumpLeavesTheTreeUntouched()
        => WithSleeper((dir, pid) =>
        {
            string script = WriteHook(dir.Path, failAt: "pre-dump");
            var state = TaskStateSnapshot.OfQuietTree(pid);
            var dump = CrispCli.Run("dump", "-t", pid.ToString(), "-D", dir.Images, "--action-script", script);
            Assert.Equal(1, dump.ExitCode);
            Assert.Contains("pre-dump script failed with exit code 5", dump.Stderr);
            Assert.Equal([$"pre-dump {pid} {Path.GetFullPath(dir.Images)}"], HookLog(dir.Path));
            Assert.False(Directory.Exists(dir.Images), "the images dir crisp made for the failed dump is still there");
            AssertRunsUntraced(pid);
            StateDiff.AssertRestored(state, when: "after the failed pre-dump script");
        });

    [RootFact]
    public void FailingPostDumpResumesTheTreeAndExitsWithTheScriptsCode()
        => WithSleeper((dir, pid) =>
        {
            string script = WriteHook(dir.Path, failAt: "post-dump");
            var state = TaskStateSnapshot.OfQuietTree(pid);
            var dump = CrispCli.Run("dump", "-t", pid.ToString(), "-D", dir.Images, "--action-script", script);
            Assert.Equal(5, dump.ExitCode);   // CRIU: the post-dump script's exit code is the dump's
            Assert.Equal("crisp: error: post-dump script failed with exit code 5", dump.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries)[^1]);
            AssertRunsUntraced(pid);
            Assert.False(File.Exists(Path.Combine(dir.Images, "stats-dump")));
            StateDiff.AssertRestored(state, when: "after the failed post-dump script");
        });

    [RootFact]
    public void FailingPostRestoreLeavesNothingAndImagesUntouched()
        => WithSleeper((dir, pid) =>
        {
            string script = WriteHook(dir.Path, failAt: "post-restore");
            DumpSleeper(dir, pid);
            var hashes = Live.Hashes(dir.Images);
            var restore = CrispCli.Run("restore", "-d", "-D", dir.Images, "--action-script", script);
            Assert.Equal(1, restore.ExitCode);
            Assert.Contains("post-restore script failed with exit code 5", restore.Stderr);
            Live.WaitFor(() => !Directory.Exists($"/proc/{pid}"), "the half-restored root to be gone");
            Assert.Equal(hashes, Live.Hashes(dir.Images));
            Assert.DoesNotContain(HookLog(dir.Path), l => l.StartsWith("pre-resume"));
        }, reapOurChild: false);

    [RootFact]
    public void FailedSiblingRestoreLeavesOnlyTheKilledRootForTheCallerToReap()
        => WithSleeper((dir, pid) =>
        {
            string script = WriteHook(dir.Path, failAt: "post-restore");
            DumpSleeper(dir, pid);
            var restore = CrispCli.Run("restore", "-d", "-S", "-D", dir.Images, "--action-script", script, "--pidfile", "p");
            Assert.Equal(1, restore.ExitCode);
            // The root was made as our child (crisp's sibling), so only we can reap it: killed, never resumed.
            var status = Live.ReapWithin(pid);
            Assert.True(status.Signaled && status.TermSignal == Live.SIGKILL, $"root ended with {status.Raw:x}");
            Assert.False(Directory.Exists($"/proc/{pid}"));
            Assert.False(File.Exists(Path.Combine(dir.Images, "p")));
        }, reapOurChild: false);

    [RootFact]
    public void RelativePidfileAndLogGoToTheWorkDir()
        => WithSleeper((dir, pid) =>
        {
            string work = Path.Combine(dir.Path, "work");
            Directory.CreateDirectory(work);
            DumpSleeper(dir, pid, "-W", work, "-o", "d.log");
            var restore = CrispCli.Run("restore", "-d", "-D", dir.Images, "-W", work, "-o", "r.log", "--pidfile", "root.pid");
            Assert.True(restore.ExitCode == 0, restore.Stderr);
            Assert.Equal($"{pid}\n", File.ReadAllText(Path.Combine(work, "root.pid")));
            Assert.True(File.Exists(Path.Combine(work, "d.log")) && File.Exists(Path.Combine(work, "r.log")));
            Assert.True(File.Exists(Path.Combine(work, "stats-dump")) && File.Exists(Path.Combine(work, "stats-restore")));
            Assert.Empty(Directory.EnumerateFiles(dir.Images, "*.log"));
        }, reapOurChild: false);

    [RootFact]
    public void StatusFdGetsOneZeroByteOnceTheRestoredTreeRuns()
        => WithSleeper((dir, pid) =>
        {
            string dumpStatus = Path.Combine(dir.Path, "dump.status"), restoreStatus = Path.Combine(dir.Path, "restore.status");
            var dump = Shell($"{CrispExe()} dump -t {pid} -D {dir.Images} --status-fd 3 3>{dumpStatus}");
            Assert.True(dump.ExitCode == 0, dump.Stderr);
            Assert.Equal([0], File.ReadAllBytes(dumpStatus));
            Live.WaitPidsFree([pid], pid);

            // Foreground restore: crisp waits for the root, so the byte must come while it still runs.
            var restore = Task.Run(() => Shell($"{CrispExe()} restore -D {dir.Images} --status-fd=3 3>{restoreStatus}"));
            Live.WaitFor(() => restore.IsCompleted || File.Exists(restoreStatus) && new FileInfo(restoreStatus).Length > 0, "the status byte");
            Assert.False(restore.IsCompleted, $"restore ended early: {(restore.IsCompleted ? restore.Result.Stderr : "")}");
            Assert.Equal([0], File.ReadAllBytes(restoreStatus));
            Assert.Equal("0", Status(pid, "TracerPid"));
            Signals.Kill(pid, Live.SIGKILL);
            Assert.True(restore.Wait(TimeSpan.FromSeconds(30)));
            Assert.Equal([0], File.ReadAllBytes(restoreStatus));

            // A failed dump writes nothing: the caller reads EOF.
            var failed = Shell($"{CrispExe()} dump -t 999999999 -D {dir.Path}/none --status-fd 3 3>{dumpStatus}");
            Assert.Equal(1, failed.ExitCode);
            Assert.Empty(File.ReadAllBytes(dumpStatus));
        });

    [RootFact]
    public void TimeoutGivesUpOnATaskThatNeverStopsAndLeavesItAsItWas()
    {
        string exe = Support.Workloads.Build("vfork_wait");
        using var dir = new Live.TempDir();
        int pid = Spawn.Start(exe, ["vfork_wait"], new SpawnOptions
        {
            NewSession = true,
            Opens = [(0, "/dev/null", Live.O_RDONLY, 0), (1, Path.Combine(dir.Path, "out"), Live.O_WRONLY | Live.O_CREAT, 0x1a4), (2, "/dev/null", Live.O_WRONLY, 0)],
        });
        int child = 0;
        try
        {
            Live.WaitFor(() => File.ReadAllText(Path.Combine(dir.Path, "out")).EndsWith('\n'), "vfork_wait's ready line");
            child = int.Parse(File.ReadAllText(Path.Combine(dir.Path, "out")).Split(' ')[2]);
            Live.WaitFor(() => Status(pid, "State").StartsWith('D'), "the vfork parent to wait");
            var state = TaskStateSnapshot.OfQuietTree(pid);
            var dump = CrispCli.Run("dump", "-t", pid.ToString(), "-D", dir.Images, "--timeout", "2");
            Assert.Equal(1, dump.ExitCode);
            Assert.Equal($"crisp: error: task {pid} did not stop within 2 s (--timeout); it is in state 'D'", dump.Stderr.Trim());
            Assert.Equal("0", Status(pid, "TracerPid"));
            Assert.StartsWith("D", Status(pid, "State"));
            Assert.Equal("0", Status(child, "TracerPid"));
            StateDiff.AssertRestored(state, when: "after the dump gave up");
        }
        finally
        {
            Live.KillAll(child > 0 ? [child, pid] : [pid], pid);
        }
    }

    [RootFact]
    public void LeaveStoppedLeavesEveryTaskStoppedAndUntraced()
        => WithSleeper((dir, pid) =>
        {
            var dump = CrispCli.Run("dump", "-s", "-t", pid.ToString(), "-D", dir.Images);
            Assert.True(dump.ExitCode == 0, dump.Stderr);
            Live.WaitFor(() => Status(pid, "State").StartsWith('T'), "the tree to be stopped");
            Assert.Equal("0", Status(pid, "TracerPid"));
        });

    /// <summary>Starts a sleeper and a scratch directory for <paramref name="body"/>; afterwards kills the sleeper and
    /// waits its PID free (reaping it first if it is still our child, unless <paramref name="reapOurChild"/> is false).</summary>
    private static void WithSleeper(Action<Live.TempDir, int> body, bool reapOurChild = true)
    {
        using var dir = new Live.TempDir();
        int pid = StartSleeper();
        try
        {
            body(dir, pid);
        }
        finally
        {
            Live.KillAll([pid], reapOurChild ? pid : 0);
        }
    }

    /// <summary>`crisp dump` of the sleeper into the images directory, which must succeed; then its PID waited free.</summary>
    private static void DumpSleeper(Live.TempDir dir, int pid, params string[] more)
    {
        var dump = CrispCli.Run(["dump", "-t", pid.ToString(), "-D", dir.Images, .. more]);
        Assert.True(dump.ExitCode == 0, dump.Stderr);
        Live.WaitPidsFree([pid], pid);
    }

    private static int StartSleeper()
    {
        int pid = Live.StartQuiet("/bin/sleep", ["sleep", "1000"]);
        Live.WaitFor(() => File.ReadAllText($"/proc/{pid}/comm").Trim() == "sleep", "sleep to exec");
        // Then to sleep (clock_nanosleep is x86-64 syscall 230): until then it is still mapping its libraries.
        Live.WaitFor(() => File.ReadAllText($"/proc/{pid}/syscall").StartsWith("230 "), "sleep to sleep");
        return pid;
    }

    /// <summary>A hook that appends "ACTION INIT_PID IMAGE_DIR" to hook.log and fails (exit 5) at one action.</summary>
    private static string WriteHook(string dir, string failAt = "")
    {
        string path = Path.Combine(dir, "hook.sh");
        File.WriteAllText(path, $$"""
            #!/bin/sh
            echo "$CRTOOLS_SCRIPT_ACTION ${CRTOOLS_INIT_PID:-none} $(readlink "$CRTOOLS_IMAGE_DIR")" >> {{dir}}/hook.log
            [ "$CRTOOLS_SCRIPT_ACTION" = "{{failAt}}" ] && exit 5
            exit 0

            """);
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return path;
    }

    private static string[] HookLog(string dir) =>
        File.Exists(Path.Combine(dir, "hook.log")) ? File.ReadAllLines(Path.Combine(dir, "hook.log")) : [];

    private static void AssertRunsUntraced(int pid)
    {
        Assert.Equal("0", Status(pid, "TracerPid"));
        // Running or sleeping, not stopped (a busy machine may catch the sleeper between two sleeps).
        Assert.Matches("^[SR] ", Status(pid, "State"));
    }

    private static string CrispExe() => CrispCli.Exe;

    private static CrispCli.Result Shell(string command) => Live.RunProcess("/bin/sh", TimeSpan.FromSeconds(60), null, "-c", command);

    private static JsonElement CritShow(string path)
    {
        var r = Live.RunProcess("/usr/bin/crit", TimeSpan.FromSeconds(60), null, "show", path);
        Assert.True(r.ExitCode == 0, $"crit show {path}: {r.Stderr}");
        using var doc = JsonDocument.Parse(r.Stdout);
        Assert.Equal("STATS", doc.RootElement.GetProperty("magic").GetString());
        return doc.RootElement.GetProperty("entries")[0].Clone();
    }

    private static string Status(int pid, string key) =>
        File.ReadAllLines($"/proc/{pid}/status").First(l => l.StartsWith(key + ":"))[(key.Length + 1)..].Trim();
}
