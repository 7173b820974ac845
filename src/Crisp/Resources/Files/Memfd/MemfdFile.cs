using Crisp.Dump;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Restore;

namespace Crisp.Resources.Files.Memfd;

/// <summary>An fd of a memfd ("/memfd:NAME (deleted)"): a memfd_file_entry (flags, position, owner) that
/// refers to its inode in memfd.img (CRIU's MEMFD kind, memfd.c). On restore every description is a fresh
/// open of the one re-created inode, so fds, mappings and other tasks see the same contents.</summary>
public sealed class MemfdFile : IFileKind
{
    /// <summary>memfd.img: every inode met through an fd or a mapping.</summary>
    public void FinishDump(DumpContext ctx) => ctx.Files.Memfds.Write(ctx.Images);

    public fd_types Type => fd_types.Memfd;

    public bool Claims(OpenFd fd) =>
        fd.Target.StartsWith("/memfd:", StringComparison.Ordinal) && fd.Stat.Type == FileStat.S_IFREG;

    public file_entry Dump(DumpContext ctx, uint id, OpenFd fd)
    {
        uint inode = ctx.Files.Memfds.InodeIdOf(ctx, fd.Copy.Fd, fd.Target, fd.Stat);
        return new file_entry
        {
            Type = Type,
            Id = id,
            Memfd = new memfd_file_entry
            {
                Id = id,
                Flags = (uint)fd.Flags,
                Pos = (ulong)fd.Info.Pos,
                Fown = Fown.Of(fd),
                InodeId = inode,
            },
        };
    }

    public UnixFd Open(RestoreContext ctx, file_entry entry)
    {
        var mfe = entry.Memfd ?? throw new CrispException($"files.img: MEMFD entry {entry.Id} has no memfd part");
        var inodes = MemfdInodes.Of(ctx);
        var fd = inodes.OpenDescription(mfe.InodeId, (int)mfe.Flags);
        try
        {
            if (mfe.Pos != 0)
                FileIo.Seek(fd.Fd, (long)mfe.Pos, FileIo.SEEK_SET);
            try { Fown.Restore(ctx, fd.Fd, mfe.Fown); }
            catch (SyscallException e) { ctx.Log.Warn($"memfd {entry.Id}: owner not restored: {e.Message}"); }
            return fd;
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }
}
