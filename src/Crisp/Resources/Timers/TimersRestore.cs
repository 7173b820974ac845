using System.Buffers.Binary;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Restore;

namespace Crisp.Resources.Timers;

/// <summary>Re-creates a process's POSIX timers with their ids, clocks and notification, and arms them and
/// the interval timers with the time that was left at dump. Runs late, while the puppet still has every
/// signal blocked: an expiry before the tree runs stays pending and is delivered once it does.</summary>
public sealed class TimersRestore : IRestoreStage
{
    /// <summary>prctl (Linux 6.15+): timer_create takes the wanted id from *created_timer_id.</summary>
    private const int PR_TIMER_CREATE_RESTORE_IDS = 77, RESTORE_IDS_OFF = 0, RESTORE_IDS_ON = 1;

    public string Name => "timers";

    public void Restore(RestoreContext ctx, RestoreTask task)
    {
        if (task.TaskCore.Timers is not { } timers)
            return;
        if (timers.Posix.Count > 0)
            CreatePosixTimers(ctx, task, timers.Posix.OrderBy(t => t.ItId).ToList());
        SetITimer(task, TimersDump.ITIMER_REAL, timers.Real);
        SetITimer(task, TimersDump.ITIMER_VIRTUAL, timers.Virt);
        SetITimer(task, TimersDump.ITIMER_PROF, timers.Prof);
    }

    private static void SetITimer(RestoreTask task, int which, itimer_entry? e)
    {
        if (e is null || TimerStructs.IsZero(e))
            return;
        // A periodic timer that had just expired reads as "no time left": the kernel re-arms it only when
        // its (dumped, re-queued) signal is taken. Zero would disarm it here, so it gets a whole period.
        if ((e.Vsec | e.Vusec) == 0)
            e = new itimer_entry { Isec = e.Isec, Iusec = e.Iusec, Vsec = e.Isec, Vusec = e.Iusec };
        ulong at = task.Puppet.Remote.PutOnScratch(TimerStructs.ITimerVal(e));
        task.Call($"setitimer({which})", Sysno.setitimer, which, (long)at, 0);
    }

    private static void CreatePosixTimers(RestoreContext ctx, RestoreTask task, List<posix_timer_entry> timers)
    {
        foreach (var t in timers.Where(t => t.Overrun != 0))
            ctx.Log.Warn($"task {task.Pid}: POSIX timer {t.ItId} had overrun {t.Overrun}; the kernel cannot be given it back, it restarts from 0");
        long on = task.Puppet.Remote.Syscall(Sysno.prctl, PR_TIMER_CREATE_RESTORE_IDS, RESTORE_IDS_ON);
        if (on < 0 && on != -Errnos.EINVAL)
            Compel.RemoteTask.ThrowIfFailed(on, "prctl(PR_TIMER_CREATE_RESTORE_IDS)");
        try
        {
            int next = 0;
            foreach (var t in timers)
            {
                if (on == 0)
                    Create(task, t, (int)t.ItId);
                else
                    next = CreateInOrder(task, t, next);
                Arm(task, t);
            }
        }
        finally
        {
            if (on == 0)
                task.Puppet.Remote.Syscall(Sysno.prctl, PR_TIMER_CREATE_RESTORE_IDS, RESTORE_IDS_OFF);
        }
    }

    /// <summary>timer_create with the sigevent and the id slot side by side on the scratch page; returns
    /// the id the kernel gave.</summary>
    private static int Create(RestoreTask task, posix_timer_entry t, int wanted)
    {
        var buffer = new byte[TimerStructs.SigEventSize + 8];
        TimerStructs.SigEvent(t).CopyTo(buffer, 0);
        BinaryPrimitives.WriteInt32LittleEndian(buffer.AsSpan(TimerStructs.SigEventSize), wanted);
        ulong at = task.Puppet.Remote.PutOnScratch(buffer);
        ulong idAt = at + TimerStructs.SigEventSize;
        task.Call($"timer_create(clock {(int)t.ClockId}, id {t.ItId})", Sysno.timer_create, (int)t.ClockId, (long)at, (long)idAt);
        var id = new byte[4];
        task.Puppet.Remote.ReadMemory(idAt, id);
        int got = BinaryPrimitives.ReadInt32LittleEndian(id);
        if (got != wanted && wanted >= 0)
            throw new CrispException($"task {task.Pid}: timer_create gave POSIX timer id {got}, not {t.ItId}");
        return got;
    }

    /// <summary>Kernels before 6.15 hand out ids from 0 upwards: create (and delete) until the wanted
    /// one comes out, as CRIU does there.</summary>
    private static int CreateInOrder(RestoreTask task, posix_timer_entry t, int next)
    {
        while (true)
        {
            int id = Create(task, t, -1);
            if (id != next)
                throw new CrispException($"task {task.Pid}: cannot re-create POSIX timer {t.ItId}: the kernel gave id {id}, not {next} (ids out of order)");
            next++;
            if (id == (int)t.ItId)
                return next;
            task.Call($"timer_delete({id})", Sysno.timer_delete, id);
        }
    }

    private static void Arm(RestoreTask task, posix_timer_entry t)
    {
        if ((t.Vsec | t.Vnsec | t.Isec | t.Insec) == 0)
            return;   // disarmed at dump
        var spec = t;
        if ((t.Vsec | t.Vnsec) == 0)   // expired, waiting for its signal to be taken: as for itimers
            spec = new posix_timer_entry(t) { Vsec = t.Isec, Vnsec = t.Insec };
        ulong at = task.Puppet.Remote.PutOnScratch(TimerStructs.ITimerSpec(spec));
        task.Call($"timer_settime({t.ItId})", Sysno.timer_settime, (int)t.ItId, 0, (long)at, 0);
    }
}
