using Crisp.Compel;
using Crisp.Dump;
using Crisp.Images.Proto;
using Crisp.Linux;

namespace Crisp.Resources.Registers;

/// <summary>Each thread's general registers (fs/gs base included), FPU/SSE/AVX state (XSAVE), and
/// its clear_child_tid address. Runs before any remote syscall, so the registers are the task's own.</summary>
public sealed class RegistersDump : IDumpStage
{
    public string Name => "registers";

    public void Dump(DumpContext ctx, DumpTask task)
    {
        foreach (var thread in task.Threads)
        {
            var regs = thread.Thread.GetRegs();
            byte[] xsave = thread.Thread.GetXstate();
            thread.Core.ThreadInfo = new thread_info_x86
            {
                Gpregs = GpregsCodec.Encode(regs),
                Fpregs = FpregsCodec.Decode(xsave),
                ClearTidAddr = ClearTidAddress(task, thread),
            };
        }
    }

    /// <summary>PR_GET_TID_ADDRESS only answers for the calling thread: ask it by a remote prctl.</summary>
    private static ulong ClearTidAddress(DumpTask task, DumpThread thread)
    {
        // The leader's remote, or the thread's, which stays parked for the later stages (DumpTask.RemoteOf): its
        // registers are read above first.
        var remote = task.RemoteOf(thread);
        ulong scratch = remote.PutOnScratch(new byte[8]);
        remote.Call($"prctl(PR_GET_TID_ADDRESS) in thread {thread.Tid}", Sysno.prctl, Prctl.PR_GET_TID_ADDRESS, (long)scratch);
        return ReadU64(remote, scratch);
    }

    private static ulong ReadU64(RemoteTask remote, ulong at)
    {
        Span<byte> b = stackalloc byte[8];
        remote.ReadMemory(at, b);
        return BitConverter.ToUInt64(b);
    }
}
