using Crisp.Dump;
using Crisp.Linux;
using Crisp.Restore;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Resources.Registers;

/// <summary>Issue #6: interrupted syscalls come back the way the kernel would have finished them. A task is
/// stopped inside pause(), an hour-long nanosleep and a read (SA_RESTART handler); while it is stopped, a
/// handled signal is queued for each thread; SIGCONT must then end pause and the sleep with EINTR (after one
/// handler run each, the sleep's rem intact) and restart the read — first without crisp (the kernel's
/// behaviour, the premise), then after a dump and restore of the stopped task. Re-running the calls from
/// user mode would run the handlers first and sleep again: the workload would never exit.</summary>
public class SyscallRestartTests(ITestOutputHelper output)
{
    private const int SIGUSR1 = 10, SIGUSR2 = 12, SIGCONT = 18, SIGSTOP = 19, SIGWINCH = 28;

    [RootTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void AHandledSignalQueuedWhileStoppedEndsTheInterruptedCallsAsTheKernelDoes(bool restored)
    {
        using var w = new DirWorkload("crisp-restart-");
        w.Start(Support.Workloads.Build("pause_eintr", "-pthread"), [], newSession: true);
        var ids = w.WaitReady("pause_eintr", words => words.Length == 4)[1..].Select(int.Parse).ToArray();
        Assert.Equal(w.Pid, ids[0]);
        int pid = w.Pid, sleeper = ids[1], reader = ids[2];
        // "ready" is written just before the leader's pause, and the threads' own calls are only likely to have
        // begun by then: on a loaded machine a signal queued before its call runs the handler first, and the call
        // then waits for ever, with or without crisp. Each thread is seen inside its call first.
        Live.WaitFor(() => InSyscall(pid, pid, 34) && InSyscall(pid, sleeper, 230, 35) && InSyscall(pid, reader, 0),
            "pause, the sleep and the read to have begun");

        Crisp.Linux.Signals.Kill(pid, SIGSTOP);
        Live.WaitFor(() => AllStopped(pid), "every thread to stop");
        if (restored)
        {
            string images = w.NewImagesDir("images");
            w.Dump(new DumpOptions { RootPid = pid, ImagesDir = images });
            Live.WaitPidsFree(Live.CheckpointPids(images));
            w.Restore(new RestoreOptions { ImagesDir = images, Detached = true });
            Live.WaitFor(() => AllStopped(pid), "the restored threads to stop again", TimeSpan.FromSeconds(5));
        }
        Crisp.Linux.Signals.TgKill(pid, pid, SIGUSR1);
        Crisp.Linux.Signals.TgKill(pid, sleeper, SIGUSR2);
        Crisp.Linux.Signals.TgKill(pid, reader, SIGWINCH);
        Thread.Sleep(100);
        Assert.True(AllStopped(pid), "the signals wait while the task is stopped");
        Crisp.Linux.Signals.Kill(pid, SIGCONT);

        int rc = Live.ReapWithin(pid, TimeSpan.FromSeconds(30)).ExitCode;
        w.Alive = false;
        output.WriteLine($"{(restored ? "restored" : "kernel only")}: exit {rc}, {w.Verdict.Trim()}");
        Assert.True(rc == 0, $"exit {rc}: {w.Verdict}");
        Assert.Equal("PASS", w.Verdict.Trim());
    }

    /// <summary>Thread <paramref name="tid"/> is blocked in one of <paramref name="numbers"/> (/proc/…/syscall's first field).</summary>
    private static bool InSyscall(int pid, int tid, params int[] numbers) =>
        int.TryParse(File.ReadAllText($"/proc/{pid}/task/{tid}/syscall").Split(' ')[0], out int nr) && numbers.Contains(nr);

    private static bool AllStopped(int pid) => Directory.GetDirectories($"/proc/{pid}/task")
        .All(d => File.ReadAllLines(Path.Combine(d, "status")).First(l => l.StartsWith("State:"))[6..].Trim().StartsWith('T'));
}
