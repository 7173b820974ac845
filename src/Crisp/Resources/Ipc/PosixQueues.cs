using Crisp.Linux;

namespace Crisp.Resources.Ipc;

/// <summary>POSIX message queues live in the mqueue filesystem of their IPC namespace, with or without an fd
/// open on them. crisp does not carry them yet, so a namespace of the tree's own that holds any is refused by
/// name rather than restored without them. Listed through a detached mount of that namespace's mqueue fs
/// (fsopen/fsmount from a thread in it; nothing is attached to any mount tree).</summary>
public static class PosixQueues
{
    private const int FSOPEN_CLOEXEC = 1, FSCONFIG_CMD_CREATE = 6, FSMOUNT_CLOEXEC = 1;

    /// <summary>Names of the queues in the calling thread's IPC namespace; null when they cannot be listed.</summary>
    public static unsafe List<string>? List(out string? why)
    {
        why = null;
        byte[] type = "mqueue\0"u8.ToArray();
        long fs;
        fixed (byte* t = type)
            fs = RawSyscall.TryCall(Sysno.fsopen, (long)t, FSOPEN_CLOEXEC);
        if (fs < 0)
        {
            why = $"fsopen(mqueue): {Errnos.Describe((int)-fs)}";
            return null;
        }
        using var fsFd = new UnixFd((int)fs);
        long r = RawSyscall.TryCall(Sysno.fsconfig, fs, FSCONFIG_CMD_CREATE, 0, 0, 0);
        if (r < 0)
        {
            why = $"fsconfig(mqueue): {Errnos.Describe((int)-r)}";
            return null;
        }
        long mnt = RawSyscall.TryCall(Sysno.fsmount, fs, FSMOUNT_CLOEXEC, 0);
        if (mnt < 0)
        {
            why = $"fsmount(mqueue): {Errnos.Describe((int)-mnt)}";
            return null;
        }
        using var mntFd = new UnixFd((int)mnt);
        return Directory.EnumerateFileSystemEntries($"/proc/thread-self/fd/{mnt}").Select(p => "/" + Path.GetFileName(p)).Order().ToList();
    }
}
