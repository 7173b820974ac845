using Crisp.Images.Proto;

namespace Crisp.Resources.Files;

/// <summary>The owner an fd signals (F_SETOWN_EX, F_SETSIG) — fown_entry. All five fields are required in
/// CRIU's schema: an entry missing one fails to unpack there, so every fown_entry is made here.</summary>
public static class Fown
{
    /// <summary>No owner (also for O_PATH fds, where fcntl(F_GETOWN_EX) is EBADF).</summary>
    public static fown_entry None() => new() { Uid = 0, Euid = 0, Signum = 0, PidType = 0, Pid = 0 };

    public static fown_entry Of(int fd)
    {
        var (type, pid, signal) = FdOps.GetOwner(fd);
        var (uid, euid) = pid != 0 ? FdOps.GetOwnerUids(fd) : (0u, 0u);
        return new fown_entry { Uid = uid, Euid = euid, PidType = (uint)type, Pid = (uint)pid, Signum = (uint)signal };
    }

    public static void Restore(int fd, fown_entry? fown)
    {
        if (fown is null || (fown.Pid == 0 && fown.Signum == 0))
            return;
        FdOps.SetOwner(fd, (int)fown.PidType, (int)fown.Pid, (int)fown.Signum);
    }
}
