using Crisp.Compel;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Restore;

namespace Crisp.Resources.TaskState;

/// <summary>Child-subreaper flag of the process; robust futex list and parent-death signal of the leader
/// (other threads: <see cref="RestoreThread"/> from the stage that makes them).</summary>
public sealed class TaskStateRestore : IRestoreStage
{
    public string Name => "taskstate";

    public void Restore(RestoreContext ctx, RestoreTask task)
    {
        if (task.TaskCore.HasChildSubreaper && task.TaskCore.ChildSubreaper)
            task.Call("prctl(PR_SET_CHILD_SUBREAPER)", Sysno.prctl, Prctl.PR_SET_CHILD_SUBREAPER, 1);
        foreach (var (remote, tid, tc) in task.ThreadCores)
            RestoreThread(remote, tid, tc);
    }

    /// <summary>Runs in the thread itself: both calls act on the calling thread only.</summary>
    public static void RestoreThread(RemoteTask thread, int tid, thread_core_entry tc)
    {
        if (tc.FutexRla != 0)
            RemoteTask.ThrowIfFailed(thread.Syscall(Sysno.set_robust_list, (long)tc.FutexRla, tc.FutexRlaLen),
                $"set_robust_list(0x{tc.FutexRla:x}, {tc.FutexRlaLen}) in thread {tid}");
        if (tc.HasPdeathSig && tc.PdeathSig != 0)
            RemoteTask.ThrowIfFailed(thread.Syscall(Sysno.prctl, Prctl.PR_SET_PDEATHSIG, tc.PdeathSig),
                $"prctl(PR_SET_PDEATHSIG, {tc.PdeathSig}) in thread {tid}");
    }

}
