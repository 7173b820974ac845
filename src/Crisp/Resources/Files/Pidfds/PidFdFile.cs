using System.Globalization;
using Crisp.Dump;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Restore;

namespace Crisp.Resources.Files.Pidfds;

/// <summary>pidfds (anon_inode:[pidfd]) — CRIU 4's PIDFD kind (pidfd.c): the process it names, as the pid
/// in the tree's pid namespace (nspid), or -1 for one that has exited, whose pidfd stays readable and
/// pollable. The process must be a task of the tree: restore opens the pidfd on the restored task, once
/// it exists (<see cref="OpenTiming.Late"/>). A dead one's pidfds are opened on a helper process that
/// exits at once; those that shared a pid (same pidfs inode) share the helper. PIDFD_THREAD is refused,
/// as CRIU does.</summary>
public sealed class PidFdFile : IFileKind
{
    private const int PIDFD_THREAD = FileIo.O_EXCL;

    public fd_types Type => fd_types.Pidfd;

    public bool Claims(OpenFd fd) => AnonInode.Is(fd, "pidfd");

    public file_entry Dump(DumpContext ctx, uint id, OpenFd fd)
    {
        string what = $"task {fd.Pid} fd {fd.Fd}: pidfd";
        if ((fd.Flags & PIDFD_THREAD) != 0)
            throw new CrispException($"{what} of a thread (PIDFD_THREAD) is not supported");
        // fdinfo's Pid is in crisp's pid namespace: -1 once the process has exited.
        int pid = int.Parse(AnonInode.Line(fd, "Pid"), CultureInfo.InvariantCulture);
        int nspid = -1;
        if (pid > 0)
        {
            var task = ctx.Tasks.FirstOrDefault(t => t.Pid == pid)
                ?? throw new CrispException($"{what} of process {pid}, which is not a live task of the dumped tree");
            nspid = task.VirtualPid;
        }
        return new file_entry
        {
            Type = Type,
            Id = id,
            Pidfd = new pidfd_entry
            {
                Id = id,
                Ino = (uint)fd.Stat.Ino,
                Flags = (uint)(fd.Flags & ~FileIo.O_RDWR),
                Nspid = nspid,
                Fown = Fown.Of(fd),
            },
        };
    }

    /// <summary>The task it names exists only once the tree does.</summary>
    public OpenTiming Timing(RestoreContext ctx, file_entry entry) => OpenTiming.Late;

    public UnixFd Open(RestoreContext ctx, file_entry entry)
    {
        var e = entry.Pidfd ?? throw new CrispException($"files.img: PIDFD entry {entry.Id} has no pidfd part");
        if ((e.Flags & PIDFD_THREAD) != 0)
            throw new CrispException($"files.img: pidfd {entry.Id} of a thread (PIDFD_THREAD) is not supported");
        uint flags = e.Flags & Linux.PidFd.PIDFD_NONBLOCK;
        UnixFd fd;
        if (e.Nspid == -1)
            fd = ctx.Files.DeadPids.Open(ctx, e, flags);
        else
        {
            var task = ctx.Tasks.FirstOrDefault(t => t.Pid == e.Nspid)
                ?? throw new CrispException($"files.img: pidfd {entry.Id} names process {e.Nspid}, which is not a task of the checkpoint");
            fd = new UnixFd(Linux.PidFd.OpenRaw(task.HostPid, flags));
        }
        return NewDescription.Finish(ctx, fd, e.Flags, e.Fown);
    }
}

/// <summary>Restore-wide: pidfds of exited processes, opened on one short-lived helper per pidfs inode.</summary>
public sealed class DeadPids
{
    private readonly Dictionary<uint, UnixFd> _byFileId = [];

    public UnixFd Open(RestoreContext ctx, pidfd_entry e, uint flags)
    {
        if (_byFileId.Remove(e.Id, out var ready))
            return ready;
        // Every pidfd of this dead pid gets its own description on the same helper.
        var same = ctx.Images.ReadAll<file_entry>(Images.ImageFile.Files)
            .Where(f => f.Pidfd is { } p && p.Nspid == -1 && p.Ino == e.Ino && p.Id != e.Id).ToList();
        int helper = Spawn.Start("/bin/true", ["true"], new SpawnOptions { Opens = [(0, "/dev/null", FileIo.O_RDONLY, 0), (1, "/dev/null", FileIo.O_WRONLY, 0), (2, "/dev/null", FileIo.O_WRONLY, 0)] });
        try
        {
            foreach (var f in same)
                _byFileId[f.Id] = new UnixFd(Linux.PidFd.OpenRaw(helper, f.Pidfd.Flags & Linux.PidFd.PIDFD_NONBLOCK));
            return new UnixFd(Linux.PidFd.OpenRaw(helper, flags));
        }
        finally
        {
            Spawn.Reap(helper);
        }
    }
}
