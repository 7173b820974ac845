using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux.Proc;

namespace Crisp.Dump;

/// <summary>A dead child of a seized task that its parent has not reaped yet. It has no memory, files or
/// threads left: only its ids and the wait status its parent will collect. Like CRIU it goes into
/// pstree.img and gets a core-PID.img holding only task_state TASK_DEAD and that status.</summary>
public sealed class DumpZombie(int pid, DumpTask parent, ProcStat stat)
{
    /// <summary>Its PID in crisp's pid namespace.</summary>
    public int Pid { get; } = pid;
    /// <summary>PID, group and session in its own pid namespace (the images' numbers), read while its parent is
    /// seized (so it cannot be reaped meanwhile).</summary>
    private readonly (int Pid, int Pgid, int Sid, int[] Nested) _virtual = Virtual(pid, stat, parent.TreeLevel);
    public int VirtualPid => _virtual.Pid;
    public DumpTask Parent { get; } = parent;
    public ProcStat Stat { get; } = stat;

    /// <summary>The status wait() will report (/proc/PID/stat field 52, since Linux 3.5): exit code in
    /// bits 8-15, the killing signal in bits 0-6, core-dumped in bit 7.</summary>
    public uint ExitCode => Stat.FieldCount >= 52 ? (uint)Stat.Long(52) : 0;

    public pstree_entry PstreeEntry() => new()
    {
        Pid = (uint)_virtual.Pid,
        Ppid = (uint)Parent.VirtualPid,
        Pgid = (uint)_virtual.Pgid,
        Sid = (uint)_virtual.Sid,
        Threads = { (uint)_virtual.Pid },
        NsPids = { _virtual.Nested.Select(p => (uint)p) },
        NsTids = { _virtual.Nested.Select(p => (uint)p) },
    };

    /// <summary>Its pids in pid namespaces nested below the tree's (none when in the tree's own).</summary>
    public int[] NestedPids => _virtual.Nested;

    private static (int, int, int, int[]) Virtual(int pid, ProcStat stat, int level)
    {
        ProcStatus? status = null;
        try { status = ProcStatus.Read(pid); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        return status is null ? (pid, stat.Pgrp, stat.Session, [])
            : (DumpTask.AtLevel(status.NSpid, level, pid), DumpTask.AtLevel(status.NSpgid, level, stat.Pgrp),
                DumpTask.AtLevel(status.NSsid, level, stat.Session), DumpTask.Below(status.NSpid, level));
    }

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
            ctx.Images.Write(ImageFile.Core(zombie.VirtualPid), zombie.Core());
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
