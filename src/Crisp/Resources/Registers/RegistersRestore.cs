using Crisp.Compel;
using Crisp.Images.Proto;
using Crisp.Linux;

namespace Crisp.Resources.Registers;

/// <summary>Puts a thread's registers back: general (with the syscall-restart fix-up), FPU/SSE/AVX and
/// the signal mask. The last step before the task is let go.</summary>
public static class RegistersRestore
{
    private const long EINTR = 4;

    /// <summary>The registers to resume with. A thread dumped inside an interrupted syscall holds a restart
    /// code in rax and the syscall number in orig_rax. Those are left for the kernel: every thread is let go
    /// by PTRACE_DETACH from a ptrace stop, which always wakes it with TIF_SIGPENDING, so on its way back to
    /// user mode the kernel's own signal code sees the restart code — a handled signal that is pending by
    /// then (one queued while the restored task was still stopped, say) makes the call fail with EINTR as
    /// it would have without a checkpoint, anything else re-runs it. Re-running it from user mode instead
    /// (rip − 2, what CRIU does) would run such a handler first and then sleep again in pause().
    /// -ERESTART_RESTARTBLOCK needs the kernel's restart_block, which the checkpoint lost: a relative sleep
    /// with a rem pointer and an absolute futex wait are re-run the same way (as -ERESTARTNOHAND, which
    /// behaves like it towards a handler); anything else returns EINTR (as CRIU does).</summary>
    public static UserRegs ResumeRegisters(thread_info_x86 info)
    {
        var regs = GpregsCodec.Decode(info.Gpregs);
        if ((long)regs.OrigRax < 0)
            return regs;
        switch ((long)regs.Rax)
        {
            case UserRegs.ERESTARTSYS or UserRegs.ERESTARTNOINTR or UserRegs.ERESTARTNOHAND:
                return regs;
            case UserRegs.ERESTART_RESTARTBLOCK when SleepRestart.Continue(regs) is { } sleep:
                return sleep;
            case UserRegs.ERESTART_RESTARTBLOCK when IsAbsoluteFutexWait(regs):
                // The deadline is absolute: running the same futex wait again is exactly what
                // futex_wait_restart would have done.
                regs.Rax = unchecked((ulong)UserRegs.ERESTARTNOHAND);
                return regs;
            case UserRegs.ERESTART_RESTARTBLOCK:
                regs.Rax = unchecked((ulong)-EINTR);
                break;
        }
        regs.OrigRax = ulong.MaxValue;
        return regs;
    }


    /// <summary>rax holds restart_syscall's number and rip points at a syscall instruction.</summary>
    private static bool AboutToRunRestartSyscall(SeizedThread thread, UserRegs regs) =>
        (long)regs.Rax == Sysno.restart_syscall && SyscallInstruction.StartsWord(thread.PeekData(regs.Rip));
    private const int FUTEX_CMD_MASK = ~(128 | 256), FUTEX_WAIT_BITSET = 9;

    private static bool IsAbsoluteFutexWait(UserRegs regs) =>
        (long)regs.OrigRax == Sysno.futex && ((int)regs.Rsi & FUTEX_CMD_MASK) == FUTEX_WAIT_BITSET;

    public static void Apply(SeizedThread thread, core_entry core, ulong blockedSignals)
    {
        var regs = ResumeRegisters(core.ThreadInfo);
        if (AboutToRunRestartSyscall(thread, regs))
        {
            // Dumped after the kernel had set up restart_syscall() on its way out (rax = its number, rip
            // back on the syscall instruction) but before it ran. Run here it would resume whatever this
            // thread's restart block holds — a puppet's own interrupted 30 s sleep. Give the program the
            // EINTR a lost restart block gives (as for -ERESTART_RESTARTBLOCK above).
            regs.Rax = unchecked((ulong)-EINTR);
            regs.Rip += SyscallInstruction.Length;
            regs.OrigRax = ulong.MaxValue;
        }
        thread.SetRegs(regs);
        if (core.ThreadInfo.Fpregs is { } fp)
        {
            byte[] area = thread.GetXstate();
            FpregsCodec.Encode(fp, area);
            thread.SetXstate(area);
        }
        thread.SetSigMask(blockedSignals);
    }
}
