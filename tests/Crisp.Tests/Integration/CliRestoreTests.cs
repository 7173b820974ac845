using Crisp.Dump;
using Crisp.Linux;
using Crisp.Tests.Support;

namespace Crisp.Tests.Integration;

/// <summary>`crisp restore` through the real CLI: waiting for the root, and the errors a user meets.</summary>
public class CliRestoreTests
{
    // The builtin wait is interrupted by a trapped signal; the long sleep child never becomes a zombie.
    private const string ExitOnUsr1 = "trap 'exit 7' USR1; sleep 1000 & wait";

    private static int StartShell(string dir, string script) =>
        Spawn.Start("/bin/sh", ["sh", "-c", script], new SpawnOptions
        {
            NewSession = true,
            Opens =
            [
                (0, "/dev/null", Live.O_RDONLY, 0),
                (1, Path.Combine(dir, "out"), Live.O_WRONLY | Live.O_CREAT | Live.O_APPEND, 0x1a4),
                (2, Path.Combine(dir, "out"), Live.O_WRONLY | Live.O_CREAT | Live.O_APPEND, 0x1a4),
            ],
        });

    [RootFact]
    public void RestoreWithoutDetachWaitsForTheRootThenExitsZeroLoggingItsStatus()
    {
        using var dir = new Live.TempDir();
        int pid = StartShell(dir.Path, ExitOnUsr1);
        List<int> pids = [pid];
        try
        {
            Thread.Sleep(300);
            var dump = CrispCli.Run("dump", "-t", pid.ToString(), "-D", dir.Images);
            Assert.True(dump.ExitCode == 0, $"dump failed: {dump.Stderr}");
            pids = Live.CheckpointPids(dir.Images);
            Live.WaitPidsFree(pids, pid);

            string log = Path.Combine(dir.Path, "restore.log");
            var restore = Task.Run(() => CrispCli.Run("restore", "-D", dir.Images, "-v4", "-o", log));
            // Wait until the restored root runs on its own (crisp has let it go), then ask it to exit 7.
            Live.WaitFor(() => restore.IsCompleted || Directory.Exists($"/proc/{pid}") && Untraced(pid), "the restored root to run");
            Assert.False(restore.IsCompleted, $"crisp restore ended early: {(restore.IsCompleted ? restore.Result.Stderr : "")}");
            Thread.Sleep(200);
            Assert.False(restore.IsCompleted, "crisp restore returned before the root exited");
            Signals.Kill(pid, Live.SIGUSR1);
            Assert.True(restore.Wait(TimeSpan.FromSeconds(30)), "crisp restore did not return after the root exited");
            Assert.True(restore.Result.ExitCode == 0, $"exit {restore.Result.ExitCode}; stderr:\n{restore.Result.Stderr}");
            Assert.Contains($"restored root {pid} exited with status 7", File.ReadAllText(log));
        }
        finally
        {
            Live.KillAll(pids);
        }
    }

    [RootFact]
    public void RestoreWhenAPidIsTakenFailsClearlyAndLeavesNothing()
    {
        using var dir = new Live.TempDir();
        int pid = Live.StartQuiet("/bin/sleep", ["sleep", "1000"]);
        List<int> pids = [pid];
        try
        {
            Thread.Sleep(300);
            var dump = CrispCli.Run("dump", "-R", "-t", pid.ToString(), "-D", dir.Images);   // the tree runs on
            Assert.True(dump.ExitCode == 0, $"dump failed: {dump.Stderr}");
            var hashes = Live.Hashes(dir.Images);

            var r = CrispCli.Run("restore", "-d", "-D", dir.Images);
            Assert.Equal(1, r.ExitCode);
            FailureSafetyTests.AssertOneLine(r.Stderr, $"PID {pid} is already in use");
            Assert.Equal(hashes, Live.Hashes(dir.Images));
            Assert.Equal("0", Status(pid, "TracerPid"));
            Assert.StartsWith("S", Status(pid, "State"));
            Assert.Equal("", Children(pid).Trim());   // no puppet was made
        }
        finally
        {
            Live.KillAll(pids, pid);
        }
    }

    [RootFact]
    public void RestoreFromAMissingOrEmptyDirectoryFailsWithOneLine()
    {
        using var dir = new Live.TempDir();
        var missing = CrispCli.Run("restore", "-d", "-D", Path.Combine(dir.Path, "no-such-dir"));
        Assert.Equal(1, missing.ExitCode);
        FailureSafetyTests.AssertOneLine(missing.Stderr, "no-such-dir");

        string empty = Path.Combine(dir.Path, "empty");
        Directory.CreateDirectory(empty);
        var r = CrispCli.Run("restore", "-d", "-D", empty);
        Assert.Equal(1, r.ExitCode);
        FailureSafetyTests.AssertOneLine(r.Stderr, "inventory.img");
        Assert.Empty(Directory.EnumerateFileSystemEntries(empty));
    }

    private static bool Untraced(int pid)
    {
        try { return Status(pid, "TracerPid") == "0"; }
        catch (IOException) { return false; }
    }

    private static string Status(int pid, string key) =>
        File.ReadAllLines($"/proc/{pid}/status").First(l => l.StartsWith(key + ":"))[(key.Length + 1)..].Trim();

    private static string Children(int pid) => File.ReadAllText($"/proc/{pid}/task/{pid}/children");
}
