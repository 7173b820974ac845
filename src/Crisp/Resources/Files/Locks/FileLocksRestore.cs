using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Restore;

namespace Crisp.Resources.Files.Locks;

/// <summary>Re-takes each lock of file-locks.img inside its task once the task's fds are installed
/// (remote flock / fcntl F_SETLK / F_OFD_SETLK / F_SETLEASE, never blocking), so a POSIX lock is owned by the task
/// and /proc/locks shows its pid. A lock that cannot be taken fails the restore naming it.</summary>
public sealed class FileLocksRestore : IRestoreStage
{
    private const int LOCK_SH = 1, LOCK_EX = 2, LOCK_NB = 4, F_SETLK = 6, F_OFD_SETLK = 37, F_SETLEASE = 1024;

    public string Name => "file-locks";

    public void Prepare(RestoreContext ctx)
    {
        var byPid = ctx.Files.Locks.ByPid;
        if (!ctx.Images.Exists(ImageFile.FileLocks))
            return;
        foreach (var e in ctx.Images.ReadAll<file_lock_entry>(ImageFile.FileLocks))
        {
            if (!byPid.TryGetValue(e.Pid, out var list))
                byPid[e.Pid] = list = [];
            list.Add(e);
        }
    }

    public void Restore(RestoreContext ctx, RestoreTask task)
    {
        if (!ctx.Files.Locks.ByPid.TryGetValue(task.Pid, out var locks))
            return;
        foreach (var e in locks)
        {
            long r;
            if (e.Flag == FileLock.FL_FLOCK)
            {
                r = task.Puppet.Remote.Syscall(Sysno.flock, e.Fd, (e.Type == FileLock.F_WRLCK ? LOCK_EX : LOCK_SH) | LOCK_NB);
            }
            else if (e.Flag is FileLock.FL_POSIX or FileLock.FL_OFD)
            {
                ulong at = task.Puppet.Remote.PutOnScratch(FileLock.Flock(e));
                r = task.Puppet.Remote.Syscall(Sysno.fcntl, e.Fd, e.Flag == FileLock.FL_OFD ? F_OFD_SETLK : F_SETLK, (long)at);
            }
            else if (e.Flag == FileLock.FL_LEASE)
            {
                // Taken by the task itself: the kernel makes the taker the owner that lease breaks signal.
                r = task.Puppet.Remote.Syscall(Sysno.fcntl, e.Fd, F_SETLEASE, e.Type);
            }
            else
            {
                throw new CrispException($"file-locks.img: task {e.Pid} fd {e.Fd}: lock flag {e.Flag} is not supported");
            }
            if (r < 0)
                throw new CrispException($"task {task.Pid} fd {e.Fd}: cannot take its {Describe(e)} lock again: {Errnos.Describe((int)-r)}");
        }
        ctx.Log.Debug($"task {task.Pid}: {locks.Count} file lock(s) taken");
    }

    private static string Describe(file_lock_entry e) =>
        $"{(e.Flag == FileLock.FL_FLOCK ? "flock" : e.Flag == FileLock.FL_OFD ? "OFD" : e.Flag == FileLock.FL_LEASE ? "lease" : "POSIX")} " +
        $"{(e.Type == FileLock.F_WRLCK ? "write" : "read")} [{e.Start}, +{(e.Len == 0 ? "EOF" : e.Len)}]";
}

/// <summary>Restore-wide: the locks of file-locks.img by the PID that takes them.</summary>
public sealed class LocksByPid
{
    public Dictionary<int, List<file_lock_entry>> ByPid { get; } = [];
}
