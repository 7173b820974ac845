using Crisp.Dump;
using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Linux.Proc;
using Crisp.Resources.Memory;

namespace Crisp.Resources.Files.Memfd;

/// <summary>Dump-wide registry of memfd inodes (CRIU's memfd.img): each inode — however many fds and
/// mappings reach it — gets one memfd_inode_entry (name, owner, mode, size, seals) and its contents once,
/// in pagemap-shmem-INO.img like any shmem object (shmid = inode number, as CRIU does).</summary>
public sealed class MemfdInodesDump(FileTable table)
{
    private const string Prefix = "/memfd:", DeletedSuffix = " (deleted)";

    private readonly Dictionary<(ulong Dev, ulong Ino), memfd_inode_entry> _inodes = [];
    private readonly Dictionary<ulong, uint> _mappingFileIds = [];
    private uint _nextInodeId = 1;

    /// <summary>The inode id of the memfd open at <paramref name="fd"/> in crisp (its link is <paramref name="target"/>).</summary>
    public uint InodeIdOf(DumpContext ctx, int fd, string target, FileStat st)
    {
        if (_inodes.TryGetValue((st.Dev, st.Ino), out var known))
            return (uint)known.InodeId;
        // A description of our own: SEEK_DATA/SEEK_HOLE must not move the task's file position.
        using var own = FileIo.Open($"/proc/self/fd/{fd}", FileIo.O_RDONLY);
        var (uid, gid, mode) = MemfdSeals.Owner(own.Fd);
        var entry = new memfd_inode_entry
        {
            Name = NameOf(target),
            Uid = uid,
            Gid = gid,
            Size = (ulong)st.Size,
            Shmid = (uint)st.Ino,
            Seals = MemfdSeals.Get(own.Fd),
            InodeId = _nextInodeId++,
            Mode = mode,
        };
        // CRIU's form for a memfd on hugetlbfs: MFD_HUGETLB and the page size's bits.
        if (Hugetlb.IsHugetlbfs(own.Fd, out ulong hugePage))
            entry.HugetlbFlag = Linux.Memfd.MFD_HUGETLB | Hugetlb.SizeFlag(hugePage);
        SharedAnonDump.DumpObject(ctx, own.Fd, st.Ino, $"memfd {target}");
        _inodes[(st.Dev, st.Ino)] = entry;
        ctx.Log.Debug($"memfd inode {entry.InodeId}: '{entry.Name}' size {entry.Size} seals 0x{entry.Seals:x}");
        return (uint)entry.InodeId;
    }

    /// <summary>The file id VMAs of a memfd refer to (vma_entry.shmid, status MEMFD): one MEMFD file_entry per
    /// inode, reached through /proc/PID/map_files, so a mapping whose fd was closed long ago is covered too.</summary>
    public uint MappingFileIdOf(DumpContext ctx, int pid, MapsEntry m)
    {
        using var fd = FileIo.Open(Procfs.Host.Path(pid, $"map_files/{m.Start:x}-{m.End:x}"), FileIo.O_RDONLY);
        var st = FdOps.Stat(fd.Fd);
        if (_mappingFileIds.TryGetValue(st.Ino, out uint id))
            return id;
        uint inodeId = InodeIdOf(ctx, fd.Fd, m.Path + (m.Deleted ? DeletedSuffix : ""), st);
        id = table.Add(ctx, fileId => new file_entry
        {
            Type = fd_types.Memfd,
            Id = fileId,
            Memfd = new memfd_file_entry { Id = fileId, Flags = FileIo.O_RDWR, Pos = 0, Fown = Fown.None(), InodeId = inodeId },
        });
        _mappingFileIds[st.Ino] = id;
        return id;
    }

    public void Write(ImageDirectory images)
    {
        if (_inodes.Count > 0)
            images.Write(ImageFile.MemfdInode, [.. _inodes.Values.OrderBy(e => e.InodeId)]);
    }

    /// <summary>"/memfd:NAME (deleted)" → NAME (the name memfd_create was given).</summary>
    public static string NameOf(string target)
    {
        string name = target.EndsWith(DeletedSuffix, StringComparison.Ordinal) ? target[..^DeletedSuffix.Length] : target;
        return name.StartsWith(Prefix, StringComparison.Ordinal) ? name[Prefix.Length..] : name;
    }
}
