using Crisp.Linux;

namespace Crisp.Compel;

/// <summary>An execute breakpoint in a debug register (DR0, enabled by DR7, set by PTRACE_POKEUSER into the
/// user area): what `crisp check` uses to see whether the hypervisor virtualizes debug registers.</summary>
public static class HardwareBreakpoint
{
    /// <summary>Resumes the stopped <paramref name="thread"/> at <paramref name="resumeAt"/> (no syscall
    /// restart) with a breakpoint at <paramref name="breakAt"/> and waits for its next stop. Returns that wait
    /// status and, for a signal-delivery stop, the thread's rip there (0 otherwise).</summary>
    public static (WaitStatus Status, ulong Rip) RunTo(SeizedThread thread, ulong resumeAt, ulong breakAt) => thread.Tracer.Run(() =>
    {
        int tid = thread.Tid;
        var regs = Ptrace.GetRegs(tid);
        regs.OrigRax = ulong.MaxValue;
        regs.Rip = resumeAt;
        Ptrace.SetRegs(tid, regs);
        Ptrace.Request(PtraceRequest.POKEUSER, tid, UserArea.DebugReg(0), (nint)breakAt);
        Ptrace.Request(PtraceRequest.POKEUSER, tid, UserArea.DebugReg(7), 1);   // DR7: local enable of DR0, execute
        Ptrace.Cont(tid);
        Wait.WaitPid(tid, out var status, Wait.WALL);
        ulong rip = status.Stopped && status.Event == 0 ? Ptrace.GetRegs(tid).Rip : 0;
        return (status, rip);
    });
}
