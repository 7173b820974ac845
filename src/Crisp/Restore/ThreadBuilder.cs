using Crisp.Compel;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Resources.Registers;

namespace Crisp.Restore;

/// <summary>Makes each non-leader thread inside its process's puppet, right after the address space
/// (its stacks and TLS exist) and while the puppet is still root (clone3 with set_tid needs
/// CAP_CHECKPOINT_RESTORE): clone3(CLONE_THREAD…, set_tid) in the leader; the new thread arrives
/// auto-attached and never runs puppet code. Every thread then gets its clear_child_tid address here;
/// the later stages restore per-thread state (comm, signals, robust list, rseq, seccomp, credentials)
/// inside each thread by its own <see cref="RestoreThread.Remote"/>, and <see cref="TaskRelease"/> gives
/// every thread its registers and lets them all go together.</summary>
public sealed class ThreadBuilder : IRestoreStage, IReleaseStep
{
    public string Name => "threads";

    public void Restore(RestoreContext ctx, RestoreTask task)
    {
        SetTidAddress(task.Puppet.Remote, task.Pid, task.Leader.Core);
        foreach (var thread in task.Threads.Skip(1))
        {
            var seized = task.Puppet.CloneThread(thread.Tids);
            thread.Seized = seized;
            thread.Remote = task.Puppet.RemoteFor(seized);
            SetTidAddress(thread.Remote, thread.Tid, thread.Core);
        }
        if (task.Threads.Count > 1)
            ctx.Log.Debug($"threads: {task.Threads.Count - 1} thread(s) made in task {task.Pid}");
    }

    /// <summary>set_tid_address acts on the calling thread: glibc's pthread_join waits for the kernel to
    /// clear the tid word there (CLONE_CHILD_CLEARTID) when the thread exits.</summary>
    private static void SetTidAddress(RemoteTask remote, int tid, core_entry core)
    {
        ulong at = core.ThreadInfo?.ClearTidAddr ?? 0;
        if (at != 0)
            remote.Syscall(Sysno.set_tid_address, (long)at);   // returns the caller's TID, never fails
    }

    /// <summary>The signal mask a thread resumes with.</summary>
    public static ulong BlockedSignals(core_entry core)
        => core.ThreadCore?.HasBlkSigset == true ? core.ThreadCore.BlkSigset : core.Tc?.BlkSigset ?? 0;

    /// <summary>Ends remote syscalls in the non-leader threads and gives each its own registers, FPU state
    /// and signal mask. They stay stopped (they never ran puppet code) until <see cref="Detach"/>.</summary>
    public void Release(RestoreContext ctx, RestoreTask task)
    {
        foreach (var thread in task.OtherThreads)
            thread.Remote!.Dispose();
        foreach (var thread in task.OtherThreads)
            RegistersRestore.Apply(thread.Seized!, thread.Core, BlockedSignals(thread.Core));
    }

    /// <summary>Detaches the non-leader threads (on the tracer thread).</summary>
    public void Detach(RestoreTask task)
    {
        foreach (var thread in task.OtherThreads)
        {
            thread.Seized!.Detach();
        }
    }

    /// <summary>After a failure: kills every process that has threads made by us and reaps those threads
    /// (traced threads stay zombies until their tracer waits for them, and so would their leader).</summary>
    public void Abort(RestoreContext ctx)
    {
        foreach (var task in ctx.Tasks)
        {
            var threads = task.Threads.Skip(1).Where(t => t.Seized is not null).ToList();
            if (threads.Count == 0)
                continue;
            foreach (var t in threads)
                t.Remote?.Abandon();
            Signals.TryKill(task.HostPid);
            ctx.Tracer.Reap(threads.Select(t => t.HostTid));
        }
    }
}
