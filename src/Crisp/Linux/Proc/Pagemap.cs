using System.Runtime.InteropServices;

namespace Crisp.Linux.Proc;

/// <summary>One 64-bit /proc/PID/pagemap entry.</summary>
public readonly record struct PagemapEntry(ulong Raw)
{
    public bool Present => (Raw & (1UL << 63)) != 0;
    public bool Swapped => (Raw & (1UL << 62)) != 0;
    /// <summary>File-backed page or shared anonymous.</summary>
    public bool FileOrSharedAnon => (Raw & (1UL << 61)) != 0;
    /// <summary>Mapped exclusively (only this process maps the page).</summary>
    public bool Exclusive => (Raw & (1UL << 56)) != 0;
    public bool SoftDirty => (Raw & (1UL << 55)) != 0;
    /// <summary>Page frame number (present pages; zero without CAP_SYS_ADMIN).</summary>
    public ulong Pfn => Raw & ((1UL << 55) - 1);
    public ulong SwapType => Raw & 0x1f;
    public ulong SwapOffset => (Raw & ((1UL << 55) - 1)) >> 5;
    /// <summary>What a dump must store: the page has contents in RAM or in swap.</summary>
    public bool HasData => (Raw & (3UL << 62)) != 0;
}

/// <summary>A run of consecutive pages, all present or swapped.</summary>
public readonly record struct PageRun(ulong Start, ulong PageCount)
{
    public ulong End => Start + PageCount * Pagemap.PageSize;
    public ulong Length => PageCount * Pagemap.PageSize;
}

/// <summary>/proc/PID/pagemap: read entries with one pread per range, and PAGEMAP_SCAN (Linux 6.7+).</summary>
public sealed unsafe partial class Pagemap : IDisposable
{
    public const ulong PageSize = Mman.PageSize;

    // PAGEMAP_SCAN = _IOWR('f', 16, struct pm_scan_arg) with sizeof(pm_scan_arg) = 96.
    public const ulong PAGEMAP_SCAN = (3UL << 30) | (96UL << 16) | ((ulong)'f' << 8) | 16;
    public const ulong PAGE_IS_WPALLOWED = 1 << 0, PAGE_IS_WRITTEN = 1 << 1, PAGE_IS_FILE = 1 << 2,
        PAGE_IS_PRESENT = 1 << 3, PAGE_IS_SWAPPED = 1 << 4, PAGE_IS_PFNZERO = 1 << 5,
        PAGE_IS_HUGE = 1 << 6, PAGE_IS_SOFT_DIRTY = 1 << 7;

    private const int ENOTTY = 25;

    private readonly UnixFd _fd;
    private bool? _scanSupported;

    public int Pid { get; }

    private Pagemap(int pid, UnixFd fd)
    {
        Pid = pid;
        _fd = fd;
    }

    public static Pagemap Open(int pid) => new(pid, FileIo.Open(Procfs.Host.Path(pid, "pagemap"), FileIo.O_RDONLY));

    public void Dispose() => _fd.Dispose();

    /// <summary>The entries for [start, end) (page-aligned), in one pread.</summary>
    public ulong[] ReadEntries(ulong start, ulong end)
    {
        var entries = new ulong[(end - start) / PageSize];
        ReadEntries(start, entries);
        return entries;
    }

    /// <summary>Fills <paramref name="entries"/> with the entries from <paramref name="start"/> on. A single
    /// pread covers the whole range; we loop only if the kernel returns short.</summary>
    public void ReadEntries(ulong start, Span<ulong> entries)
    {
        var bytes = MemoryMarshal.AsBytes(entries);
        long offset = (long)(start / PageSize * 8);
        long n = FileIo.PReadFully(_fd.Fd, bytes, offset);
        if (n != bytes.Length)
            throw new SyscallException($"pread({Procfs.Host.Path(Pid, "pagemap")} @0x{start:x}): short read {n}/{bytes.Length}", Errnos.EIO);
    }

