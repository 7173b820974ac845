using Crisp.Dump;
using Crisp.Linux;
using Crisp.Linux.Proc;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;

namespace Crisp.Tests.Resources.TaskState;

/// <summary>Processes sharing a file table, fs state or address space without being threads
/// (tests/workloads/shared_clone.c) are refused at dump in one line naming both tasks and what they
/// share, and the tree runs on, still sharing.</summary>
public class SharedResourcesTests
{
    [RootTheory]
    [InlineData("files", "a file table (CLONE_FILES")]
    [InlineData("fs", "fs state (root, cwd, umask) (CLONE_FS")]
    [InlineData("vm", "an address space (CLONE_VM")]
    public void SharingProcessesAreRefusedByNameAndRunOn(string kind, string what)
    {
        using var w = new DirWorkload("crisp-shared-");
        w.Start(Support.Workloads.Build("shared_clone"), [kind]);
        var words = w.WaitReady("shared_clone", x => x.Length >= 3);
        int child = int.Parse(words[2]);
        string images = w.NewImagesDir("images");
        var e = Assert.Throws<CrispException>(() => new Dumper(new DumpOptions { RootPid = w.Pid, ImagesDir = images, ShellJob = true }, Log.Null).Run());
        Assert.Equal($"tasks {Math.Min(w.Pid, child)} and {Math.Max(w.Pid, child)} share {what} without CLONE_THREAD): not supported yet", e.Message);
        foreach (int pid in new[] { w.Pid, child })
        {
            Assert.Contains(ProcStat.Read(pid).State, "SR");
            Assert.Equal("0", ProcStatus.Read(pid)["TracerPid"]);
        }
        RawSyscall.Call("kill", Sysno.kill, w.Pid, 10);
        var status = Live.ReapWithin(w.Pid);
        w.Alive = false;
        Assert.True(status.Exited && status.ExitCode == 0, $"{status}: {w.Verdict}");
        Assert.Equal("PASS", w.Verdict.Trim());
    }
}
