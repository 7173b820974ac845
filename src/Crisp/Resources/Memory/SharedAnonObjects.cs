using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux.Proc;
using Crisp.Linux;

namespace Crisp.Resources.Memory;

/// <summary>Restore side of shared anonymous memory: each shmem object is created once, in crisp itself
/// (a MAP_SHARED|MAP_ANONYMOUS area, kept as an fd from /proc/self/map_files and unmapped at once, then filled
/// from pagemap-shmem-SHMID.img by pwrite in batch-sized pieces, so crisp's own memory does not grow with it),
/// and every puppet maps that same object through /proc/CRISP/fd/N. So tasks that shared it share it again,
/// and maps still say "/dev/zero (deleted)" (or "/anon_hugepage (deleted)" for hugetlb ones).</summary>
public sealed class SharedAnonObjects : IDisposable
{
    private readonly Dictionary<ulong, UnixFd> _fds = [];

    /// <summary>Path a puppet opens to reach object <paramref name="shmid"/>.</summary>
    public string PathOf(ulong shmid) => Procfs.Host.Path(Environment.ProcessId, $"fd/{_fds[shmid].Fd}");

    public void Create(ImageDirectory images, IEnumerable<mm_entry> mms)
    {
        var sizes = new Dictionary<ulong, ulong>();
        var hugeFlags = new Dictionary<ulong, uint>();
        foreach (var v in mms.SelectMany(m => m.Vmas).Where(v => VmaStatus.Is(v.Status, VmaStatus.Regular | VmaStatus.AnonShared) && !VmaStatus.Is(v.Status, VmaStatus.SysvIpc)))
        {
            sizes[v.Shmid] = Math.Max(sizes.GetValueOrDefault(v.Shmid), v.Pgoff + (v.End - v.Start));
            if (Hugetlb.IsHuge(v.Flags))
                hugeFlags[v.Shmid] = Mman.MAP_HUGETLB | (v.Flags & Hugetlb.SizeMask);
        }
        foreach (var (shmid, size) in sizes)
        {
            uint huge = hugeFlags.GetValueOrDefault(shmid);
            var fd = NewObject(size, huge);
            try
            {
                var file = ImageFile.ShmemPagemap((long)shmid);
                if (images.Exists(file))
                {
                    using var pages = images.OpenPagemap(file);
                    if (huge != 0)
                        Hugetlb.Fill(pages, fd.Fd, size, images.PathOf(file));   // hugetlbfs has no pwrite
                    else
                        Fill(pages, fd.Fd, size, images.PathOf(file));
                }
                _fds[shmid] = fd;
            }
            catch
            {
                fd.Dispose();
                throw;
            }
        }
    }

    /// <summary>A new shared anonymous object of <paramref name="size"/> bytes: the fd outlives the mapping.
    /// <paramref name="huge"/>: MAP_HUGETLB and its size bits, for a hugetlb one (maps say "/anon_hugepage (deleted)").</summary>
    private static UnixFd NewObject(ulong size, uint huge)
    {
        nint at = Mman.Map(0, size, Mman.PROT_READ | Mman.PROT_WRITE, Mman.MAP_SHARED | Mman.MAP_ANONYMOUS | (int)huge);
        try
        {
            return FileIo.Open($"/proc/self/map_files/{at:x}-{at + (nint)size:x}", FileIo.O_RDWR);
        }
        finally
        {
            Mman.Unmap(at, size);
        }
    }

    private static void Fill(PagemapReader pages, int fd, ulong size, string path)
    {
        byte[] buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(PagePipe.BatchBytes);
        try
        {
            foreach (var run in pages.Runs.Where(r => r.IsPresent))
            {
                if (run.End > size)
                    throw new CrispException($"{path}: pages beyond the object's {size} bytes");
                for (ulong off = run.Vaddr; off < run.End; off += PagePipe.BatchBytes)
                {
                    var span = buffer.AsSpan(0, (int)Math.Min(PagePipe.BatchBytes, run.End - off));
                    pages.ReadPages(off, span);
                    FileIo.PWriteExactly(fd, span, (long)off);
                }
            }
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }
    public void Dispose()
    {
        foreach (var fd in _fds.Values)
            fd.Dispose();
        _fds.Clear();
    }
}
