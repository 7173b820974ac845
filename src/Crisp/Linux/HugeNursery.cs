using Crisp.Linux.Proc;

namespace Crisp.Linux;

/// <summary>Backs the stretch of the GC heap where crisp's objects are about to be allocated with transparent huge
/// pages, once, at start-up. On this kind of VM a first touch of a fresh page costs 15-35 µs, and a small dump
/// allocates ~1.4 MiB: ~300 faults where the GC clears each new allocation context, a quarter of the CPU time of a
/// two-task dump. Huge pages there take one fault (or one collapse) per 2 MiB. The GC reserves its heap as one
/// anonymous PROT_NONE range and commits it by mprotect; opening a stretch of it early only lets the kernel back
/// it before the GC commits it (still zero until written, which is all the GC assumes of fresh memory).</summary>
public static class HugeNursery
{
    private const ulong HugePage = 2UL << 20;
    private const int HugePages = 2;   // a small dump allocates ~1.4 MiB from the first one

    /// <summary>Best effort: anything the kernel refuses (THP off, no MADV_COLLAPSE, memory not the GC's) leaves
    /// crisp on small pages as before.</summary>
    public static unsafe void Back()
    {
        byte[] probe = new byte[1];
        ulong at;
        fixed (byte* p = probe)
            at = (ulong)p;
        ulong start = at & ~(HugePage - 1), end = start + HugePages * HugePage;
        // The GC's reservation goes on for gigabytes past its first regions: asking for 64 MiB more than is opened
        // keeps this off any other anonymous mapping (a thread stack's guard page must stay PROT_NONE).
        if (!AnonymousThroughout(start, end + (64UL << 20)))
            return;
        // Protection, dump flag and huge-page flag as one mapping: the GC marks its reservation MADV_DONTDUMP and
        // each committed piece MADV_DODUMP, and a huge page cannot span two mappings.
        if (!Mman.TryProtect((nint)start, end - start, Mman.PROT_READ | Mman.PROT_WRITE)
            || !Mman.TryAdvise((nint)start, end - start, Mman.MADV_DODUMP)
            || !Mman.TryAdvise((nint)start, end - start, Mman.MADV_HUGEPAGE))
            return;
        // The first huge page already holds small pages the GC touched: only a collapse turns it into a huge one.
        Mman.TryAdvise((nint)start, HugePage, Mman.MADV_COLLAPSE);
    }

    /// <summary>[start, end) lies in contiguous private anonymous mappings (the GC's reservation and its committed
    /// parts). Asked of PROCMAP_QUERY: parsing /proc/self/maps cost more than the huge pages saved.</summary>
    private static bool AnonymousThroughout(ulong start, ulong end)
    {
        using var maps = FileIo.Open("/proc/self/maps", FileIo.O_RDONLY);
        for (ulong covered = start; covered < end;)
        {
            var vma = ProcmapQuery.Covering(maps.Fd, covered);
            if (vma is not { } v || v.Inode != 0 || (v.Flags & ProcmapQuery.VmaShared) != 0 || v.Start > covered)
                return false;
            covered = v.End;
        }
        return true;
    }
}
