using Crisp.Dump;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Linux.Proc;
using Crisp.Restore;

namespace Crisp.Resources.Files;

/// <summary>One fd of a seized task, as the dump sees it: its link target, a copy of it in crisp
/// (pidfd_getfd), fstat of the copy and its fdinfo.</summary>
public sealed record OpenFd(int Pid, int Fd, string Target, UnixFd Copy, FileStat Stat, FdInfo Info)
{
    /// <summary>Open flags of the description (fdinfo's, less the O_CLOEXEC the kernel adds for the fd flag).</summary>
    public int Flags => Info.Flags & ~FileIo.O_CLOEXEC;
    public bool CloseOnExec => (Info.Flags & FileIo.O_CLOEXEC) != 0;
}

/// <summary>One kind of open file (Regular/, Pipes/…): both directions for its file_entry.</summary>
public interface IFileKind
{
    fd_types Type { get; }

    /// <summary>Is this fd of this kind? Kinds are asked in <see cref="FileKinds.All"/>'s order; each claims for
    /// itself, a more particular kind (memfd, ghost, terminal) coming before the general one (regular).</summary>
    bool Claims(OpenFd fd);

    /// <summary>The file_entry (type, id and the kind's part) of a description seen first at <paramref name="fd"/>.</summary>
    file_entry Dump(DumpContext ctx, uint id, OpenFd fd);

    /// <summary>When and by whom <paramref name="entry"/>'s description is opened on restore (the files stage asks
    /// each entry once, in Prepare): by crisp in Prepare unless the kind says otherwise.</summary>
    OpenTiming Timing(RestoreContext ctx, file_entry entry) => OpenTiming.Early;

    /// <summary>Creates the description in crisp (restore Prepare, or once the tree exists for
    /// <see cref="OpenTiming.Late"/>); crisp owns the returned fd.</summary>
    UnixFd Open(RestoreContext ctx, file_entry entry);

    /// <summary>After every task's fds: writes this kind's tree-wide images (pipes-data, memfd, sk-queues…).</summary>
    void FinishDump(DumpContext ctx) { }

    /// <summary>After the tree was killed or let go, or the dump failed (<paramref name="killed"/> false).</summary>
    void ReleaseDump(DumpContext ctx, bool killed) { }

    /// <summary>This kind's step in each task once the task's fds are installed (CRIU's post_open: epoll items,
    /// the controlling terminal), run right after the files stage as a participant of its own; null: none.</summary>
    IRestoreStage? AfterInstall => null;

    /// <summary>After every task is restored or the restore failed, for work beyond closing fds (the context
    /// closes those): e.g. the network lock of restored connections.</summary>
    void CleanupRestore(RestoreContext ctx) { }
}

/// <summary>When, and by whom, a description is opened on restore (<see cref="IFileKind.Timing"/>).</summary>
public enum OpenTiming
{
    /// <summary>By crisp in Prepare, before any puppet exists: most descriptions.</summary>
    Early,
    /// <summary>By crisp once the restored tree exists (it names one of the tree's tasks: a pidfd, a file under
    /// /proc/PID), when the first task holding it gets its fds.</summary>
    Late,
    /// <summary>By each task itself, in the kind's <see cref="IFileKind.AfterInstall"/> step (/dev/tty names the
    /// opener's own terminal); crisp installs nothing for it.</summary>
    InTask,
}

/// <summary>The kinds crisp dumps and restores; every other fd is refused by name.</summary>
public static class FileKinds
{
    /// <summary>In claiming order: memfds and ghosts (a path that is gone) and terminals before files opened by path.</summary>
    public static IReadOnlyList<IFileKind> All { get; } =
    [
        new Memfd.MemfdFile(),
        new Ghost.GhostFile(),
        new Tty.PtyFile(),
        new Regular.RegularFile(),
        new Pipes.PipeFile(),
        new EventFd.EventFdFile(),
        new SignalFd.SignalFdFile(),
        new TimerFd.TimerFdFile(),
        new Epoll.EpollFile(),
        new Inotify.InotifyFile(),
        new Fanotify.FanotifyFile(),
        new Fifo.FifoFile(),
        new Sockets.Unix.UnixSocketFile(),
        new Sockets.Inet.InetSocketFile(),
        new Sockets.Netlink.NetlinkSocketFile(),
        new Sockets.Packet.PacketSocketFile(),
        new Pidfds.PidFdFile(),
        new Mqueue.PosixQueueFile(),
    ];

    public static IFileKind? Claiming(OpenFd fd) => All.FirstOrDefault(k => k.Claims(fd));

    /// <summary>The kind that opens a files.img entry of <paramref name="type"/> (ghosts are REG entries: the
    /// regular kind opens them, through the ghost's remap).</summary>
    public static IFileKind ForType(fd_types type) =>
        (type == fd_types.Reg ? All.OfType<Regular.RegularFile>().First() : All.FirstOrDefault(k => k.Type == type))
        ?? throw new CrispException($"files.img: fd type {type} is not supported yet");

    /// <summary>The one-line refusal of an fd no kind can carry.</summary>
    public static CrispException Unsupported(OpenFd fd) =>
        new($"task {fd.Pid} fd {fd.Fd}: {Describe(fd)} ({fd.Target}) is not supported yet");

    /// <summary>A short name for what an fd is, for the "not supported" line.</summary>
    public static string Describe(OpenFd fd)
    {
        string t = fd.Target;
        if (t.StartsWith("anon_inode:", StringComparison.Ordinal))
            return t["anon_inode:".Length..].Trim('[', ']');
        if (t.StartsWith("/memfd:", StringComparison.Ordinal))
            return "memfd";
        if (IsMqueue(fd))
            return "POSIX message queue";
        if (t.EndsWith(" (deleted)", StringComparison.Ordinal))
            return "deleted file";
        return fd.Stat.Type switch
        {
            FileStat.S_IFSOCK => "socket",
            FileStat.S_IFIFO => "fifo",
            FileStat.S_IFBLK => "block device",
            FileStat.S_IFCHR => TtyMajors.Contains(fd.Stat.Major) ? "tty" : "character device",
            FileStat.S_IFDIR => "directory",
            FileStat.S_IFREG => "file",
            _ => $"file of mode 0{Convert.ToString(fd.Stat.Mode, 8)}",
        };
    }

    /// <summary>A POSIX message queue (mq_open): "/NAME" on the mqueue fs of the task's IPC namespace, not a path.</summary>
    public static bool IsMqueue(OpenFd fd) => fd.Stat.Type == FileStat.S_IFREG && StatFs.TypeOf(fd.Copy.Fd) == StatFs.MQUEUE_MAGIC;

    /// <summary>Terminals (tty, console/ptmx, pts): they need the Tty kind.</summary>
    public static bool IsTty(FileStat st) => st.Type == FileStat.S_IFCHR && TtyMajors.Contains(st.Major);

    private static readonly HashSet<uint> TtyMajors = [4, 5, 136, 137, 138, 139, 140, 141, 142, 143];
}
