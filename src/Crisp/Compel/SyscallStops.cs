using Crisp.Linux;

namespace Crisp.Compel;

/// <summary>One syscall run in its two-stop form: the registers go in, PTRACE_SYSCALL takes the thread to
/// the syscall-entry stop and on to the syscall-exit stop, whose registers come back (the result in the
/// return register, the thread stopped where the syscall instruction left it). Needs PTRACE_O_TRACESYSGOOD.
/// No int3 and no single-step: the one loop both remote calls on the vdso trampoline and a puppet's last
/// syscall use. Runs on the tracer thread.</summary>
internal static class SyscallStops
{
    private const int SyscallStop = Signals.SIGTRAP | 0x80;   // with PTRACE_O_TRACESYSGOOD

    /// <param name="died">The exception to throw when the thread dies on the way.</param>
    /// <param name="straySignal">Told of a signal-delivery stop's signal, which is dropped (the caller may
    /// re-send it later); event stops are simply resumed.</param>
    public static UserRegs Run(int tid, UserRegs regs, Func<WaitStatus, Exception> died, Action<int>? straySignal = null)
    {
        Ptrace.SetRegs(tid, regs);
        Ptrace.Syscall(tid, 0);
        bool entered = false;
        while (true)
        {
            Wait.WaitPid(tid, out var status, Wait.WALL);
            if (status.Dead)
                throw died(status);
            if (!status.Stopped)
                continue;
            if (status.Event == 0 && status.StopSignal == SyscallStop)
            {
                if (entered)
                    return Ptrace.GetRegs(tid);
                entered = true;
            }
            else if (status.Event == 0)
                straySignal?.Invoke(status.StopSignal);
            Ptrace.Syscall(tid, 0);
        }
    }
}
