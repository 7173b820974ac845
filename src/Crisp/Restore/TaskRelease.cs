using Crisp.Compel.Puppets;
using Crisp.Linux;
using Crisp.Resources.Registers;

namespace Crisp.Restore;

/// <summary>The end of a puppet: its own pages are unmapped by its last syscall (stopping at the syscall's
/// exit, where rip is no longer needed), its registers and signal mask become the task's, and — once
/// every task is ready — all are detached together. The release phase's last participant: the other threads
/// (<see cref="ThreadBuilder"/>) have their registers by then.</summary>
public sealed class TaskRelease : IReleaseStep
{
    private const int SyscallStop = 5 | 0x80;   // SIGTRAP | 0x80 with PTRACE_O_TRACESYSGOOD

    public string Name => "registers";

    public void Release(RestoreContext ctx, RestoreTask task)
    {
        task.Puppet.Dispose();   // ends remote syscalls: the puppet's own registers are back
        ctx.Tracer.Run(() =>
        {
            // Pending signals restored into the puppet must not be delivered (and dropped) at the
            // munmap's syscall stops: keep everything blocked until the saved mask goes in.
            Ptrace.SetSigMask(task.Puppet.Thread.Tid, ~0UL);
            UnmapPuppetPages(task.Puppet.Thread.Tid);
            var core = task.Leader.Core;
            ulong blocked = core.ThreadCore?.HasBlkSigset == true ? core.ThreadCore.BlkSigset : core.Tc.BlkSigset;
            RegistersRestore.Apply(task.Puppet.Thread.Tid, core, blocked);
        });
    }

    /// <summary>Every release step's threads of every task let go, on the tracer thread.</summary>
    public static void DetachAll(RestoreContext ctx, IReadOnlyList<IReleaseStep> steps) => ctx.Tracer.Run(() =>
    {
        // Every thread is ready: from here on crisp's death must leave the whole tree running, not kill
        // the tasks still traced when it comes (EXITKILL) while those detached before run on. So EXITKILL
        // goes first, everywhere (a few microseconds), and the detaching — which takes longer — after.
        foreach (var task in ctx.Tasks)
        {
            foreach (var thread in task.OtherThreads)
                Ptrace.SetOptions(thread.HostTid, Puppet.Options & ~PtraceOptions.ExitKill);
            Ptrace.SetOptions(task.Puppet.Thread.Tid, Puppet.Options & ~PtraceOptions.ExitKill);
        }
        foreach (var task in ctx.Tasks)
        {
            // A task dumped in group-stop (CRIU's TASK_STOPPED) gets its stop signal again while still
            // traced, as CRIU does: once detached it takes it before running any of its own code.
            if (task.TaskCore.TaskState == Resources.Core.TaskStates.Stopped)
                RawSyscall.TryCall(Sysno.kill, task.HostPid, task.TaskCore.HasStopSigno && task.TaskCore.StopSigno is > 0 and < 65 ? task.TaskCore.StopSigno : 19);
            foreach (var step in steps)
                step.Detach(task);
        }
    });

    /// <summary>The leader (the puppet's own thread), after the task's other threads.</summary>
    public void Detach(RestoreTask task)
    {
        Ptrace.Detach(task.Puppet.Thread.Tid);
        task.Puppet.Thread.IsDetached = true;
    }

    /// <summary>munmap of the puppet program's pages, run as the thread's last syscall in the two-stop form.</summary>
    private static void UnmapPuppetPages(int tid)
    {
        var regs = Ptrace.GetRegs(tid);
        regs.Rip = PuppetElf.SyscallGadgetAddress;
        regs.Rax = (ulong)Sysno.munmap;
        regs.OrigRax = ulong.MaxValue;
        regs.Rdi = PuppetElf.BaseAddress;
        regs.Rsi = PuppetElf.End - PuppetElf.BaseAddress;
        Ptrace.SetRegs(tid, regs);
        for (int stop = 0; stop < 2; stop++)
        {
            Ptrace.Syscall(tid);
            WaitSyscallStop(tid);
        }
        long result = (long)Ptrace.GetRegs(tid).Rax;
        if (result != 0)
            throw new SyscallException($"munmap of the puppet pages in task {tid}", (int)-result);
    }

    private static void WaitSyscallStop(int tid)
    {
        while (true)
        {
            Wait.WaitPid(tid, out var status, Wait.WALL);
            if (status.Dead)
                throw new CrispException($"task {tid} died while being released ({status})");
            if (status.Stopped && status.Event == 0 && status.StopSignal == SyscallStop)
                return;
            Ptrace.Syscall(tid);   // anything else (a stray stop): keep going, dropping its signal
        }
    }
}
