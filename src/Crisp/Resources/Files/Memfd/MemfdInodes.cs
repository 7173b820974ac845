using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux.Proc;
using Crisp.Linux;
using Crisp.Restore;

namespace Crisp.Resources.Files.Memfd;

/// <summary>Restore side of memfd inodes: each is re-created once, in crisp (memfd_create with its name,
/// size, contents from pagemap-shmem-SHMID.img, owner and mode); fds get fresh descriptions of it and
/// puppets map it through /proc/CRISP/fd/N. Seals go on only after every task's mappings exist, since
/// F_SEAL_WRITE/F_SEAL_FUTURE_WRITE would refuse the writable shared mappings the tasks had.</summary>
public sealed class MemfdInodes : IDisposable
{
    private const int ChunkBytes = Memory.PagePipe.BatchBytes;
    private readonly Dictionary<ulong, (memfd_inode_entry Entry, UnixFd Fd)> _inodes = [];
    private readonly Dictionary<uint, ulong> _inodeOfFile = [];
    private readonly HashSet<ulong> _handedOut = [];
    private bool _loaded, _sealed;

    /// <summary>The restore's inodes, created on first use (by the memory or the files stage).</summary>
    public static MemfdInodes Of(RestoreContext ctx)
    {
        var inodes = ctx.Files.Memfds;
        if (!inodes._loaded)
            inodes.Load(ctx.Images);
        return inodes;
    }

    private void Load(ImageDirectory images)
    {
        _loaded = true;
        if (!images.Exists(ImageFile.MemfdInode))
            return;
        foreach (var e in images.ReadAll<file_entry>(ImageFile.Files).Where(e => e.Type == fd_types.Memfd && e.Memfd is not null))
            _inodeOfFile[e.Id] = e.Memfd.InodeId;
        foreach (var mie in images.ReadAll<memfd_inode_entry>(ImageFile.MemfdInode))
        {
            if (_inodes.ContainsKey(mie.InodeId))
                throw new CrispException($"{images.PathOf(ImageFile.MemfdInode)}: inode {mie.InodeId} twice");
            _inodes[mie.InodeId] = (mie, Create(images, mie));
        }
    }

    private static UnixFd Create(ImageDirectory images, memfd_inode_entry mie)
    {
        // Without MFD_ALLOW_SEALING a memfd reports just F_SEAL_SEAL; anything else needs sealing allowed.
        uint flags = Linux.Memfd.MFD_CLOEXEC | (mie.Seals == MemfdSeals.F_SEAL_SEAL ? 0 : Linux.Memfd.MFD_ALLOW_SEALING);
        bool huge = mie.HasHugetlbFlag && (mie.HugetlbFlag & Linux.Memfd.MFD_HUGETLB) != 0;
        if (huge)
            flags |= mie.HugetlbFlag & (Linux.Memfd.MFD_HUGETLB | Memory.Hugetlb.SizeMask);   // CRIU's: MFD_HUGETLB | size bits
        var fd = Linux.Memfd.Create(mie.Name, flags);
        try
        {
            FileIo.Truncate(fd.Fd, (long)mie.Size);
            if (huge)
                FillHuge(images, mie, fd.Fd);
            else
                Fill(images, mie, fd.Fd);
            MemfdSeals.SetOwner(fd.Fd, mie.Uid, mie.Gid, mie.HasMode ? mie.Mode : 0x1ff);
            return fd;
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }

    /// <summary>hugetlbfs has no pwrite: a hugetlb memfd is filled through a mapping of it.</summary>
    private static void FillHuge(ImageDirectory images, memfd_inode_entry mie, int fd)
    {
        var file = ImageFile.ShmemPagemap(mie.Shmid);
        if (!images.Exists(file))
            return;
        using var pages = images.OpenPagemap(file);
        Memory.Hugetlb.Fill(pages, fd, mie.Size, images.PathOf(file));
    }

    private static void Fill(ImageDirectory images, memfd_inode_entry mie, int fd)
    {
        var file = ImageFile.ShmemPagemap(mie.Shmid);
        if (!images.Exists(file))
            return;
        using var pages = images.OpenPagemap(file);
        // One batch's worth at a time, pooled: crisp's memory does not grow with the memfd.
        byte[] buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(ChunkBytes);
        try
        {
            Fill(pages, mie, fd, buffer.AsSpan(0, ChunkBytes), images.PathOf(file));
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static void Fill(PagemapReader pages, memfd_inode_entry mie, int fd, Span<byte> buffer, string path)
    {
        foreach (var run in pages.Runs.Where(r => r.IsPresent))
        {
            for (ulong off = run.Vaddr; off < run.End; off += ChunkBytes)
            {
                // Pages are whole; the inode's last page may be partly beyond its size.
                if (off >= mie.Size)
                    throw new CrispException($"{path}: pages beyond memfd '{mie.Name}''s {mie.Size} bytes");
                int n = (int)Math.Min(ChunkBytes, run.End - off);
                var span = buffer[..n];
                pages.ReadPages(off, span);
                FileIo.PWriteExactly(fd, span[..(int)Math.Min((ulong)n, mie.Size - off)], (long)off);
            }
        }
    }

    /// <summary>Path a puppet opens to map the memfd that VMA file id <paramref name="fileId"/> names.</summary>
    public string PathOfFile(uint fileId)
    {
        if (!_inodeOfFile.TryGetValue(fileId, out ulong inode) || !_inodes.TryGetValue(inode, out var i))
            throw new CrispException($"memfd file {fileId} is not in files.img/memfd.img");
        return Procfs.Host.Path(Environment.ProcessId, $"fd/{i.Fd.Fd}");
    }

    /// <summary>A new open file description of inode <paramref name="inodeId"/> with <paramref name="flags"/>.
    /// The first read-write one is the memfd_create description itself (CRIU does the same: only that one
    /// can be execveat'ed), the others are reopened through /proc/self/fd.</summary>
    public UnixFd OpenDescription(ulong inodeId, int flags)
    {
        if (!_inodes.TryGetValue(inodeId, out var i))
            throw new CrispException($"memfd inode {inodeId} is not in memfd.img");
        flags &= ~(FileIo.O_CREAT | FileIo.O_TRUNC | FileIo.O_EXCL);
        if ((flags & FileIo.O_ACCMODE) == FileIo.O_RDWR && _handedOut.Add(inodeId))
        {
            var dup = FileIo.Dup(i.Fd.Fd);
            FdOps.SetStatusFlags(dup.Fd, flags);
            return dup;
        }
        return FileIo.Open($"/proc/self/fd/{i.Fd.Fd}", flags);
    }

    /// <summary>Adds each inode's seals; called once every task's memory is mapped.</summary>
    public void ApplySeals()
    {
        if (_sealed)
            return;
        _sealed = true;
        foreach (var (entry, fd) in _inodes.Values)
        {
            uint seals = entry.Seals & ~MemfdSeals.Get(fd.Fd);
            if (seals != 0)
                MemfdSeals.Add(fd.Fd, seals);
        }
    }

    public void Dispose()
    {
        foreach (var (_, fd) in _inodes.Values)
            fd.Dispose();
        _inodes.Clear();
    }
}
