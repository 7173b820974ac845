using Crisp.Dump;

namespace Crisp.Resources.Sched;

/// <summary>Each thread's scheduling: policy (with reset-on-fork), real-time priority and nice into CRIU's
/// thread_core fields; CPU affinity and I/O priority into crisp's own. Read by tid from crisp.</summary>
public sealed class SchedDump : IDumpStage
{
    public string Name => "sched";

    public void Dump(DumpContext ctx, DumpTask task)
    {
        foreach (var thread in task.Threads)
        {
            int tid = thread.Tid;
            var tc = thread.Core.ThreadCore;
            int policy = SchedCalls.Policy(tid);
            if ((policy & ~SchedCalls.SCHED_RESET_ON_FORK) is SchedCalls.SCHED_DEADLINE or SchedCalls.SCHED_EXT)
                throw new CrispException($"task {task.Pid} thread {tid}: scheduling policy {PolicyName(policy)} is not supported yet");
            tc.SchedPolicy = (uint)policy;
            tc.SchedPrio = (uint)SchedCalls.Priority(tid);
            tc.SchedNice = SchedCalls.Nice(tid);
            tc.CpuAffinity.AddRange(Crisp.Linux.Sched.GetAffinity(tid));
            tc.Ioprio = (uint)SchedCalls.IoPriority(tid);
        }
    }

    public static string PolicyName(int policy) => (policy & ~SchedCalls.SCHED_RESET_ON_FORK) switch
    {
        SchedCalls.SCHED_OTHER => "SCHED_OTHER",
        SchedCalls.SCHED_FIFO => "SCHED_FIFO",
        SchedCalls.SCHED_RR => "SCHED_RR",
        SchedCalls.SCHED_BATCH => "SCHED_BATCH",
        SchedCalls.SCHED_IDLE => "SCHED_IDLE",
        SchedCalls.SCHED_DEADLINE => "SCHED_DEADLINE",
        SchedCalls.SCHED_EXT => "SCHED_EXT",
        var p => $"policy {p}",
    };
}
