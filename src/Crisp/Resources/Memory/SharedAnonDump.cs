using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux;

namespace Crisp.Resources.Memory;

/// <summary>Shared anonymous memory (MAP_SHARED|MAP_ANONYMOUS, shared /dev/zero, [anon_shmem:…]) is one shmem
/// object however many tasks map it: its pages are stored once, in pagemap-shmem-SHMID.img, read from
/// the object itself (/proc/PID/map_files) so pages only another task touched are included too.</summary>
public sealed class SharedAnonDump
{
    private const int ChunkBytes = 16 << 20;
    private readonly HashSet<ulong> _dumped = [];

    public long Pages { get; private set; }

    public void DumpOnce(Dump.DumpContext ctx, int pid, DumpedVma vma)
    {
        ulong shmid = vma.Entry.Shmid;
        if (!_dumped.Add(shmid))
            return;
        using var fd = FileIo.Open($"/proc/{pid}/map_files/{vma.Start:x}-{vma.End:x}", FileIo.O_RDONLY);
        long size = FileIo.Seek(fd.Fd, 0, FileIo.SEEK_END);
        using var writer = ctx.Images.CreatePagemap(ImageFile.ShmemPagemap((long)shmid), ctx.NewId());
        var buffer = GC.AllocateUninitializedArray<byte>(ChunkBytes);
        long at = 0;
        while (at < size)
        {
            long data = RawSyscall.TryCall(Sysno.lseek, fd.Fd, at, FileIo.SEEK_DATA);
            if (data < 0)
                break;   // ENXIO: no data after `at`
            long hole = Math.Min(size, FileIo.Seek(fd.Fd, data, FileIo.SEEK_HOLE));
            data &= ~(long)(PagemapWriter.PageSize - 1);
            hole = (hole + PagemapWriter.PageSize - 1) & ~(long)(PagemapWriter.PageSize - 1);
            for (long off = data; off < hole; off += ChunkBytes)
            {
                int n = (int)Math.Min(ChunkBytes, hole - off);
                var span = buffer.AsSpan(0, n);
                if (FileIo.PReadFully(fd.Fd, span, off) != n)
                    throw new CrispException($"task {pid}: short read of shared memory 0x{vma.Start:x} at offset {off}");
                writer.AddPages((ulong)off, span);
            }
            at = hole;
        }
        Pages += writer.PagesWritten;
        ctx.Shared<Stats.DumpCounters>().AddShared(size / PagemapWriter.PageSize, writer);
    }
}
