using Crisp.Images;
using Crisp.Linux;
using Crisp.Linux.Proc;

namespace Crisp.Resources.Memory;

/// <summary>hugetlb memory as CRIU records it: vma_entry.flags carries MAP_HUGETLB and the page size as
/// log2(size) &lt;&lt; 26 (the kernel's MAP_HUGE_SHIFT; MFD_HUGETLB's size bits are the same), and hugetlbfs
/// objects (anonymous shared ones, memfds) can be read but not written with pwrite, so they are filled
/// through a mapping.</summary>
public static class Hugetlb
{
    public const int SizeShift = 26;
    public const uint SizeMask = 0x3fu << SizeShift;
    public const long HUGETLBFS_MAGIC = 0x958458f6;

    /// <summary>The kernel's name of an anonymous hugetlb mapping in /proc/PID/maps (with " (deleted)").</summary>
    public const string AnonName = "/anon_hugepage";

    public static bool IsHuge(uint vmaFlags) => (vmaFlags & Mman.MAP_HUGETLB) != 0;

    /// <summary>The size bits for a huge page of <paramref name="bytes"/> (a power of two).</summary>
    public static uint SizeFlag(ulong bytes)
    {
        if (bytes == 0 || (bytes & (bytes - 1)) != 0)
            throw new CrispException($"hugetlb page size {bytes} is not a power of two");
        return (uint)System.Numerics.BitOperations.Log2(bytes) << SizeShift;
    }

    /// <summary>The huge page size <paramref name="flags"/> name; the system's default size when they name none.</summary>
    public static ulong PageSizeOf(uint flags)
    {
        uint shift = (flags & SizeMask) >> SizeShift;
        return shift != 0 ? 1UL << (int)shift : DefaultPageSize();
    }

    /// <summary>An anonymous hugetlb VMA: "/anon_hugepage (deleted)" (a file on hugetlbfs by any other name is not one).</summary>
    public static bool IsAnonymous(MapsEntry m) => m.Path == AnonName && m.Deleted;

    private static ulong DefaultPageSize()
    {
        foreach (var line in File.ReadLines("/proc/meminfo"))
            if (line.StartsWith("Hugepagesize:", StringComparison.Ordinal))
                return ulong.Parse(line["Hugepagesize:".Length..].Trim().Split(' ')[0]) * 1024;
        throw new CrispException("/proc/meminfo names no Hugepagesize: this kernel has no hugetlb pages");
    }

    /// <summary>Whether the open file is on hugetlbfs, and its huge page size (statfs f_bsize).</summary>
    public static bool IsHugetlbfs(int fd, out ulong pageSize)
    {
        var (type, bsize) = StatFs.TypeAndBlockSizeOf(fd);
        pageSize = (ulong)bsize;
        return type == HUGETLBFS_MAGIC;
    }

    /// <summary>Writes the present pages of <paramref name="pages"/> into the hugetlbfs object open at
    /// <paramref name="fd"/> (<paramref name="size"/> bytes) through a shared mapping of it in crisp: the
    /// pages are the object's own, so this costs no memory beyond it.</summary>
    public static void Fill(PagemapReader pages, int fd, ulong size, string path)
    {
        if (size == 0)
            return;
        nint at = Mman.Map(0, size, Mman.PROT_READ | Mman.PROT_WRITE, Mman.MAP_SHARED, fd);
        try
        {
            foreach (var run in pages.Runs.Where(r => r.IsPresent))
            {
                if (run.End > size)
                    throw new CrispException($"{path}: pages beyond the object's {size} bytes");
                for (ulong off = run.Vaddr; off < run.End; off += PagePipe.BatchBytes)
                {
                    int n = (int)Math.Min(PagePipe.BatchBytes, run.End - off);
                    unsafe
                    {
                        pages.ReadPages(off, new Span<byte>((byte*)at + off, n));
                    }
                }
            }
        }
        finally
        {
            Mman.Unmap(at, size);
        }
    }
}
