using Crisp.Dump;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Resources.TaskState;

namespace Crisp.Resources.Signals;

/// <summary>Signal state: dispositions (task_core.sigactions, CRIU's current layout), each thread's
/// blocked mask, alternate stack and private pending queue, and the shared pending queue. Pending
/// signals are peeked, never dequeued, so a --leave-running dump leaves them in place.</summary>
public sealed class SignalsDump : IDumpStage
{
    public string Name => "signals";

    public void Dump(DumpContext ctx, DumpTask task)
    {
        DumpSigactions(task);
        foreach (var thread in task.Threads)
        {
            var tc = thread.Core.ThreadCore;
            tc.SignalsP = PendingSignals.Peek(thread.Thread, shared: false);
            // An open RemoteTask blocks every signal of its thread and keeps the thread's own mask, which
            // is not the one /proc shows while it sits in sigsuspend/ppoll/pselect/epoll_pwait.
            tc.BlkSigset = task.RemoteOf(thread).SavedSigMask;
            var answers = task.AnswersOf(thread);
            answers.Checked(answers.AltStackResult, "sigaltstack");
            tc.Sas = AltStack.Read(answers.AltStackBytes);
        }
        task.TaskCore.BlkSigset = task.Leader.Core.ThreadCore.BlkSigset;
        task.TaskCore.SignalsS = PendingSignals.Peek(task.Leader.Thread, shared: true);
    }

    /// <summary>rt_sigaction(sig, NULL, &amp;old) for every signal, each answer at its own slot of the
    /// scratch page, read back in one go; all in one hand-off to the tracer.</summary>
    private static void DumpSigactions(DumpTask task)
    {
        var signals = SignalNumbers.WithDisposition().ToArray();
        ulong page = task.Remote.PutOnScratch(new byte[signals.Length * KernelSigaction.Size]);
        var results = task.Remote.Syscalls([.. signals.Select((sig, i) =>
            ((long)Sysno.rt_sigaction, (long)sig, 0L, (long)page + i * KernelSigaction.Size, (long)KernelSigaction.SigsetSize))]);
        for (int i = 0; i < signals.Length; i++)
            Compel.RemoteTask.ThrowIfFailed(results[i], $"rt_sigaction({signals[i]}) in thread {task.Pid}");
        var all = new byte[signals.Length * KernelSigaction.Size];
        task.Remote.ReadMemory(page, all);
        task.TaskCore.Sigactions.Clear();
        for (int i = 0; i < signals.Length; i++)
            task.TaskCore.Sigactions.Add(KernelSigaction.Read(all.AsSpan(i * KernelSigaction.Size)).ToEntry());
    }
}
