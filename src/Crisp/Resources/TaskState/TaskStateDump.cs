using System.Buffers.Binary;
using Crisp.Dump;
using Crisp.Linux;
using Crisp.Linux.Proc;

namespace Crisp.Resources.TaskState;

/// <summary>prctl-ish per-task state: each thread's parent-death signal, timer slack and robust futex list,
/// and the process's child-subreaper flag, oom_score_adj and loginuid. (dumpable and THP-disable live in
/// mm_entry, with the Memory resource, as in CRIU.)</summary>
public sealed class TaskStateDump : IDumpStage
{
    public string Name => "taskstate";

    public void Dump(DumpContext ctx, DumpTask task)
    {
        foreach (var thread in task.Threads)
        {
            var tc = thread.Core.ThreadCore;
            (tc.FutexRla, tc.FutexRlaLen) = RobustList(thread.Tid);
            var answers = task.AnswersOf(thread);
            answers.Checked(answers.PdeathResult, "prctl(PR_GET_PDEATHSIG)");
            tc.PdeathSig = answers.Pdeath;
            tc.TimerSlackNs = (ulong)answers.Checked(answers.TimerSlack, "prctl(PR_GET_TIMERSLACK)");
        }
        using (var leader = new ThreadRemote(ctx, task, task.Leader))
        {
            byte[] sub = leader.CallForBytes(4, at => leader.Call("prctl(PR_GET_CHILD_SUBREAPER)", Sysno.prctl, Prctl.PR_GET_CHILD_SUBREAPER, (long)at));
            task.TaskCore.ChildSubreaper = BinaryPrimitives.ReadInt32LittleEndian(sub) != 0;
        }
        task.TaskCore.OomScoreAdj = (int)ProcFiles.Dec(Procfs.Host.ReadText(task.Pid, "oom_score_adj").Trim());
        task.TaskCore.Loginuid = (uint)ProcFiles.UDec(Procfs.Host.ReadText(task.Pid, "loginuid").Trim());
    }

    /// <summary>get_robust_list(tid) answers for any thread we may ptrace.</summary>
    private static unsafe (ulong Head, uint Length) RobustList(int tid)
    {
        ulong head = 0, len = 0;
        RawSyscall.Call($"get_robust_list({tid})", Sysno.get_robust_list, tid, (long)&head, (long)&len);
        return (head, (uint)len);
    }
}
