using Crisp.Linux;
using Crisp.Restore;

namespace Crisp.Resources.Sched;

/// <summary>Scheduling of every restored thread, set by tid from crisp as the last stage (a puppet turned
/// SCHED_IDLE or nice 19 early would slow the rest of its own restore). Only what differs from what the
/// puppet inherited is set. A CPU set that does not exist on this host is reported and left as it is.</summary>
public sealed class SchedRestore : IRestoreStage
{
    public string Name => "sched";

    public void Restore(RestoreContext ctx, RestoreTask task)
    {
        foreach (var thread in task.Threads)
        {
            if (thread.Core.ThreadCore is not { } tc)
                continue;
            int tid = thread.HostTid;   // set from crisp: its own namespace's number
            if (tc.HasSchedPolicy)
            {
                int policy = (int)tc.SchedPolicy, prio = (int)tc.SchedPrio;
                if (SchedCalls.Policy(tid) != policy || SchedCalls.Priority(tid) != prio)
                    SchedCalls.SetScheduler(tid, policy, prio);
            }
            // nice is kept by the kernel under every policy (it matters again after a switch to SCHED_OTHER).
            if (tc.HasSchedNice && SchedCalls.Nice(tid) != tc.SchedNice)
                SchedCalls.SetNice(tid, tc.SchedNice);
            if (tc.HasIoprio && SchedCalls.IoPriority(tid) != (int)tc.Ioprio)
                SchedCalls.SetIoPriority(tid, (int)tc.Ioprio);
            if (tc.CpuAffinity.Count > 0)
                RestoreAffinity(ctx, tid, [.. tc.CpuAffinity]);
        }
    }

    private static void RestoreAffinity(RestoreContext ctx, int tid, ulong[] mask)
    {
        if (Crisp.Linux.Sched.GetAffinity(tid).AsSpan(0, Math.Min(mask.Length, Crisp.Linux.Sched.MaskWords)).SequenceEqual(mask))
            return;
        try
        {
            Crisp.Linux.Sched.SetAffinity(tid, mask);
        }
        catch (SyscallException e) when (e.Errno == Errnos.EINVAL)
        {
            ctx.Log.Warn($"thread {tid}: CPU affinity {string.Join(',', Crisp.Linux.Sched.Cpus(mask))} not restored: none of those CPUs is usable here");
        }
    }
}
