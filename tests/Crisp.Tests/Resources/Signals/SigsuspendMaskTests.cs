using Crisp.Dump;
using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Restore;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;

namespace Crisp.Tests.Resources.Signals;

/// <summary>A thread inside sigsuspend shows (ptrace, /proc) the call's temporary mask; its own mask is the
/// kernel's saved_sigmask. The dump must record, and a -R dump put back, the program's own mask, or a signal
/// sent right after restore runs its handler before the re-issued sigsuspend and is lost.</summary>
public class SigsuspendMaskTests
{
    private const ulong Usr1Bit = 1UL << 9;

    [RootFact]
    public void TheProgramsOwnMaskIsRecordedAndASignalRightAfterRestoreWakesIt()
    {
        using var dir = new Live.TempDir();
        int pid = Start(dir.Path);
        try
        {
            new Dumper(new DumpOptions { RootPid = pid, ImagesDir = dir.Images }, Log.Null).Run();
            using (var r = ImageDirectory.Open(dir.Images).OpenReader(ImageFile.Core(pid)))
            {
                var core = r.Read<core_entry>()!;
                Assert.True((core.ThreadCore.BlkSigset & Usr1Bit) != 0, $"recorded mask 0x{core.ThreadCore.BlkSigset:x} lacks SIGUSR1");
            }
            Live.WaitPidsFree([pid], pid);
            var tree = new Restorer(new RestoreOptions { ImagesDir = dir.Images, Detached = true }, Log.Null).Run();
            Crisp.Linux.Signals.Kill(pid, Live.SIGUSR1);   // at once: before the thread is back in sigsuspend
            AssertWakes(pid, dir.Path, tree.WaitForExit);
        }
        finally
        {
            Live.KillAll([pid], pid);
        }
    }

    [RootFact]
    public void LeaveRunningPutsTheProgramsOwnMaskBack()
    {
        using var dir = new Live.TempDir();
        int pid = Start(dir.Path);
        try
        {
            for (int i = 0; i < 3; i++)
                new Dumper(new DumpOptions { RootPid = pid, ImagesDir = Path.Combine(dir.Path, $"d{i}"), LeaveRunning = true }, Log.Null).Run();
            Crisp.Linux.Signals.Kill(pid, Live.SIGUSR1);
            AssertWakes(pid, dir.Path, () => Live.ReapWithin(pid).ExitCode);
        }
        finally
        {
            Live.KillAll([pid], pid);
        }
    }

    private static int Start(string dir)
    {
        string exe = Support.Workloads.Build("sigsuspend_wait");
        var w = Workload.Start(exe, ["sigsuspend_wait"], dir, stderrToFile: false);
        w.WaitReady("the workload's ready line", p => p[0] == "ready", prefix: "ready");
        int pid = w.Pid;
        Live.WaitFor(() => File.ReadAllText($"/proc/{pid}/wchan").Contains("sigsuspend"), "the workload to wait in sigsuspend");
        return pid;
    }

    private static void AssertWakes(int pid, string dir, Func<int> waitExit)
    {
        var exit = Task.Run(waitExit);
        if (!exit.Wait(TimeSpan.FromSeconds(15)))
        {
            Live.KillAll([pid]);
            Assert.Fail("the SIGUSR1 sent right after was lost: the workload still waits in sigsuspend");
        }
        Assert.True(exit.Result == 0, File.ReadAllText(Path.Combine(dir, "out")));
        Assert.Contains("woke", File.ReadAllText(Path.Combine(dir, "out")));
    }
}
