using System.Runtime.InteropServices;

namespace Crisp.Linux.Proc;

/// <summary>PROCMAP_QUERY (Linux 6.11+): one VMA of a process from an ioctl on its /proc/PID/maps, without the
/// text of every mapping.</summary>
public static unsafe partial class ProcmapQuery
{
    private const ulong PROCMAP_QUERY = 0xC0686611;   // _IOWR('f', 17, struct procmap_query)

    /// <summary>The VMA of our own process that covers <paramref name="address"/>: (start, end, inode, flags).
    /// Null when no VMA covers it or the kernel has no PROCMAP_QUERY.</summary>
    public static (ulong Start, ulong End, ulong Inode, ulong Flags)? Covering(int mapsFd, ulong address)
    {
        var q = new Query { Size = (ulong)sizeof(Query), QueryAddr = address };
        if (ioctl(mapsFd, PROCMAP_QUERY, &q) != 0)
            return null;
        return (q.VmaStart, q.VmaEnd, q.Inode, q.VmaFlags);
    }

    /// <summary>struct procmap_query's vma_flags.</summary>
    public const ulong VmaShared = 8;

    [StructLayout(LayoutKind.Sequential)]
    private struct Query
    {
        public ulong Size, QueryFlags, QueryAddr, VmaStart, VmaEnd, VmaFlags, VmaPageSize, VmaOffset, Inode;
        public uint DevMajor, DevMinor, VmaNameSize, BuildIdSize;
        public ulong VmaNameAddr, BuildIdAddr;
    }

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    private static partial int ioctl(int fd, ulong request, Query* arg);
}
