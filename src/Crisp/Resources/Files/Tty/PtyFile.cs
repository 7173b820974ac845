using Crisp.Dump;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Restore;

namespace Crisp.Resources.Files.Tty;

/// <summary>Unix98 pty ends — a master (/dev/ptmx, char 5:2) or a slave (/dev/pts/N) — CRIU's TTY kind
/// (tty.c). Each description is a tty_file_entry in files.img pointing at a tty_info_entry (tty-info.img)
/// shared by every fd of that end: id (index &lt;&lt; 1) | master, as CRIU numbers them. A slave whose master
/// is outside the tree is the caller's terminal of a shell job (--shell-job). The console and the virtual
/// terminals are the same entries with CRIU's CONSOLE and VT kinds (<see cref="DeviceTty"/>).</summary>
public sealed class PtyFile : IFileKind
{
    public fd_types Type => fd_types.Tty;

    /// <summary>Every terminal (an O_PATH fd of one is only a path: the regular kind's); pty ends, /dev/tty, the console and
    /// VTs are dumped, any other (serial lines, /dev/tty0) refused.</summary>
    public bool Claims(OpenFd fd) => FileKinds.IsTty(fd.Stat) && (fd.Flags & FileIo.O_PATH) == 0;

    private static bool IsPty(OpenFd fd)
    {
        var (major, minor) = Terminals.Split(fd.Stat.Rdev);
        return Terminals.IsPtmx(major, minor) || Terminals.IsPtySlave(major);
    }

    private static bool IsControllingTty(OpenFd fd)
    {
        var (major, minor) = Terminals.Split(fd.Stat.Rdev);
        return Terminals.IsControllingTty(major, minor);
    }

    public file_entry Dump(DumpContext ctx, uint id, OpenFd fd)
    {
        var tty = new tty_file_entry { Id = id, Flags = (uint)fd.Flags, Fown = Fown.Of(fd) };
        if (DeviceTty.KindOf(fd.Stat.Rdev) is { } device)
        {
            tty.TtyInfoId = ctx.Files.Ttys.DeviceInfoId(ctx, fd, device);
            tty.RegfId = PathEntry.Add(ctx, fd);
        }
        else if (IsControllingTty(fd))
            tty.TtyInfoId = ctx.Files.Ttys.ControllingTtyInfoId(ctx, fd);
        else if (IsPty(fd))
            tty.TtyInfoId = ctx.Files.Ttys.InfoIdOf(ctx, fd);
        else
            throw FileKinds.Unsupported(fd);
        return new file_entry { Type = Type, Id = id, Tty = tty };
    }

    public void FinishDump(DumpContext ctx) => ctx.Files.Ttys.Finish(ctx);

    public void ReleaseDump(DumpContext ctx, bool killed) => ctx.Files.Ttys.Release(ctx, killed);

    /// <summary>A session leader takes its terminal again once its fds are in.</summary>
    public IRestoreStage AfterInstall { get; } = new TtyRestore();

    /// <summary>/dev/tty names the opener's controlling terminal: each task opens its own, once its session has
    /// its terminal again (<see cref="TtyRestore"/>).</summary>
    public OpenTiming Timing(RestoreContext ctx, file_entry entry) =>
        entry.Tty is { } tty && ctx.Files.Ptys.IsControllingTty(ctx, tty) ? OpenTiming.InTask : OpenTiming.Early;

    public UnixFd Open(RestoreContext ctx, file_entry entry)
    {
        var tfe = entry.Tty ?? throw new CrispException($"files.img: TTY entry {entry.Id} has no tty part");
        return ctx.Files.Ptys.Open(ctx, tfe);
    }
}
