using Crisp.Dump;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Linux.Proc;

namespace Crisp.Resources.Files.Ghost;

/// <summary>Deleted files no fd names: a file a VMA maps (private or shared) and a directory that is a
/// task's cwd or root. As in CRIU, each inode gets one REG entry, remapped (remap-fpath.img) to its
/// ghost; the VMA's shmid or fs_entry's cwd_id/root_id names that entry. Restore maps, or enters, the
/// ghost crisp re-created (<see cref="GhostFile.HolderPath"/>), so the task sees "NAME (deleted)" again.</summary>
public sealed class GhostReferences
{
    private readonly Dictionary<(ulong Dev, ulong Ino), uint> _fileIds = [];

    /// <summary>The file id of a VMA mapping a deleted file, reached through /proc/PID/map_files.</summary>
    public uint MappingFileIdOf(DumpContext ctx, int pid, MapsEntry m)
    {
        using var fd = FileIo.Open(Procfs.Host.Path(pid, $"map_files/{m.Start:x}-{m.End:x}"), FileIo.O_RDONLY);
        return FileIdOf(ctx, fd.Fd, m.Path, FileIo.O_RDONLY, $"task {pid}: mapping {m}");
    }

    /// <summary>The file id of a task's deleted cwd or root (<paramref name="which"/>), <paramref name="name"/> its old path.</summary>
    public uint DirectoryFileIdOf(DumpContext ctx, int pid, string which, string name)
    {
        using var fd = FileIo.Open(Procfs.Host.Path(pid, which), FileIo.O_RDONLY | FileIo.O_DIRECTORY);
        return FileIdOf(ctx, fd.Fd, name, FileIo.O_RDONLY | FileIo.O_DIRECTORY, $"task {pid}: its {which}");
    }

    private uint FileIdOf(DumpContext ctx, int fd, string name, int flags, string what)
    {
        var st = FdOps.Stat(fd);
        if (_fileIds.TryGetValue((st.Dev, st.Ino), out uint id))
            return id;
        var ghosts = ctx.Files.Ghosts;
        uint ghostId = ghosts.GhostOf(ctx, fd, st, name, what);
        id = ctx.Files.Table.Add(ctx, fileId =>
        {
            var reg = new reg_file_entry { Id = fileId, Flags = (uint)flags, Pos = 0, Fown = Fown.None(), Name = name, Mode = st.Mode };
            if (st.Type == FileStat.S_IFREG)
                reg.Size = (ulong)st.Size;   // as CRIU: a directory's size is not checked at restore, so not given
            return new file_entry { Type = fd_types.Reg, Id = fileId, Reg = reg };
        });
        ghosts.Remap(id, ghostId);
        _fileIds[(st.Dev, st.Ino)] = id;
        return id;
    }
}
