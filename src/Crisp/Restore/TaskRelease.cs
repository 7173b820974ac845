using Crisp.Compel;
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
    public string Name => "registers";

    public void Release(RestoreContext ctx, RestoreTask task)
    {
        task.Puppet.Dispose();   // ends remote syscalls: the puppet's own registers are back
        // Pending signals restored into the puppet must not be delivered (and dropped) at the
        // munmap's syscall stops: keep everything blocked until the saved mask goes in.
        task.Puppet.Thread.SetSigMask(~0UL);
        task.Puppet.UnmapOwnPages();
        var core = task.Leader.Core;
        ulong blocked = core.ThreadCore?.HasBlkSigset == true ? core.ThreadCore.BlkSigset : core.Tc.BlkSigset;
        RegistersRestore.Apply(task.Puppet.Thread, core, blocked);
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
                thread.Seized!.SetOptions(Puppet.Options & ~PtraceOptions.ExitKill);
            task.Puppet.Thread.SetOptions(Puppet.Options & ~PtraceOptions.ExitKill);
        }
        foreach (var task in ctx.Tasks)
        {
            // A task dumped in group-stop (CRIU's TASK_STOPPED) gets its stop signal again while still
            // traced, as CRIU does: once detached it takes it before running any of its own code.
            if (task.TaskCore.TaskState == Resources.Core.TaskStates.Stopped)
                RawSyscall.TryCall(Sysno.kill, task.HostPid, task.TaskCore.HasStopSigno && task.TaskCore.StopSigno is > 0 and < 65 ? task.TaskCore.StopSigno : Signals.SIGSTOP);
            foreach (var step in steps)
                step.Detach(task);
        }
    });

    /// <summary>The leader (the puppet's own thread), after the task's other threads.</summary>
    public void Detach(RestoreTask task) => task.Puppet.Thread.Detach();
}
