using System.Globalization;
using Crisp.Dump;
using Crisp.Images.Proto;
using Crisp.Linux.Proc;

namespace Crisp.Resources.Core;

/// <summary>The identity part of core-*.img: state, comm, personality, flags, kernel-object ids, and each
/// thread's name and seccomp mode — the mode as recorded at seize time by the one seize path.</summary>
public sealed class CoreDump : IDumpStage
{
    public string Name => "core";

    public void Dump(DumpContext ctx, DumpTask task)
    {
        var leader = task.Leader.Core;
        leader.Tc = new task_core_entry
        {
            TaskState = task.Process.WasGroupStopped ? TaskStates.Stopped : TaskStates.Alive,
            ExitCode = 0,
            Personality = uint.Parse(Procfs.Host.ReadText(task.Pid, "personality").Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture),
            Flags = task.Stat.Flags,
            Comm = task.Stat.Comm,
        };
        // CRIU's stop_signo: the signal that stopped the group, sent again at restore.
        if (task.Process.WasGroupStopped)
            leader.Tc.StopSigno = (uint)task.Process.Threads.First(t => t.WasGroupStopped).GroupStopSignal;
        leader.Ids = new task_kobj_ids_entry
        {
            VmId = ctx.NewId(),
            FilesId = ctx.NewId(),
            FsId = ctx.NewId(),
            SighandId = ctx.NewId(),
        };
        foreach (var thread in task.Threads)
        {
            var tc = thread.Core.ThreadCore;
            tc.Comm = Procfs.Host.ReadText(task.Pid, $"task/{thread.Tid}/comm").TrimEnd('\n');
            tc.SeccompMode = (seccomp_mode)thread.Thread.SeccompMode;
        }
    }
}
