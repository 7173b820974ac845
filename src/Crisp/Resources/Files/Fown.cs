using Crisp.Images.Proto;

namespace Crisp.Resources.Files;

/// <summary>The owner an fd signals (F_SETOWN_EX, F_SETSIG) — fown_entry.</summary>
public static class Fown
{
    public static fown_entry Of(int fd)
    {
        var (type, pid, signal) = FdOps.GetOwner(fd);
        return new fown_entry { PidType = (uint)type, Pid = (uint)pid, Signum = (uint)signal };
    }

    public static void Restore(int fd, fown_entry? fown)
    {
        if (fown is null || (fown.Pid == 0 && fown.Signum == 0))
            return;
        FdOps.SetOwner(fd, (int)fown.PidType, (int)fown.Pid, (int)fown.Signum);
    }
}