    /// <summary>Most entries one pread of <see cref="ReadRuns"/> covers (8 MiB of entries, 4 GiB of address
    /// space): runtimes reserve huge PROT_NONE regions, and a buffer per whole VMA would be too big.</summary>
    public const int MaxEntriesPerRead = 1 << 20;

    /// <summary>Runs of consecutive present-or-swapped pages in [start, end), by reading pagemap: one pread
    /// per range up to <see cref="MaxEntriesPerRead"/> pages; runs that cross a chunk border are joined.</summary>
    public List<PageRun> ReadRuns(ulong start, ulong end)
    {
        ulong pages = (end - start) / PageSize;
        var buffer = new ulong[Math.Min(pages, (ulong)MaxEntriesPerRead)];
        var runs = new List<PageRun>();
        for (ulong done = 0; done < pages;)
        {
            int n = (int)Math.Min(pages - done, (ulong)buffer.Length);
            ulong at = start + done * PageSize;
            ReadEntries(at, buffer.AsSpan(0, n));
            foreach (var run in Runs(at, buffer.AsSpan(0, n)))
            {
                if (runs.Count > 0 && runs[^1].End == run.Start)
                    runs[^1] = runs[^1] with { PageCount = runs[^1].PageCount + run.PageCount };
                else
                    runs.Add(run);
            }
            done += (ulong)n;
        }
        return runs;
    }

    /// <summary>Turns entries for pages from <paramref name="start"/> into runs of pages with data.</summary>
    public static List<PageRun> Runs(ulong start, ReadOnlySpan<ulong> entries)
    {
        var runs = new List<PageRun>();
        int i = 0;
        while (i < entries.Length)
        {
            if ((entries[i] & (3UL << 62)) == 0)
            {
                i++;
                continue;
            }
            int first = i;
            while (i < entries.Length && (entries[i] & (3UL << 62)) != 0)
                i++;
            runs.Add(new PageRun(start + (ulong)first * PageSize, (ulong)(i - first)));
        }
        return runs;
    }

    /// <summary>Does this kernel implement PAGEMAP_SCAN? (Probed once with an empty range.)</summary>
    public bool ScanSupported
    {
        get
        {
            if (_scanSupported is null)
            {
                var arg = new PmScanArg { Size = (ulong)sizeof(PmScanArg), ReturnMask = PAGE_IS_PRESENT };
                _scanSupported = ioctl(_fd.Fd, PAGEMAP_SCAN, &arg) >= 0 || Marshal.GetLastPInvokeError() != ENOTTY;
            }
            return _scanSupported.Value;
        }
    }

    /// <summary>Runs of present-or-swapped pages via PAGEMAP_SCAN when available, else via pread.</summary>
    public List<PageRun> Runs(ulong start, ulong end) => ScanSupported ? ScanRuns(start, end) : ReadRuns(start, end);

    /// <summary>PAGEMAP_SCAN for pages that are present or swapped (with <paramref name="excludeFile"/>, only
    /// anonymous ones: the copied-on-write pages of a private file mapping); adjacent regions are merged.</summary>
    public List<PageRun> ScanRuns(ulong start, ulong end, bool excludeFile = false) => Scan(start, end, excludeFile).ToList();

    /// <summary>As <see cref="ScanRuns"/>, the runs given as each ioctl finds them: a sparse mapping can hold
    /// hundreds of thousands, which a dump need not hold all at once.</summary>
    public IEnumerable<PageRun> Scan(ulong start, ulong end, bool excludeFile = false)
    {
        // One vector per open pagemap, taken while a scan runs: a dump scans every VMA, and 12 KiB of fresh heap
        // per VMA costs a first-touch fault per page on this VM and wakes the GC in a small dump.
        var vec = Interlocked.Exchange(ref _scanVec, null) ?? new PageRegion[ScanVecLength];
        try
        {
            foreach (var run in Scan(start, end, excludeFile, vec))
                yield return run;
        }
        finally
        {
            _scanVec = vec;
        }
    }

    private PageRegion[]? _scanVec;

