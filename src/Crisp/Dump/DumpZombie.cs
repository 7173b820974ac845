using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux.Proc;

namespace Crisp.Dump;

/// <summary>A dead child of a seized task that its parent has not reaped yet. It has no memory, files or
/// threads left: only its ids and the wait status its parent will collect. Like CRIU it goes into
/// pstree.img and gets a core-PID.img holding only task_state TASK_DEAD and that status.</summary>
public sealed class DumpZombie(int pid, DumpTask parent, ProcStat stat)
{
    public int Pid { get; } = pid;
    public DumpTask Parent { get; } = parent;
    public ProcStat Stat { get; } = stat;

    /// <summary>The status wait() will report (/proc/PID/stat field 52, since Linux 3.5): exit code in
    /// bits 8-15, the killing signal in bits 0-6, core-dumped in bit 7.</summary>
    public uint ExitCode => Stat.FieldCount >= 52 ? (uint)Stat.Long(52) : 0;

    public pstree_entry PstreeEntry() => new()
    {
        Pid = (uint)Pid,
        Ppid = (uint)Parent.Pid,
        Pgid = (uint)Stat.Pgrp,
        Sid = (uint)Stat.Session,
        Threads = { (uint)Pid },
    };

    public core_entry Core() => new()
    {
        Mtype = core_entry.Types.march.X8664,
        Tc = new task_core_entry
        {
            TaskState = Resources.Core.TaskStates.Dead,
            ExitCode = ExitCode,
            Personality = 0,
            Flags = 0,
            BlkSigset = 0,
            Comm = Stat.Comm,
        },
    };

    /// <summary>Adds every zombie of the tree to pstree.img (after the live tasks: a zombie has no children,
    /// so parents still come first) and writes its core.</summary>
    public static void WriteAll(DumpContext ctx, ImageWriter pstree)
    {
        foreach (var zombie in ctx.Tasks.SelectMany(t => t.Zombies))
        {
            pstree.Write(zombie.PstreeEntry());
            ctx.Images.Write(ImageFile.Core(zombie.Pid), zombie.Core());
        }
    }
}

/// <summary>What /proc says a listed child is now.</summary>
public enum ChildState
{
    /// <summary>Running or sleeping: to be seized.</summary>
    Live,
    /// <summary>The whole thread group has exited and waits for its parent: dumped as a zombie.</summary>
    Zombie,
    /// <summary>Its leader thread is a zombie but other threads still run (an exiting process, or a leader
    /// that called pthread_exit).</summary>
    ZombieLeader,
    /// <summary>Reaped already (or being reaped).</summary>
    Gone,
}

public static class ChildStates
{
    public static (ChildState State, ProcStat? Stat) Read(int pid)
    {
        ProcStat stat;
        try { stat = ProcStat.Read(pid); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or Linux.SyscallException)
        {
            return (ChildState.Gone, null);
        }
        if (stat.State == 'X')
            return (ChildState.Gone, stat);
        if (stat.State != 'Z')
            return (ChildState.Live, stat);
        int threads;
        try { threads = ProcTasks.Threads(pid).Length; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or Linux.SyscallException) { return (ChildState.Gone, stat); }
        return (threads <= 1 ? ChildState.Zombie : ChildState.ZombieLeader, stat);
    }
}
