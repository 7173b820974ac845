using Crisp.Compel;
using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Restore;

namespace Crisp.Resources.Signals;

/// <summary>Dispositions, the leader's alternate stack, and pending signals re-queued with their saved
/// siginfo. The queueing runs inside the puppet: the kernel lets a task queue a siginfo with
/// si_code &gt;= 0 (kill, tkill) only to itself. The puppet blocks every signal while crisp drives it,
/// so they stay pending; TaskRelease installs the saved mask (blk_sigset).</summary>
public sealed class SignalsRestore : IRestoreStage
{
    public string Name => "signals";

    public void Restore(RestoreContext ctx, RestoreTask task)
    {
        var actions = Sigactions(ctx, task);
        if (actions is not null)
            SetSigactions(task.Puppet.Remote, task.Pid, actions);
        // Queued from inside the task: named by its ids in its own pid namespace.
        foreach (var (remote, tid, tc) in task.ThreadCores)
            RestoreThread(remote, task.OwnPid, task.OwnTid(tid), tc);
        if (task.TaskCore.SignalsS is { } shared)
            foreach (var e in shared.Signals)
                Queue(task.Puppet.Remote, task.Pid, e, $"rt_sigqueueinfo in task {task.Pid}",
                    (sig, at) => task.Puppet.Remote.Syscall(Sysno.rt_sigqueueinfo, task.OwnPid, sig, (long)at));
    }

    /// <summary>One thread's alternate stack and private pending signals, run in that thread
    /// (for threads made by a later stage, call this with a RemoteTask of the thread).</summary>
    public static void RestoreThread(RemoteTask thread, int pid, int tid, thread_core_entry tc)
    {
        if (tc.Sas is { } sas && (sas.SsFlags & AltStack.SS_DISABLE) == 0)
        {
            ulong at = thread.PutOnScratch(AltStack.Encode(sas));
            RemoteTask.ThrowIfFailed(thread.Syscall(Sysno.sigaltstack, (long)at, 0), $"sigaltstack(0x{sas.SsSp:x}, {sas.SsSize}) in thread {tid}");
        }
        if (tc.SignalsP is { } priv)
            foreach (var e in priv.Signals)
                Queue(thread, tid, e, $"rt_tgsigqueueinfo in thread {tid}",
                    (sig, at) => thread.Syscall(Sysno.rt_tgsigqueueinfo, pid, tid, sig, (long)at));
    }

    /// <summary>task_core.sigactions (62 entries, CRIU's current layout), or the older sigacts-PID.img.</summary>
    private static IReadOnlyList<sa_entry>? Sigactions(RestoreContext ctx, RestoreTask task)
    {
        if (task.TaskCore.Sigactions.Count > 0)
        {
            if (task.TaskCore.Sigactions.Count != SignalNumbers.DispositionCount)
                throw new CrispException($"core-{task.Pid}.img: {task.TaskCore.Sigactions.Count} sigactions, want {SignalNumbers.DispositionCount}");
            return task.TaskCore.Sigactions;
        }
        var file = ImageFile.Sigacts(task.Pid);
        if (!ctx.Images.Exists(file))
            return null;
        var list = ctx.Images.ReadAll<sa_entry>(file);
        if (list.Count != SignalNumbers.DispositionCount)
            throw new CrispException($"sigacts-{task.Pid}.img: {list.Count} entries, want {SignalNumbers.DispositionCount}");
        return list;
    }

    /// <summary>All dispositions written to the scratch page at once, then one rt_sigaction each, in one hand-off to the tracer.
    /// A raw rt_sigaction keeps the saved sa_restorer (glibc's wrapper would substitute its own).</summary>
    public static void SetSigactions(RemoteTask remote, int pid, IReadOnlyList<sa_entry> actions)
    {
        var signals = SignalNumbers.WithDisposition().ToArray();
        var all = new byte[signals.Length * KernelSigaction.Size];
        for (int i = 0; i < signals.Length; i++)
            KernelSigaction.FromEntry(actions[i]).Write(all.AsSpan(i * KernelSigaction.Size));
        ulong page = remote.PutOnScratch(all);
        var results = remote.Syscalls([.. signals.Select((sig, i) =>
            ((long)Sysno.rt_sigaction, (long)sig, (long)page + i * KernelSigaction.Size, 0L, (long)KernelSigaction.SigsetSize))]);
        for (int i = 0; i < signals.Length; i++)
            RemoteTask.ThrowIfFailed(results[i], $"rt_sigaction({signals[i]}) in task {pid}");
    }

    private static void Queue(RemoteTask remote, int tid, siginfo_entry e, string what, Func<int, ulong, long> send)
    {
        if (e.Siginfo.Length != SigInfo.Size)
            throw new CrispException($"pending signal of {tid}: siginfo is {e.Siginfo.Length} bytes, want {SigInfo.Size}");
        var info = SigInfo.FromBytes(e.Siginfo.Span);
        ulong at = remote.PutOnScratch(e.Siginfo.Span);
        RemoteTask.ThrowIfFailed(send(info.Signo, at), $"{what} (signal {info.Signo})");
    }

}