    /// <summary>The present or swapped pages of [start, end) as the kernel's regions, each with its PAGE_IS_FILE bit,
    /// through the shared vector: one walk for many adjacent VMAs instead of an ioctl per VMA (a small task has
    /// ~40). A region may run across VMA boundaries and through holes; the caller clips it.</summary>
    public IEnumerable<PageRegion> PresentRegions(ulong start, ulong end)
    {
        var vec = Interlocked.Exchange(ref _scanVec, null) ?? new PageRegion[ScanVecLength];
        try
        {
            for (ulong at = start; at < end;)
            {
                int n = ScanBatch(at, end, 0, 0, 0, PAGE_IS_PRESENT | PAGE_IS_SWAPPED, PAGE_IS_PRESENT | PAGE_IS_SWAPPED | PAGE_IS_FILE, vec, out ulong walkEnd);
                for (int i = 0; i < n; i++)
                    yield return vec[i];
                if (walkEnd <= at)
                    break;
                at = walkEnd;
            }
        }
        finally
        {
            _scanVec = vec;
        }
    }

    private IEnumerable<PageRun> Scan(ulong start, ulong end, bool excludeFile, PageRegion[] vec)
    {
        PageRun? pending = null;
        ulong at = start;
        while (at < end)
        {
            int n = ScanOnce(at, end, excludeFile, vec, out ulong walkEnd);
            for (int i = 0; i < n; i++)
            {
                ulong pages = (vec[i].End - vec[i].Start) / PageSize;
                if (pending is { } p && p.End == vec[i].Start)
                    pending = p with { PageCount = p.PageCount + pages };
                else
                {
                    if (pending is { } done)
                        yield return done;
                    pending = new PageRun(vec[i].Start, pages);
                }
            }
            if (walkEnd <= at)
                break;
            at = walkEnd;
        }
        if (pending is { } last)
            yield return last;
    }

    private const int ScanVecLength = 512;

    private int ScanOnce(ulong at, ulong end, bool excludeFile, PageRegion[] vec, out ulong walkEnd)
    {
        fixed (PageRegion* v = vec)
        {
            var arg = new PmScanArg
            {
                Size = (ulong)sizeof(PmScanArg),
                Start = at,
                End = end,
                Vec = (ulong)v,
                VecLength = (ulong)vec.Length,
                CategoryInverted = excludeFile ? PAGE_IS_FILE : 0,
                CategoryMask = excludeFile ? PAGE_IS_FILE : 0,
                CategoryAnyOfMask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
                ReturnMask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED | (excludeFile ? PAGE_IS_FILE : 0),
            };
            int n = ioctl(_fd.Fd, PAGEMAP_SCAN, &arg);
            if (n < 0)
                throw new SyscallException($"ioctl({Procfs.Host.Path(Pid, "pagemap")}, PAGEMAP_SCAN @0x{at:x})", Marshal.GetLastPInvokeError());
            walkEnd = arg.WalkEnd;
            return n;
        }
    }

    public const ulong PM_SCAN_WP_MATCHING = 1 << 0, PM_SCAN_CHECK_WPASYNC = 1 << 1;

    /// <summary>PAGEMAP_SCAN over [start, end) with the given masks: every region the kernel reports (adjacent
    /// regions with the same categories are merged by the kernel). With <see cref="PM_SCAN_WP_MATCHING"/> the
    /// matching pages are write-protected again as they are reported (userfaultfd async write-protection).</summary>
    public IEnumerable<PageRegion> ScanRegions(ulong start, ulong end, ulong flags, ulong inverted, ulong mask, ulong anyOf, ulong returnMask)
    {
        var vec = new PageRegion[ScanVecLength];
        for (ulong at = start; at < end;)
        {
            int n = ScanBatch(at, end, flags, inverted, mask, anyOf, returnMask, vec, out ulong walkEnd);
            for (int i = 0; i < n; i++)
                yield return vec[i];
            if (walkEnd <= at)
                break;
            at = walkEnd;
        }
    }

