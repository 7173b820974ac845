using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux.Proc;
using Crisp.Linux;

namespace Crisp.Resources.Memory;

/// <summary>Shared anonymous memory (MAP_SHARED|MAP_ANONYMOUS, shared /dev/zero, [anon_shmem:…]) is one shmem
/// object however many tasks map it: its pages are stored once, in pagemap-shmem-SHMID.img, read from
/// the object itself (/proc/PID/map_files) so pages only another task touched are included too.</summary>
public sealed class SharedAnonDump
{
    private readonly HashSet<ulong> _dumped = [];

    public long Pages { get; private set; }

    public void DumpOnce(Dump.DumpContext ctx, int pid, DumpedVma vma)
    {
        ulong shmid = vma.Entry.Shmid;
        if (!_dumped.Add(shmid))
            return;
        using var fd = FileIo.Open(Procfs.Host.Path(pid, $"map_files/{vma.Start:x}-{vma.End:x}"), FileIo.O_RDONLY);
        Pages += DumpObject(ctx, fd.Fd, shmid, $"task {pid}: shared memory 0x{vma.Start:x}");
    }

    /// <summary>Stores the data pages (SEEK_DATA/SEEK_HOLE) of the shmem object open at <paramref name="fd"/>
    /// in pagemap-shmem-SHMID.img; memfd inodes use it too. Returns the number of pages.</summary>
    public static long DumpObject(Dump.DumpContext ctx, int fd, ulong shmid, string what)
    {
        long size = FileIo.Seek(fd, 0, FileIo.SEEK_END);
        using var writer = ctx.Images.CreatePagemap(ImageFile.ShmemPagemap((long)shmid), ctx.NewId());
        long pageAligned = (size + PagemapWriter.PageSize - 1) & ~(long)(PagemapWriter.PageSize - 1);
        // One batch's worth at a time, pooled: crisp's memory does not grow with the object.
        int chunk = (int)Math.Min(PagePipe.BatchBytes, Math.Max(pageAligned, PagemapWriter.PageSize));
        byte[] rented = System.Buffers.ArrayPool<byte>.Shared.Rent(chunk);
        try
        {
            Copy(fd, size, rented.AsSpan(0, chunk), writer, what);
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(rented);
        }
        ctx.Counters.AddShared(size / PagemapWriter.PageSize, writer);
        return writer.PagesWritten;
    }

    private static void Copy(int fd, long size, Span<byte> buffer, PagemapWriter writer, string what)
    {
        long at = 0;
        while (at < size)
        {
            long data = RawSyscall.TryCall(Sysno.lseek, fd, at, FileIo.SEEK_DATA);
            if (data < 0)
                break;   // ENXIO: no data after `at`
            long hole = Math.Min(size, FileIo.Seek(fd, data, FileIo.SEEK_HOLE));
            data &= ~(long)(PagemapWriter.PageSize - 1);
            hole = (hole + PagemapWriter.PageSize - 1) & ~(long)(PagemapWriter.PageSize - 1);
            for (long off = data; off < hole; off += buffer.Length)
            {
                int n = (int)Math.Min(buffer.Length, hole - off);
                var span = buffer[..n];
                span.Clear();   // the last page of an object may be partly beyond its size
                if (FileIo.PReadFully(fd, span, off) < Math.Min(n, size - off))
                    throw new CrispException($"{what}: short read at offset {off}");
                writer.AddPages((ulong)off, span);
            }
            at = hole;
        }
    }
}
