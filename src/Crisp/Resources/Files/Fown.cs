using Crisp.Linux.Proc;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Restore;

namespace Crisp.Resources.Files;

/// <summary>The owner an fd signals (F_SETOWN_EX, F_SETSIG) — fown_entry. All five fields are required in
/// CRIU's schema: an entry missing one fails to unpack there, so every fown_entry is made here. The pid is
/// the images' (the tree's pid namespace); restore sets owners once the tree exists (<see cref="PendingOwners"/>).</summary>
public static class Fown
{
    private const int F_OWNER_PGRP = 2;

    /// <summary>No owner (also for O_PATH fds, where fcntl(F_GETOWN_EX) is EBADF).</summary>
    public static fown_entry None() => new() { Uid = 0, Euid = 0, Signum = 0, PidType = 0, Pid = 0 };

    /// <summary>The owner of task fd <paramref name="fd"/>, read through crisp's copy of it (or through
    /// <paramref name="copy"/> when given), with the uids CRIU restores it under.</summary>
    public static fown_entry Of(OpenFd fd, int copy = -1)
    {
        int f = copy >= 0 ? copy : fd.Copy.Fd;
        var (type, pid, signal) = FdOps.GetOwner(f);
        var (uid, euid) = pid != 0 ? FdOps.GetOwnerUids(f) : (0u, 0u);
        if (pid != 0)
            pid = InTaskNamespace(fd, type, pid);
        return new fown_entry { Uid = uid, Euid = euid, PidType = (uint)type, Pid = (uint)pid, Signum = (uint)signal };
    }

    /// <summary>F_GETOWN_EX answers in crisp's pid namespace; a task in a pid namespace of its own named the
    /// owner by its pid there (NSpid's last). An owner outside that namespace cannot be named by the
    /// restored tree: refused.</summary>
    private static int InTaskNamespace(OpenFd fd, int type, int hostPid)
    {
        if (Linux.Proc.ProcStatus.Read(fd.Pid).NSpid.Length <= 1)
            return hostPid;
        string what = $"task {fd.Pid} fd {fd.Fd}: its SIGIO owner ({(type == F_OWNER_PGRP ? "process group" : "process")} {hostPid})";
        if (!Procfs.Host.Exists(hostPid)
            || Namespaces.NamespaceKind.Pid.InodeOf(hostPid) != Namespaces.NamespaceKind.Pid.InodeOf(fd.Pid))
            throw new CrispException($"{what} is outside the task's pid namespace");
        return Linux.Proc.ProcStatus.Read(hostPid).NSpid[^1];
    }

    /// <summary>Sets the owner of crisp's <paramref name="fd"/> once the restored tree exists (the owner is one
    /// of its tasks, by its pid in the images).</summary>
    public static void Restore(RestoreContext ctx, int fd, fown_entry? fown)
    {
        if (fown is null || (fown.Pid == 0 && fown.Signum == 0))
            return;
        ctx.Files.Owners.Add(ctx, fd, fown);
    }
}

/// <summary>Restore-wide: owners of descriptions made before the tree existed (their pids would not be
/// found), set from crisp once it does, each pid translated to the restored task's host pid.</summary>
public sealed class PendingOwners : IDisposable
{
    private readonly List<(UnixFd Fd, fown_entry Owner)> _pending = [];
    private bool _treeExists;

    public void Add(RestoreContext ctx, int fd, fown_entry owner)
    {
        if (_treeExists)
            Set(ctx, fd, owner);   // a description made late (a pidfd, a terminal): its owner exists already
        else
            _pending.Add((new UnixFd(FdOps.Fcntl(fd, FdOps.F_DUPFD_CLOEXEC, 0)), owner));
    }

    /// <summary>Once every task of the tree exists.</summary>
    public void Apply(RestoreContext ctx)
    {
        _treeExists = true;
        foreach (var (fd, o) in _pending)
            using (fd)
                Set(ctx, fd.Fd, o);
        _pending.Clear();
    }

    private static void Set(RestoreContext ctx, int fd, fown_entry o)
    {
        int pid = o.Pid == 0 ? 0 : ctx.Tasks.FirstOrDefault(t => t.Pid == o.Pid)?.HostPid ?? (int)o.Pid;
        try { FdOps.SetOwner(fd, (int)o.PidType, pid, (int)o.Signum); }
        catch (SyscallException e) { ctx.Log.Warn($"fd owner {o.Pid} (signal {o.Signum}) not restored: {e.Message}"); }
    }

    public void Dispose()
    {
        foreach (var (fd, _) in _pending)
            fd.Dispose();
        _pending.Clear();
    }
}
