using System.Diagnostics;
using Crisp.Linux;
using Crisp.Tests.Resources.Memory;
using Crisp.Tests.Support;

namespace Crisp.Tests.Integration;

/// <summary>Common mistakes get one line that says what to do: a task already traced names its tracer; a dump
/// that fills the disk says how much space it needed and leaves the directory as it was and the tree running.</summary>
public class DumpErrorTests
{
    [RootFact]
    public void ATracedTaskNamesItsTracer()
    {
        using var dir = new Live.TempDir();
        int pid = Live.StartQuiet("/bin/sleep", ["sleep", "1000"]);
        // strace is started with Process, but never traced by us: it is only the other tracer here.
        using var strace = Process.Start(new ProcessStartInfo("strace", ["-p", pid.ToString(), "-o", "/dev/null"]) { RedirectStandardError = true })!;
        try
        {
            Live.WaitFor(() => Status(pid, "TracerPid") == strace.Id.ToString(), "strace to attach");
            var r = CrispCli.Run("dump", "-t", pid.ToString(), "-D", dir.Images);
            Assert.Equal(1, r.ExitCode);
            FailureSafetyTests.AssertOneLine(r.Stderr, $"task {pid} is already traced by PID {strace.Id} (strace)");
            Assert.False(Directory.Exists(dir.Images), "the failed dump left its images dir");
            Assert.Equal(strace.Id.ToString(), Status(pid, "TracerPid"));
        }
        finally
        {
            strace.Kill();
            strace.WaitForExit();
            Live.KillAll([pid], pid);
        }
    }

    /// <summary>A 1 MiB tmpfs holding a file of its own; the dump of a workload with 16 MiB of memory into a new
    /// directory there fails on ENOSPC: the line says how much it needed, the tmpfs holds just the file again,
    /// and the workload runs on untraced. The same into the tmpfs root (a directory crisp did not make): the file
    /// there and an earlier image left untouched.</summary>
    [RootFact]
    public void AFullDiskSaysWhatWasNeededAndLeavesTheDirectoryAsItWas()
    {
        using var w = MemWorkload.Start(16);
        string mnt = Directory.CreateTempSubdirectory("crisp-enospc-").FullName;
        var mount = CrispCli.RunProcess("mount", TimeSpan.FromSeconds(30), null, "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", mnt);   // private: no warning line
        Assert.True(mount.ExitCode == 0, mount.Stderr);
        try
        {
            File.WriteAllText(Path.Combine(mnt, "keep.txt"), "mine\n");
            File.WriteAllText(Path.Combine(mnt, "core-1.img"), "an earlier image\n");
            var before = Live.Hashes(mnt);
            foreach (string images in new[] { Path.Combine(mnt, "images"), mnt })
            {
                var r = CrispCli.Run("dump", "-R", "-t", w.Pid.ToString(), "-D", images);
                Assert.Equal(1, r.ExitCode);
                FailureSafetyTests.AssertOneLine(r.Stderr, "no space left on device writing the images in");
                Assert.Matches(@"the dump needs about \d+ MiB there \(the tree holds (1[6-9]|[2-9]\d) MiB of memory to save, \d+ MiB were written before the disk filled; [01] MiB free there\)", r.Stderr);
                Assert.Equal(before, Live.Hashes(mnt));
                Assert.Equal(["core-1.img", "keep.txt"], Directory.EnumerateFileSystemEntries(mnt).Select(Path.GetFileName).Order());
                Assert.Equal("0", Status(w.Pid, "TracerPid"));
                Assert.DoesNotMatch("^[TtZX]", Status(w.Pid, "State"));
            }
            w.Signal(MemWorkload.SIGUSR1);
            w.WaitUntil(() => w.Stderr.Contains("PASS") || w.Stderr.Contains("FAIL"), "the workload's own check after the failed dumps");
            Assert.Equal("PASS\n", w.Stderr);
        }
        finally
        {
            CrispCli.RunProcess("umount", TimeSpan.FromSeconds(30), null, mnt);
            Directory.Delete(mnt);
        }
    }

    private static string Status(int pid, string key) =>
        File.ReadAllLines($"/proc/{pid}/status").First(l => l.StartsWith(key + ":"))[(key.Length + 1)..].Trim();
}