    private int ScanBatch(ulong at, ulong end, ulong flags, ulong inverted, ulong mask, ulong anyOf, ulong returnMask, PageRegion[] vec, out ulong walkEnd)
    {
        fixed (PageRegion* v = vec)
        {
            var arg = new PmScanArg
            {
                Size = (ulong)sizeof(PmScanArg),
                Flags = flags,
                Start = at,
                End = end,
                Vec = (ulong)v,
                VecLength = (ulong)vec.Length,
                CategoryInverted = inverted,
                CategoryMask = mask,
                CategoryAnyOfMask = anyOf,
                ReturnMask = returnMask,
            };
            int n = ioctl(_fd.Fd, PAGEMAP_SCAN, &arg);
            if (n < 0)
                throw new SyscallException($"ioctl({Procfs.Host.Path(Pid, "pagemap")}, PAGEMAP_SCAN 0x{flags:x} @0x{at:x})", Marshal.GetLastPInvokeError());
            walkEnd = arg.WalkEnd;
            return n;
        }
    }

    /// <summary>What <see cref="ScanRegions"/> (flags 0) reports, worked out from the pagemap entries, for kernels
    /// without PAGEMAP_SCAN (before 6.7): the categories PRESENT, SWAPPED, FILE (bit 61: file or shared) and
    /// SOFT_DIRTY (bit 55) only; a page is reported when, with <paramref name="inverted"/> flipped, it has every
    /// category of <paramref name="mask"/> and one of <paramref name="anyOf"/> (none asked: any page); adjacent
    /// pages with the same categories (of <paramref name="returnMask"/>) make one region, as the kernel's.</summary>
    public IEnumerable<PageRegion> EntryRegions(ulong start, ulong end, ulong inverted, ulong mask, ulong anyOf, ulong returnMask)
    {
        ulong pages = (end - start) / PageSize;
        var buffer = new ulong[Math.Min(pages, 1UL << 16)];
        PageRegion pending = default;
        for (ulong done = 0; done < pages;)
        {
            int n = (int)Math.Min(pages - done, (ulong)buffer.Length);
            ulong at = start + done * PageSize;
            ReadEntries(at, buffer.AsSpan(0, n));
            for (int i = 0; i < n; i++)
            {
                var e = new PagemapEntry(buffer[i]);
                ulong c = (e.Present ? PAGE_IS_PRESENT : 0) | (e.Swapped ? PAGE_IS_SWAPPED : 0)
                    | (e.FileOrSharedAnon ? PAGE_IS_FILE : 0) | (e.SoftDirty ? PAGE_IS_SOFT_DIRTY : 0);
                ulong x = c ^ inverted, page = at + (ulong)i * PageSize;
                if ((x & mask) != mask || (anyOf != 0 && (x & anyOf) == 0))
                    continue;
                if (pending.End == page && pending.Categories == (c & returnMask))
                {
                    pending.End += PageSize;
                    continue;
                }
                if (pending.End > pending.Start)
                    yield return pending;
                pending = new PageRegion { Start = page, End = page + PageSize, Categories = c & returnMask };
            }
            done += (ulong)n;
        }
        if (pending.End > pending.Start)
            yield return pending;
    }

    /// <summary>Write-protects every written page of [start, end) again (a range registered with an async
    /// write-protect userfaultfd): from now on a write shows as PAGE_IS_WRITTEN.</summary>
    public void ResetWritten(ulong start, ulong end)
    {
        foreach (var _ in ScanRegions(start, end, PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC, 0, 0, PAGE_IS_WRITTEN, PAGE_IS_WRITTEN)) { }
    }

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    private static partial int ioctl(int fd, ulong request, PmScanArg* arg);
}

/// <summary>struct pm_scan_arg (96 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct PmScanArg
{
    public ulong Size, Flags, Start, End, WalkEnd, Vec, VecLength, MaxPages,
        CategoryInverted, CategoryMask, CategoryAnyOfMask, ReturnMask;
}

/// <summary>struct page_region (PAGEMAP_SCAN output).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct PageRegion
{
    public ulong Start, End, Categories;
}
