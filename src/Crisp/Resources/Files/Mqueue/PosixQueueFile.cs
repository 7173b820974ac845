using Crisp.Dump;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Resources.Ipc;
using Crisp.Restore;

namespace Crisp.Resources.Files.Mqueue;

/// <summary>An fd open on a POSIX message queue (mq_open): "/NAME" in the mqueue fs of the task's IPC namespace.
/// CRIU has no kind for it, so it is an EXT entry (which CRIU leaves to a plugin, and refuses without one) with
/// crisp's part: the queue's name and the fd's flags. The queue itself belongs to the namespace: one of the tree's
/// own is dumped whole with its queues (<see cref="PosixQueues"/>) and created again before any fd is opened; in a
/// namespace the tree shares with crisp the queue is not the tree's, and the fd is opened on it again by name.
/// Opened late (<see cref="OpenTiming.Late"/>): the restored namespace and its queues exist by then.</summary>
public sealed class PosixQueueFile : IFileKind
{
    private const int Kept = FileIo.O_ACCMODE | FileIo.O_NONBLOCK;

    public fd_types Type => fd_types.Ext;

    public bool Claims(OpenFd fd) => FileKinds.IsMqueue(fd);

    public OpenTiming Timing(RestoreContext ctx, file_entry entry) => OpenTiming.Late;

    public file_entry Dump(DumpContext ctx, uint id, OpenFd fd)
    {
        const string Deleted = " (deleted)";
        string name = fd.Target.EndsWith(Deleted, StringComparison.Ordinal) ? fd.Target[..^Deleted.Length] : fd.Target;
        string what = $"task {fd.Pid} fd {fd.Fd}: POSIX message queue {name}";
        // The name must still lead to this queue in the task's namespace (one unlinked since cannot be opened again);
        // a reader of its own tells whether a notification is registered (the task's fd may be write-only).
        using var ns = FileIo.Open(Linux.Proc.Procfs.Host.Path(fd.Pid, "ns/ipc"), FileIo.O_RDONLY | FileIo.O_CLOEXEC);
        int? notifier = fd.Target.EndsWith(Deleted, StringComparison.Ordinal) ? null : IpcNamespaceThread.Run(ns, () =>
        {
            try
            {
                using var named = PosixMq.Open(name, FileIo.O_RDONLY | FileIo.O_CLOEXEC);
                return FdOps.Stat(named.Fd).Ino == fd.Stat.Ino ? PosixMq.NotifyPid(named.Fd) : (int?)null;
            }
            catch (SyscallException e) when (e.Errno == Errnos.ENOENT)
            {
                return null;
            }
        });
        if (notifier is null)
            throw new CrispException($"{what} was unlinked (mq_unlink) while open: not supported");
        if (notifier != 0)
            throw new CrispException($"{what} has a notification (mq_notify) registered by pid {notifier}: not supported");
        return new file_entry
        {
            Type = Type,
            Id = id,
            Ext = new ext_file_entry
            {
                Id = id,
                Fown = Fown.Of(fd),
                PosixMq = new crisp_posix_mq_file { Name = name, Flags = (uint)(fd.Flags & Kept) },
            },
        };
    }

    public UnixFd Open(RestoreContext ctx, file_entry entry)
    {
        var e = entry.Ext?.PosixMq ?? throw new CrispException($"files.img: EXT entry {entry.Id} is not a POSIX message queue (crisp knows no other external kind)");
        var ipc = ctx.Ipc.Namespace;
        var fd = IpcNamespaceThread.Run(ipc.OwnNamespace ? ipc.Namespace : null, () =>
        {
            try
            {
                return PosixMq.Open(e.Name, (int)(e.Flags & FileIo.O_ACCMODE) | FileIo.O_CLOEXEC);
            }
            catch (SyscallException x)
            {
                throw new CrispException($"POSIX message queue {e.Name} ({(ipc.OwnNamespace ? "the tree's IPC namespace" : "crisp's IPC namespace: the queue is not the tree's, only its name was dumped")}): {x.Message}");
            }
        });
        return NewDescription.Finish(ctx, fd, e.Flags & Kept, entry.Ext.Fown);
    }
}
