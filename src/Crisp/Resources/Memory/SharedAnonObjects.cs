using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux;

namespace Crisp.Resources.Memory;

/// <summary>Restore side of shared anonymous memory: each shmem object is created once, in crisp itself
/// (a MAP_SHARED|MAP_ANONYMOUS area filled from pagemap-shmem-SHMID.img, then kept as an fd from
/// /proc/self/map_files), and every puppet maps that same object through /proc/CRISP/fd/N. So tasks
/// that shared it share it again, and maps still say "/dev/zero (deleted)".</summary>
public sealed class SharedAnonObjects : IDisposable
{
    private const int ChunkBytes = 64 << 20;
    private readonly Dictionary<ulong, UnixFd> _fds = [];

    /// <summary>Path a puppet opens to reach object <paramref name="shmid"/>.</summary>
    public string PathOf(ulong shmid) => $"/proc/{Environment.ProcessId}/fd/{_fds[shmid].Fd}";

    public unsafe void Create(ImageDirectory images, IEnumerable<mm_entry> mms)
    {
        var sizes = new Dictionary<ulong, ulong>();
        foreach (var v in mms.SelectMany(m => m.Vmas).Where(v => VmaStatus.Is(v.Status, VmaStatus.Regular | VmaStatus.AnonShared) && !VmaStatus.Is(v.Status, VmaStatus.SysvIpc)))
            sizes[v.Shmid] = Math.Max(sizes.GetValueOrDefault(v.Shmid), v.Pgoff + (v.End - v.Start));
        foreach (var (shmid, size) in sizes)
        {
            nint at = Mman.Map(0, size, Mman.PROT_READ | Mman.PROT_WRITE, Mman.MAP_SHARED | Mman.MAP_ANONYMOUS);
            try
            {
                var file = ImageFile.ShmemPagemap((long)shmid);
                if (images.Exists(file))
                {
                    using var pages = images.OpenPagemap(file);
                    foreach (var run in pages.Runs.Where(r => r.IsPresent))
                    {
                        if (run.End > size)
                            throw new CrispException($"{images.PathOf(file)}: pages beyond the object's {size} bytes");
                        for (ulong off = run.Vaddr; off < run.End; off += ChunkBytes)
                        {
                            int n = (int)Math.Min(ChunkBytes, run.End - off);
                            pages.ReadPages(off, new Span<byte>((void*)(at + (nint)off), n));
                        }
                    }
                }
                _fds[shmid] = FileIo.Open($"/proc/self/map_files/{at:x}-{at + (nint)size:x}", FileIo.O_RDWR);
            }
            finally
            {
                Mman.Unmap(at, size);
            }
        }
    }

    public void Dispose()
    {
        foreach (var fd in _fds.Values)
            fd.Dispose();
        _fds.Clear();
    }
}
