using Crisp.Linux;

namespace Crisp.Resources.Registers;

/// <summary>A thread dumped inside nanosleep/clock_nanosleep (relative) holds -ERESTART_RESTARTBLOCK: the
/// kernel meant to resume it through restart_syscall() with the sleep's end in the thread's
/// restart_block, which a checkpoint loses. When the program gave a <c>rem</c> pointer, the kernel wrote
/// the time still to sleep there as the sleep was interrupted; so the restored thread runs the same
/// syscall again with its request pointing at <c>rem</c>: it sleeps for the remaining time (not counting
/// the time the process was not running) and then returns 0, as the original sleep would have. The one
/// visible difference: the request register (rdi for nanosleep, rdx for clock_nanosleep) holds the rem
/// pointer afterwards. A handled signal pending when the thread first runs makes the sleep fail with
/// EINTR instead, as it would have in the kernel. Without <c>rem</c> the remaining time is unknown: the sleep returns EINTR, as the
/// kernel lets a program see after a signal (what CRIU does for every restart_syscall).
/// (Re-arming the kernel's own restart block — re-running the sleep in the restored thread and
/// interrupting it with PTRACE_INTERRUPT — was tried: the interrupt did not end the re-armed sleep.)</summary>
public static class SleepRestart
{
    private const long TIMER_ABSTIME = 1;

    /// <summary>Registers that continue the interrupted sleep of <paramref name="regs"/>, or null.</summary>
    public static UserRegs? Continue(UserRegs regs)
    {
        if ((long)regs.Rax != UserRegs.ERESTART_RESTARTBLOCK)
            return null;
        switch ((long)regs.OrigRax)
        {
            case Sysno.nanosleep when regs.Rsi != 0:
                regs.Rdi = regs.Rsi;   // nanosleep(rem, rem): the request is read before rem is written
                break;
            case Sysno.clock_nanosleep when ((long)regs.Rsi & TIMER_ABSTIME) == 0 && regs.R10 != 0:
                regs.Rdx = regs.R10;   // clock_nanosleep(clock, 0, rem, rem)
                break;
            default:
                return null;
        }
        regs.Rax = unchecked((ulong)UserRegs.ERESTARTNOHAND);   // the kernel re-runs it (see RegistersRestore)
        return regs;
    }
}
