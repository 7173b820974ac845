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
        foreach (var (remote, tid, tc) in task.ThreadCores)
            if (tc.RseqEntry is { } e)
                RestoreThread(remote, tid, e);
    }

    public static void RestoreThread(RemoteTask thread, int tid, rseq_entry e)
    {
        if (e.RseqAbiPointer == 0)
            return;
        thread.Call($"rseq(0x{e.RseqAbiPointer:x}, {e.RseqAbiSize}, sig 0x{e.Signature:x})", Sysno.rseq,
            (long)e.RseqAbiPointer, e.RseqAbiSize, 0, e.Signature);
    }
}
