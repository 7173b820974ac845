using System.Diagnostics;
using Crisp.Linux;
using Crisp.Linux.Proc;
using Crisp.Tests.Support;

namespace Crisp.Tests.Linux;

/// <summary>Bindings and parsers against another process (a plain `sleep`; nothing here traces it).</summary>
public class OtherProcessTests
{
    /// <summary>Starts `sleep 30` and waits until it sleeps: Process.Start returns once exec has closed
    /// the CLOEXEC pipe, before the kernel has finished setting up the new mm (arg_start is still 0).</summary>
    private static Process StartSleep()
    {
        var p = Process.Start(new ProcessStartInfo("sleep", "30") { UseShellExecute = false })!;
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (ProcStat.Read(p.Id) is var s && (s.State != 'S' || s.ArgStart == 0) && DateTime.UtcNow < deadline)
            Thread.Sleep(5);
        return p;
    }

    private static void Stop(Process p)
    {
        p.Kill();
        p.WaitForExit();
    }

    [RootFact]
    public void PidfdGetFdAndKcmpAcrossProcesses()
    {
        using var child = StartSleep();
        try
        {
            int me = Environment.ProcessId;
            // The child inherited our stderr: same open file description.
            Assert.True(Kcmp.SameFile(me, 2, child.Id, 2));
            Assert.NotEqual(0, Kcmp.Compare(me, child.Id, Kcmp.KCMP_VM));

            using var pidfd = PidFd.Open(child.Id);
            using var copy = pidfd.GetFd(2);
            Assert.True(Kcmp.SameFile(child.Id, 2, me, copy.Fd));
            Assert.Contains(ProcFds.Read(child.Id), f => f.Fd == 2);
        }
        finally
        {
            Stop(child);
        }
    }

    [RootFact]
    public void ReadsAnotherProcessMemoryAndProcFiles()
    {
        using var child = StartSleep();
        try
        {
            var stat = ProcStat.Read(child.Id);
            Assert.Equal("sleep", stat.Comm);
            Assert.Equal(Environment.ProcessId, stat.PPid);
            Assert.Equal(Environment.ProcessId, ProcStatus.Read(child.Id).PPid);

            // argv lives between arg_start and arg_end: "sleep\030\0".
            var args = new byte[stat.ArgEnd - stat.ArgStart];
            ProcessVm.ReadExactly(child.Id, stat.ArgStart, args);
            Assert.Equal("sleep\030\0"u8.ToArray(), args);

            var stack = ProcMaps.Read(child.Id).Single(m => m.Kind == VmaKind.Stack);
            using var pm = Pagemap.Open(child.Id);
            var runs = pm.ReadRuns(stack.Start, stack.End);
            Assert.NotEmpty(runs);
            Assert.Equal(runs, pm.Runs(stack.Start, stack.End));

            // Read every present stack page in one batched call.
            var ranges = runs.Select(r => new RemoteRange(r.Start, r.Length)).ToArray();
            var pages = new byte[ProcessVm.TotalLength(ranges)];
            ProcessVm.ReadExactly(child.Id, ranges, pages);

            Assert.Equal(Rlimits.Get(child.Id, Rlimits.RLIMIT_NOFILE), ProcLimits.ToRlimits(ProcLimits.Read(child.Id))[Rlimits.RLIMIT_NOFILE]);
            Assert.Equal([child.Id], ProcTasks.Threads(child.Id));
        }
        finally
        {
            Stop(child);
        }
    }

    [Fact]
    public void PidfdSignalsAProcess()
    {
        using var child = StartSleep();
        using var pidfd = PidFd.Open(child.Id);
        pidfd.SendSignal(Signals.SIGKILL);
        child.WaitForExit();
        Assert.Equal(128 + Signals.SIGKILL, child.ExitCode);
    }
}
