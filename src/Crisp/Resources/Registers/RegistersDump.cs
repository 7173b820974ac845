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
                ClearTidAddr = ClearTidAddress(ctx, task, thread),
            };
        }
    }

    /// <summary>PR_GET_TID_ADDRESS only answers for the calling thread: ask it by a remote prctl.</summary>
    private static ulong ClearTidAddress(DumpContext ctx, DumpTask task, DumpThread thread)
    {
        if (thread.Tid == task.Pid)
        {
            ulong at = task.Remote.PutOnScratch(new byte[8]);
            task.Call("prctl(PR_GET_TID_ADDRESS)", Sysno.prctl, Prctl.PR_GET_TID_ADDRESS, (long)at);
            return ReadU64(task.Remote, at);
        }
        // The thread's remote stays parked for the later stages (DumpTask.RemoteOf): its registers are read above first.
        var remote = task.RemoteOf(thread);
        ulong scratch = remote.PutOnScratch(new byte[8]);
        long r = remote.Syscall(Sysno.prctl, Prctl.PR_GET_TID_ADDRESS, (long)scratch);
        if (r < 0)
            throw new SyscallException($"prctl(PR_GET_TID_ADDRESS) in thread {thread.Tid}", (int)-r);
        return ReadU64(remote, scratch);
    }

    private static ulong ReadU64(RemoteTask remote, ulong at)
    {
        Span<byte> b = stackalloc byte[8];
        remote.ReadMemory(at, b);
        return BitConverter.ToUInt64(b);
    }
}
