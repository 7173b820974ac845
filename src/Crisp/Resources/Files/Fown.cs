using Crisp.Images.Proto;

namespace Crisp.Resources.Files;

/// <summary>The owner an fd signals (F_SETOWN_EX, F_SETSIG) — fown_entry.</summary>
public static class Fown
{
    /// <summary>The owner of task fd <paramref name="fd"/>, read through crisp's copy of it (or through
    /// <paramref name="copy"/> when given). An owner inside a pid namespace of the tree's own is refused: crisp
    /// sees its host pid, which the restored tree will not have (not carried yet).</summary>
    public static fown_entry Of(OpenFd fd, int copy = -1)
    {
        var (type, pid, signal) = FdOps.GetOwner(copy >= 0 ? copy : fd.Copy.Fd);
        if (pid != 0 && Linux.Proc.ProcStatus.Read(fd.Pid).NSpid.Length > 1)
            throw new CrispException($"task {fd.Pid} fd {fd.Fd}: its SIGIO owner (F_SETOWN {pid}) inside a pid namespace is not supported yet");
        return new fown_entry { PidType = (uint)type, Pid = (uint)pid, Signum = (uint)signal };
    }

    public static void Restore(int fd, fown_entry? fown)
    {
        if (fown is null || (fown.Pid == 0 && fown.Signum == 0))
            return;
        FdOps.SetOwner(fd, (int)fown.PidType, (int)fown.Pid, (int)fown.Signum);
    }
}
