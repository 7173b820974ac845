using Crisp.Images.Proto;
using Crisp.Linux;

namespace Crisp.Resources.Registers;

/// <summary>Puts a thread's registers back: general (with the syscall-restart fix-up), FPU/SSE/AVX and
/// the signal mask. Called on the tracer thread as the last step before the task is let go.</summary>
public static class RegistersRestore
{
    private const long EINTR = 4;

    /// <summary>The registers to resume with. A task dumped while stopped inside an interrupted syscall
    /// holds a restart code in rax; the kernel's own restart state is gone after a checkpoint, so we do
    /// what it would have done: re-run the syscall, or for restart_syscall() report EINTR (as CRIU does).</summary>
    public static UserRegs ResumeRegisters(thread_info_x86 info)
    {
        var regs = GpregsCodec.Decode(info.Gpregs);
        if (SleepRestart.Continue(regs) is { } sleep)
            return sleep;
        if ((long)regs.OrigRax >= 0)
        {
            switch ((long)regs.Rax)
            {
                case UserRegs.ERESTARTSYS or UserRegs.ERESTARTNOINTR or UserRegs.ERESTARTNOHAND:
                    regs.Rax = regs.OrigRax;
                    regs.Rip -= 2;
                    break;
                case UserRegs.ERESTART_RESTARTBLOCK when IsAbsoluteFutexWait(regs):
                    // The deadline is absolute: running the same futex wait again is exactly what
                    // futex_wait_restart would have done.
                    regs.Rax = regs.OrigRax;
                    regs.Rip -= 2;
                    break;
                case UserRegs.ERESTART_RESTARTBLOCK:
                    regs.Rax = unchecked((ulong)-EINTR);
                    break;
            }
        }
        regs.OrigRax = ulong.MaxValue;
        return regs;
    }

    private const long NrFutex = 202;
    private const int FUTEX_CMD_MASK = ~(128 | 256), FUTEX_WAIT_BITSET = 9;

    private static bool IsAbsoluteFutexWait(UserRegs regs) =>
        (long)regs.OrigRax == NrFutex && ((int)regs.Rsi & FUTEX_CMD_MASK) == FUTEX_WAIT_BITSET;

    public static void Apply(int tid, core_entry core, ulong blockedSignals)
    {
        Ptrace.SetRegs(tid, ResumeRegisters(core.ThreadInfo));
        if (core.ThreadInfo.Fpregs is { } fp)
        {
            byte[] area = Xsave.GetXstate(tid);
            FpregsCodec.Encode(fp, area);
            Xsave.SetXstate(tid, area);
        }
        Ptrace.SetSigMask(tid, blockedSignals);
    }
}
