using Crisp.Dump;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Restore;

namespace Crisp.Resources.Files.Tty;

/// <summary>Unix98 pty ends — a master (/dev/ptmx, char 5:2) or a slave (/dev/pts/N) — CRIU's TTY kind
/// (tty.c). Each description is a tty_file_entry in files.img pointing at a tty_info_entry (tty-info.img)
/// shared by every fd of that end: id (index &lt;&lt; 1) | master, as CRIU numbers them. A slave whose master
/// is outside the tree is the caller's terminal of a shell job (--shell-job).</summary>
public sealed class PtyFile : IFileKind, IFileKindState
{
    public fd_types Type => fd_types.Tty;

    public bool Claims(OpenFd fd)
    {
        if (fd.Stat.Type != FileStat.S_IFCHR)
            return false;
        var (major, minor) = Terminals.Split(fd.Stat.Rdev);
        return Terminals.IsPtmx(major, minor) || Terminals.IsPtySlave(major);
    }

    public file_entry Dump(DumpContext ctx, uint id, OpenFd fd) => new()
    {
        Type = Type,
        Id = id,
        Tty = new tty_file_entry
        {
            Id = id,
            TtyInfoId = ctx.Shared<TtyDump>().InfoIdOf(ctx, fd),
            Flags = (uint)fd.Flags,
            Fown = Fown.Of(fd),
        },
    };

    public void FinishDump(DumpContext ctx) => ctx.Shared<TtyDump>().Finish(ctx);

    public void ReleaseDump(DumpContext ctx, bool killed) => ctx.Shared<TtyDump>().Release(ctx, killed);

    public UnixFd Open(RestoreContext ctx, file_entry entry)
    {
        var tfe = entry.Tty ?? throw new CrispException($"files.img: TTY entry {entry.Id} has no tty part");
        return ctx.Shared<PtySet>().Open(ctx, tfe);
    }

    public void CleanupRestore(RestoreContext ctx) => ctx.Shared<PtySet>().Dispose();
}
