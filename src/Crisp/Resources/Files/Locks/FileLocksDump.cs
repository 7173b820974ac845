using Crisp.Dump;
using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Linux.Proc;

namespace Crisp.Resources.Files.Locks;

/// <summary>Locks held through each task's fds (fdinfo "lock:" lines: the kernel lists a lock on the fd
/// whose description took it, for its owner — the task's fd table for POSIX, the description for
/// flock and OFD) into file-locks.img. Without --file-locks any held lock fails the dump, as in CRIU.
/// A POSIX lock is kept once per task; a flock/OFD lock once per description, with the first task
/// and fd that hold it.</summary>
public sealed class FileLocksDump : IDumpStage
{
    public string Name => "file-locks";

    public void Dump(DumpContext ctx, DumpTask task)
    {
        var state = ctx.Files.Locks;
        foreach (var link in ProcFds.Read(task.Pid))
        {
            FdInfo info;
            try { info = FdInfo.Read(task.Pid, link.Fd); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { continue; }
            foreach (string line in info.GetAll("lock"))
            {
                var l = FileLock.Parse(line)
                    ?? throw new CrispException($"task {task.Pid} fd {link.Fd}: cannot read lock line '{line.Trim()}'");
                if (!ctx.Options.FileLocks)
                    throw new CrispException($"task {task.Pid} fd {link.Fd}: {link.Target} holds a {l} lock; dump with --file-locks to keep it");
                if (!l.Supported)
                    throw new CrispException($"task {task.Pid} fd {link.Fd}: {l.Kind} {l.Mode} {l.Access} lock on {link.Target} is not supported");
                var entry = l.ToEntry(task.VirtualPid, link.Fd);   // the restore finds the task by the images' pid
                if (state.IsNew(task.Pid, link.Fd, l))
                {
                    state.Entries.Add(entry);
                    ctx.Log.Debug($"task {task.Pid} fd {link.Fd}: lock {l}");
                }
            }
        }
    }

    public void Finish(DumpContext ctx)
    {
        var entries = ctx.Files.Locks.Entries;
        if (entries.Count > 0)
            ctx.Images.Write(ImageFile.FileLocks, [.. entries]);
    }
}

/// <summary>Dump-wide: the locks kept so far and where each was seen.</summary>
public sealed class LocksSeen
{
    private readonly List<(int Pid, int Fd, FileLock Lock)> _seen = [];

    public List<file_lock_entry> Entries { get; } = [];

    /// <summary>False for a lock already kept: a POSIX lock of the same task on the same range of the
    /// same inode (dup'ed fds), or a flock/OFD lock of the same description (fork, dup, SCM_RIGHTS).</summary>
    public bool IsNew(int pid, int fd, FileLock l)
    {
        foreach (var (p, f, other) in _seen)
        {
            if (other != l)
                continue;
            if (l.Flag == FileLock.FL_POSIX ? p == pid : Kcmp.SameFile(p, f, pid, fd))
                return false;
        }
        _seen.Add((pid, fd, l));
        return true;
    }
}
