using System.Globalization;
using Crisp.Dump;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Linux.Proc;
using Crisp.Restore;

namespace Crisp.Resources.Files.Epoll;

/// <summary>epoll instances (anon_inode:[eventpoll]) — CRIU's EVENTPOLL kind: every registered target
/// from fdinfo "tfd:" lines (fd number, events including EPOLLET/EPOLLONESHOT, data). The kernel keys
/// an item by (file, fd number), and the program's later EPOLL_CTL_MOD/DEL name that number, so the
/// dump checks (kcmp KCMP_EPOLL_TFD) that the number still holds the registered file, and the restore
/// re-adds each item inside the task once all its fds are in place (<see cref="EpollRestore"/>).
/// A one-shot item that already fired keeps its disarmed mask (only the private bits are left).</summary>
public sealed class EpollFile : IFileKind
{
    public fd_types Type => fd_types.Eventpoll;

    /// <summary>Items are added by epoll_ctl in the task once the fds they watch are installed.</summary>
    public IRestoreStage AfterInstall { get; } = new EpollRestore();

    public bool Claims(OpenFd fd) => AnonInode.Is(fd, "eventpoll");

    public file_entry Dump(DumpContext ctx, uint id, OpenFd fd)
    {
        var entry = new eventpoll_file_entry { Id = id, Flags = (uint)fd.Flags, Fown = Fown.Of(fd) };
        foreach (string line in fd.Info.GetAll("tfd"))
        {
            var pairs = FdInfo.ParsePairs(line);
            uint tfd = uint.Parse(pairs[0].Key, CultureInfo.InvariantCulture);
            string Get(string key) => pairs.FirstOrDefault(p => p.Key == key).Value
                ?? throw new CrispException($"task {fd.Pid} fd {fd.Fd}: epoll line 'tfd: {line.Trim()}' has no {key}");
            if (!SameTarget(fd, tfd))
                throw new CrispException($"task {fd.Pid} fd {fd.Fd}: epoll target fd {tfd} is closed or now another file " +
                    "(an item that outlived its fd) is not supported");
            entry.Tfd.Add(new eventpoll_tfd_entry
            {
                Id = id,
                Tfd = tfd,
                Events = (uint)AnonInode.Hex(Get("events")),
                Data = AnonInode.Hex(Get("data")),
                Dev = (uint)AnonInode.Hex(Get("sdev")),
                Inode = AnonInode.Hex(Get("ino")),
                Pos = AnonInode.Dec(Get("pos")),
            });
        }
        return new file_entry { Type = Type, Id = id, Epfd = entry };
    }

    public UnixFd Open(RestoreContext ctx, file_entry entry)
    {
        var e = entry.Epfd ?? throw new CrispException($"files.img: EVENTPOLL entry {entry.Id} has no eventpoll part");
        return NewDescription.Finish(ctx, EventObjects.Epoll(0), e.Flags, e.Fown);
    }

    /// <summary>Is fd <paramref name="tfd"/> of the task the very file the epoll item was registered with?</summary>
    private static unsafe bool SameTarget(OpenFd epoll, uint tfd)
    {
        uint* slot = stackalloc uint[3];
        slot[0] = (uint)epoll.Fd;   // kcmp_epoll_slot: efd, tfd, toff (0: the first item for that number)
        slot[1] = tfd;
        slot[2] = 0;
        long r = RawSyscall.TryCall(Sysno.kcmp, epoll.Pid, epoll.Pid, Kcmp.KCMP_EPOLL_TFD, tfd, (long)slot);
        return r == 0;
    }
}
