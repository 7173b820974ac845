using Crisp.Images.Proto;

namespace Crisp.Resources.Files;

/// <summary>The owner an fd signals (F_SETOWN_EX, F_SETSIG) — fown_entry. All five fields are required in
/// CRIU's schema: an entry missing one fails to unpack there, so every fown_entry is made here.</summary>
public static class Fown
{
    /// <summary>No owner (also for O_PATH fds, where fcntl(F_GETOWN_EX) is EBADF).</summary>
    public static fown_entry None() => new() { Uid = 0, Euid = 0, Signum = 0, PidType = 0, Pid = 0 };

    /// <summary>The owner of task fd <paramref name="fd"/>, read through crisp's copy of it (or through
    /// <paramref name="copy"/> when given), with the uids CRIU restores it under. An owner inside a pid
    /// namespace of the tree's own is refused: crisp sees its host pid, which the restored tree will not have
    /// (not carried yet).</summary>
    public static fown_entry Of(OpenFd fd, int copy = -1)
    {
        int f = copy >= 0 ? copy : fd.Copy.Fd;
        var (type, pid, signal) = FdOps.GetOwner(f);
        if (pid != 0 && Linux.Proc.ProcStatus.Read(fd.Pid).NSpid.Length > 1)
            throw new CrispException($"task {fd.Pid} fd {fd.Fd}: its SIGIO owner (F_SETOWN {pid}) inside a pid namespace is not supported yet");
        var (uid, euid) = pid != 0 ? FdOps.GetOwnerUids(f) : (0u, 0u);
        return new fown_entry { Uid = uid, Euid = euid, PidType = (uint)type, Pid = (uint)pid, Signum = (uint)signal };
    }

    public static void Restore(int fd, fown_entry? fown)
    {
        if (fown is null || (fown.Pid == 0 && fown.Signum == 0))
            return;
        FdOps.SetOwner(fd, (int)fown.PidType, (int)fown.Pid, (int)fown.Signum);
    }
}
