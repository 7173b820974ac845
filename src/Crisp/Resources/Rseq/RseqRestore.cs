using Crisp.Compel;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Restore;

namespace Crisp.Resources.Rseq;

/// <summary>Registers the leader's rseq area again (rseq acts on the calling thread only). Runs after
/// the address space is restored: the kernel writes into the area on every return to user space.</summary>
public sealed class RseqRestore : IRestoreStage
{
    public string Name => "rseq";

    public void Restore(RestoreContext ctx, RestoreTask task)
    {
        if (task.Leader.Core.ThreadCore?.RseqEntry is { } e)
            RestoreThread(task.Puppet.Remote, task.Pid, e);
        foreach (var thread in task.OtherThreads)
            if (thread.Core.ThreadCore?.RseqEntry is { } r)
                RestoreThread(thread.Remote!, thread.Tid, r);
    }

    public static void RestoreThread(RemoteTask thread, int tid, rseq_entry e)
    {
        if (e.RseqAbiPointer == 0)
            return;
        long r = thread.Syscall(Sysno.rseq, (long)e.RseqAbiPointer, e.RseqAbiSize, 0, e.Signature);
        if (r < 0 && r > -4096)
            throw new SyscallException($"rseq(0x{e.RseqAbiPointer:x}, {e.RseqAbiSize}, sig 0x{e.Signature:x}) in thread {tid}", (int)-r);
    }
}
