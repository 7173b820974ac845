using Crisp.Compel;
using Crisp.Linux;
using Crisp.Tests.Support;

namespace Crisp.Tests.Compel;

[Collection("compel")]
public sealed class SeizeThreadsTests
{
    private static Tracer Tracer => TestTracer.Shared;
    private static readonly Seizer Seizer = new(TestTracer.Shared);

    [RootFact]
    public void AllThreadsSeizedWithSeccompModeRecorded()
    {
        using var w = new TracedWorkload(Tracer, "compel_threads", ["4"], "-pthread");
        w.ExpectByte('R');

        // Without SUSPEND_SECCOMP the filtered thread's getpid is filtered (EPERM)...
        var p = Seizer.SeizeProcess(w.Pid, SeccompSuspend.Never);
        Assert.Equal(5, p.Threads.Count);
        Assert.Equal(Directory.GetDirectories($"/proc/{w.Pid}/task").Length, p.Threads.Count);
        var filtered = Assert.Single(p.Threads, t => t.SeccompMode == 2);
        Assert.All(p.Threads.Where(t => t != filtered), t => Assert.Equal(0, t.SeccompMode));
        using (var remote = new RemoteTask(filtered))
            Assert.Equal(-Errnos.EPERM, remote.Getpid());
        using (var remote = new RemoteTask(p.Leader))
            Assert.Equal(w.Pid, remote.Getpid());
        p.Detach();

        // ...with it (Auto: the thread has a filter) our calls are not filtered.
        p = Seizer.SeizeProcess(w.Pid);
        filtered = Assert.Single(p.Threads, t => t.SeccompMode == 2);
        Assert.True(filtered.Options.HasFlag(PtraceOptions.SuspendSeccomp));
        using (var remote = new RemoteTask(filtered))
        {
            Assert.Equal(w.Pid, remote.Getpid());
            Assert.Equal(filtered.Tid, remote.Syscall(Sysno.gettid));
        }
        foreach (var t in p.Threads)
            using (var remote = new RemoteTask(t))
                Assert.Equal(t.Tid, remote.Syscall(Sysno.gettid));
        p.Detach();

        w.Write("q");
        var status = w.WaitExit();
        Assert.True(status.Exited && status.ExitCode == 0, $"workload: {status}");
    }

    [RootFact]
    public void ThreadsComingAndGoingDuringSeizeSettle()
    {
        using var w = new TracedWorkload(Tracer, "compel_threads", ["2", "churn"], "-pthread");
        w.ExpectByte('R');
        for (int round = 0; round < 20; round++)
        {
            var p = Seizer.SeizeProcess(w.Pid);
            // Everything is stopped: the thread list cannot change any more and matches what we hold.
            var tids = Directory.GetDirectories($"/proc/{w.Pid}/task").Select(d => int.Parse(Path.GetFileName(d))).Order();
            Assert.Equal(tids, p.Threads.Select(t => t.Tid).Order());
            Assert.All(p.Threads, t => Assert.Equal(t.Tid == filteredTid(p) ? 2 : 0, t.SeccompMode));
            p.Detach();
        }
        w.Write("q");
        var status = w.WaitExit();
        Assert.True(status.Exited && status.ExitCode == 0, $"workload: {status}");

        static int filteredTid(SeizedProcess p) => p.Threads.FirstOrDefault(t => t.SeccompMode == 2)?.Tid ?? -1;
    }
}
