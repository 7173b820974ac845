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

    /// <summary>PR_GET_TID_ADDRESS only answers for the calling thread: asked by a remote prctl, with the thread's other
    /// answers (<see cref="DumpTask.AnswersOf"/>; its registers are read above first).</summary>
    private static ulong ClearTidAddress(DumpTask task, DumpThread thread)
    {
        var answers = task.AnswersOf(thread);
        answers.Checked(answers.TidAddressResult, "prctl(PR_GET_TID_ADDRESS)");
        return answers.TidAddress;
    }
}
