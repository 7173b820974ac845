using Crisp.Dump;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Restore;

namespace Crisp.Resources.Files.SignalFd;

/// <summary>signalfd (anon_inode:[signalfd]) — CRIU's SIGNALFD kind: its mask from fdinfo "sigmask"
/// (hex). Pending signals belong to the task (Signals stage), not to the fd.</summary>
public sealed class SignalFdFile : IFileKind
{
    public fd_types Type => fd_types.Signalfd;

    public bool Claims(OpenFd fd) => AnonInode.Is(fd, "signalfd");

    public file_entry Dump(DumpContext ctx, uint id, OpenFd fd) => new()
    {
        Type = Type,
        Id = id,
        Sgfd = new signalfd_entry
        {
            Id = id,
            Flags = (uint)fd.Flags,
            Fown = Fown.Of(fd),
            Sigmask = AnonInode.Hex(AnonInode.Line(fd, "sigmask")),
        },
    };

    public UnixFd Open(RestoreContext ctx, file_entry entry)
    {
        var s = entry.Sgfd ?? throw new CrispException($"files.img: SIGNALFD entry {entry.Id} has no signalfd part");
        return NewDescription.Finish(ctx, EventObjects.SignalFd(s.Sigmask, (int)s.Flags & FileIo.O_NONBLOCK), s.Flags, s.Fown);
    }
}
