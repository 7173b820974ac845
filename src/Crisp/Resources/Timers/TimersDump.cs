using Crisp.Dump;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Linux.Proc;
using Crisp.Resources.TaskState;

namespace Crisp.Resources.Timers;

/// <summary>Interval timers (REAL, VIRTUAL, PROF) and POSIX timers of a process, with the time left and
/// the interval, into task_core_entry.timers as CRIU writes them. Both kinds belong to the process, so
/// the leader answers for all threads; /proc/PID/timers names the POSIX timers and how they notify.</summary>
public sealed class TimersDump : IDumpStage
{
    public const int ITIMER_REAL = 0, ITIMER_VIRTUAL = 1, ITIMER_PROF = 2;
    public const uint SIGEV_SIGNAL = 0, SIGEV_NONE = 1, SIGEV_THREAD = 2, SIGEV_THREAD_ID = 4;

    public string Name => "timers";

    public void Dump(DumpContext ctx, DumpTask task)
    {
        using var leader = new ThreadRemote(ctx, task, task.Leader);
        var timers = new task_timers_entry
        {
            Real = ITimer(leader, ITIMER_REAL),
            Virt = ITimer(leader, ITIMER_VIRTUAL),
            Prof = ITimer(leader, ITIMER_PROF),
        };
        foreach (var info in ProcTimers.Read(task.Pid))
            timers.Posix.Add(PosixTimer(leader, info, task));
        task.TaskCore.Timers = timers;
        if (timers.Posix.Count > 0)
            ctx.Log.Debug($"task {task.Pid}: {timers.Posix.Count} POSIX timer(s)");
    }

    private static itimer_entry ITimer(ThreadRemote leader, int which)
        => TimerStructs.ReadITimerVal(leader.CallForBytes(TimerStructs.ITimerValSize,
            at => leader.Call($"getitimer({which})", Sysno.getitimer, which, (long)at)));

    private static posix_timer_entry PosixTimer(ThreadRemote leader, PosixTimerInfo info, DumpTask task)
    {
        var e = new posix_timer_entry
        {
            ItId = (uint)info.Id,
            ClockId = (uint)info.ClockId,
            SiSigno = (uint)info.Signal,
            ItSigevNotify = Notify(info),
            SivalPtr = info.SigevValue,
        };
        if ((e.ItSigevNotify & SIGEV_THREAD_ID) != 0)
            // /proc shows crisp's number for the thread; the restored timer_create runs in the task's namespace.
            e.NotifyThreadId = task.Threads.FirstOrDefault(t => t.Tid == info.NotifyTid)?.VirtualTid ?? info.NotifyTid;
        TimerStructs.ReadITimerSpec(leader.CallForBytes(TimerStructs.ITimerSpecSize,
            at => leader.Call($"timer_gettime({info.Id})", Sysno.timer_gettime, info.Id, (long)at)), e);
        // The overrun of the last expiry (what timer_getoverrun tells the program); kept as CRIU keeps it.
        e.Overrun = (uint)leader.Call($"timer_getoverrun({info.Id})", Sysno.timer_getoverrun, info.Id);
        return e;
    }

    /// <summary>/proc shows "signal/pid", "none/pid" or "signal/tid" (SIGEV_THREAD_ID added); glibc's
    /// SIGEV_THREAD reaches the kernel as SIGEV_THREAD_ID to its helper thread.</summary>
    private static uint Notify(PosixTimerInfo info)
    {
        uint mode = info.NotifyMode switch
        {
            "signal" => SIGEV_SIGNAL,
            "none" => SIGEV_NONE,
            "thread" => SIGEV_THREAD,
            _ => throw new CrispException($"POSIX timer {info.Id}: unknown notify mode '{info.NotifyMode}' in /proc/PID/timers"),
        };
        return info.NotifyTarget == "tid" ? mode | SIGEV_THREAD_ID : mode;
    }
}
