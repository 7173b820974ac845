using Crisp.Dump;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Restore;

namespace Crisp.Resources.Files.EventFd;

/// <summary>eventfd (anon_inode:[eventfd]) — CRIU's EVENTFD kind: the counter from fdinfo
/// "eventfd-count" (hex). Semaphore mode ("eventfd-semaphore: 1", Linux 6.x) has no field in CRIU's
/// image; it is kept as EFD_SEMAPHORE (bit 0) in flags, a bit an eventfd's O_RDWR flags never use.</summary>
public sealed class EventFdFile : IFileKind
{
    public fd_types Type => fd_types.Eventfd;

    public bool Claims(OpenFd fd) => AnonInode.Is(fd, "eventfd");

    public file_entry Dump(DumpContext ctx, uint id, OpenFd fd)
    {
        ulong counter = AnonInode.Hex(AnonInode.Line(fd, "eventfd-count"));
        bool semaphore = fd.Info.Get("eventfd-semaphore")?.Trim() == "1";
        return new file_entry
        {
            Type = Type,
            Id = id,
            Efd = new eventfd_file_entry
            {
                Id = id,
                Flags = (uint)(fd.Flags | (semaphore ? EventObjects.EFD_SEMAPHORE : 0)),
                Fown = Fown.Of(fd),
                Counter = counter,
            },
        };
    }

    public UnixFd Open(RestoreContext ctx, file_entry entry)
    {
        var e = entry.Efd ?? throw new CrispException($"files.img: EVENTFD entry {entry.Id} has no eventfd part");
        int flags = (int)e.Flags;
        // eventfd2's initial value is 32 bits wide; the counter is 64: write() adds the whole of it.
        return NewDescription.Finish(ctx, EventObjects.EventFd(0, flags & EventObjects.EFD_SEMAPHORE), (uint)flags, e.Fown, fd =>
        {
            if (e.Counter != 0)
                FileIo.Write(fd, BitConverter.GetBytes(e.Counter));
        });
    }
}
