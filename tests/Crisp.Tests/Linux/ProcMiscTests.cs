using System.Diagnostics;
using Crisp.Linux;
using Crisp.Linux.Proc;

namespace Crisp.Tests.Linux;

public class ProcMiscTests
{
    [Fact]
    public void ListsOwnThreads()
    {
        var tids = ProcTasks.Threads(Environment.ProcessId);
        Assert.Contains(Environment.ProcessId, tids);
        Assert.Contains(ProcessIds.Tid, tids);
        Assert.Equal(tids.Order(), tids);
    }

    [Fact]
    public void ParsesChildren() => Assert.Equal([123, 456], ProcTasks.ParseChildren("123 456 "));

    [Fact]
    public void FindsOwnChild()
    {
        // Only to observe /proc children; nothing here traces it.
        using var child = Process.Start("sleep", "30");
        try
        {
            Assert.Contains(child.Id, ProcTasks.AllChildren(Environment.ProcessId));
        }
        finally
        {
            child.Kill();
            child.WaitForExit();
        }
    }

    [Fact]
    public void ListsOwnFds()
    {
        using var fd = Memfd.Create("crisp-fdlist");
        var fds = ProcFds.Read(Environment.ProcessId);
        Assert.Contains(fds, f => f.Fd == fd.Fd && f.Target.StartsWith("/memfd:crisp-fdlist"));
        Assert.Equal(fds.OrderBy(f => f.Fd), fds);
    }

    private const string LimitsSample =
        "Limit                     Soft Limit           Hard Limit           Units     \n" +
        "Max cpu time              unlimited            unlimited            seconds   \n" +
        "Max file size             unlimited            unlimited            bytes     \n" +
        "Max stack size            8388608              unlimited            bytes     \n" +
        "Max processes             63796                63796                processes \n" +
        "Max open files            1024                 524288               files     \n" +
        "Max nice priority         0                    0                    \n" +
        "Max realtime timeout      unlimited            unlimited            us        \n";

    [Fact]
    public void ParsesLimits()
    {
        var l = ProcLimits.Parse(LimitsSample);
        Assert.Equal(7, l.Count);
        Assert.Equal(new LimitEntry("Max cpu time", Rlimits.RLIMIT_CPU, ulong.MaxValue, ulong.MaxValue, "seconds"), l[0]);
        Assert.Equal(new LimitEntry("Max stack size", Rlimits.RLIMIT_STACK, 8388608, ulong.MaxValue, "bytes"), l[2]);
        Assert.Equal(Rlimits.RLIMIT_NPROC, l[3].Resource);
        Assert.Equal(new LimitEntry("Max open files", Rlimits.RLIMIT_NOFILE, 1024, 524288, "files"), l[4]);
        Assert.Equal(new LimitEntry("Max nice priority", Rlimits.RLIMIT_NICE, 0, 0, ""), l[5]);
        Assert.Equal(Rlimits.RLIMIT_RTTIME, l[6].Resource);
        var r = ProcLimits.ToRlimits(l);
        Assert.Equal(new Rlimit(1024, 524288), r[Rlimits.RLIMIT_NOFILE]);
    }

    [Fact]
    public void OwnLimitsMatchPrlimit()
    {
        var l = ProcLimits.Read(Environment.ProcessId);
        Assert.Equal(16, l.Count);
        var r = ProcLimits.ToRlimits(l);
        for (int i = 0; i < Rlimits.RLIM_NLIMITS; i++)
            Assert.Equal(Rlimits.Get(0, i), r[i]);
    }

    [Fact]
    public void ParsesTimers()
    {
        var t = ProcTimers.Parse(
            "ID: 0\nsignal: 14/0000000000000000\nnotify: signal/pid.1234\nClockID: 1\n" +
            "ID: 5\nsignal: 34/00007ffd12345678\nnotify: thread/tid.1240\nClockID: 0\n");
        Assert.Equal(2, t.Count);
        Assert.Equal(new PosixTimerInfo(0, 14, 0, "signal", "pid", 1234, 1), t[0]);
        Assert.Equal(new PosixTimerInfo(5, 34, 0x7ffd12345678, "thread", "tid", 1240, 0), t[1]);
        Assert.Empty(ProcTimers.Parse(""));
        ProcTimers.Read(Environment.ProcessId);
    }
}

public unsafe class ProcTimersLiveTests
{
    /// <summary>A real POSIX timer (SIGEV_SIGNAL, SIGUSR2, value 0x1234) shows up in /proc/self/timers.</summary>
    [Fact]
    public void SeesOwnPosixTimer()
    {
        const int CLOCK_MONOTONIC = 1, SIGEV_SIGNAL = 0;
        var sigevent = stackalloc byte[64];
        new Span<byte>(sigevent, 64).Clear();
        *(ulong*)sigevent = 0x1234;                 // sigev_value
        *(int*)(sigevent + 8) = Signals.SIGUSR2;    // sigev_signo
        *(int*)(sigevent + 12) = SIGEV_SIGNAL;      // sigev_notify
        int id = -1;
        RawSyscall.Call("timer_create", Sysno.timer_create, CLOCK_MONOTONIC, (long)sigevent, (long)&id);
        int timerId = id;
        try
        {
            var t = ProcTimers.Read(Environment.ProcessId).Single(x => x.Id == timerId);
            Assert.Equal(Signals.SIGUSR2, t.Signal);
            Assert.Equal(0x1234UL, t.SigevValue);
            Assert.Equal("signal", t.NotifyMode);
            Assert.Equal("pid", t.NotifyTarget);
            Assert.Equal(Environment.ProcessId, t.NotifyTid);
            Assert.Equal(CLOCK_MONOTONIC, t.ClockId);
        }
        finally
        {
            RawSyscall.Call("timer_delete", Sysno.timer_delete, timerId);
        }
    }
}
