using System.Runtime.CompilerServices;
using Crisp.Linux;
using Crisp.Linux.Proc;

namespace Crisp.Tests.Linux;

public unsafe class PagemapTests
{
    private const ulong Page = Pagemap.PageSize;

    [Fact]
    public void DecodesEntryBits()
    {
        var e = new PagemapEntry((1UL << 63) | (1UL << 61) | (1UL << 56) | (1UL << 55) | 0x1234);
        Assert.True(e.Present);
        Assert.False(e.Swapped);
        Assert.True(e.FileOrSharedAnon);
        Assert.True(e.Exclusive);
        Assert.True(e.SoftDirty);
        Assert.Equal(0x1234UL, e.Pfn);
        Assert.True(e.HasData);

        var swapped = new PagemapEntry((1UL << 62) | (77UL << 5) | 3);
        Assert.True(swapped.Swapped);
        Assert.Equal(3UL, swapped.SwapType);
        Assert.Equal(77UL, swapped.SwapOffset);
        Assert.False(new PagemapEntry(1UL << 55).HasData);
    }

    [Fact]
    public void BuildsRunsOfPresentOrSwappedPages()
    {
        ulong P = 1UL << 63, S = 1UL << 62;
        ulong[] entries = [0, P, P | 5, S, 0, 0, P, 1UL << 55];
        var runs = Pagemap.Runs(0x10000, entries);
        Assert.Equal([new PageRun(0x10000 + Page, 3), new PageRun(0x10000 + 6 * Page, 1)], runs);
        Assert.Equal(0x10000 + 4 * Page, runs[0].End);
        Assert.Empty(Pagemap.Runs(0, [0UL, 0UL]));
        Assert.Equal([new PageRun(0, 2)], Pagemap.Runs(0, [P, S]));
    }

    [Fact]
    public void ScanArgLayoutMatchesKernel()
    {
        Assert.Equal(96, sizeof(PmScanArg));
        Assert.Equal(24, sizeof(PageRegion));
        Assert.Equal(0xc0606610UL, Pagemap.PAGEMAP_SCAN);
    }

    /// <summary>A fresh anonymous mapping: touched pages are present, untouched ones are not.</summary>
    [Fact]
    public void SeesTouchedPagesOfOwnMapping()
    {
        const ulong Pages = 16;
        nint map = Mman.Map(0, Pages * Page, Mman.PROT_READ | Mman.PROT_WRITE, Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS);
        try
        {
            // No (m)THP: a fault must populate exactly the page touched.
            Mman.Advise(map, Pages * Page, Mman.MADV_NOHUGEPAGE);
            var p = (byte*)map;
            p[0] = 1;
            p[1 * Page] = 1;
            p[2 * Page] = 1;
            p[9 * Page] = 1;
            ulong start = (ulong)map;
            using var pm = Pagemap.Open(Environment.ProcessId);
            var entries = pm.ReadEntries(start, start + Pages * Page);
            Assert.Equal((int)Pages, entries.Length);
            Assert.True(new PagemapEntry(entries[0]).Present);
            Assert.True(new PagemapEntry(entries[9]).Present);
            Assert.False(new PagemapEntry(entries[5]).HasData);

            var expected = new List<PageRun> { new(start, 3), new(start + 9 * Page, 1) };
            Assert.Equal(expected, pm.ReadRuns(start, start + Pages * Page));
            Assert.Equal(expected, pm.Runs(start, start + Pages * Page));
            if (pm.ScanSupported)
                Assert.Equal(expected, pm.ScanRuns(start, start + Pages * Page));
        }
        finally
        {
            Mman.Unmap(map, Pages * Page);
        }
    }

    [Fact]
    public void SeesTouchedPageOfPinnedArray()
    {
        var array = GC.AllocateArray<byte>(8 * (int)Page, pinned: true);
        ulong addr = (ulong)Unsafe.AsPointer(ref array[0]);
        ulong page = (addr + Page - 1) & ~(Page - 1);
        array[(int)(page - addr) + 10] = 42;
        using var pm = Pagemap.Open(0);
        var e = new PagemapEntry(pm.ReadEntries(page, page + Page)[0]);
        Assert.True(e.Present);
        if (ProcessIds.IsRoot)
            Assert.NotEqual(0UL, e.Pfn);
        GC.KeepAlive(array);
    }

    [Fact]
    public void ScanProbeAgreesWithKernelVersion()
    {
        using var pm = Pagemap.Open(0);
        var release = Environment.OSVersion.Version;
        if (release.Major > 6 || release.Major == 6 && release.Minor >= 7)
            Assert.True(pm.ScanSupported);
    }
}

public class PagemapChunkingTests
{
    /// <summary>Reading in chunks gives the same runs as one big read, across chunk borders.</summary>
    [Fact]
    public void ChunkedRunsMatchWholeRead()
    {
        using var pm = Pagemap.Open(0);
        foreach (var vma in ProcMaps.Read(0).Where(m => m.Kind != VmaKind.Vsyscall && m.Length <= 64UL << 20))
        {
            var whole = Pagemap.Runs(vma.Start, pm.ReadEntries(vma.Start, vma.End));
            var chunked = pm.ReadRuns(vma.Start, vma.End);
            // Pages fault in and out between the two reads in a live runtime; read-only file
            // mappings are quiet enough to compare exactly.
            if (vma.Kind == VmaKind.File && !vma.CanWrite)
                Assert.Equal(whole, chunked);
        }
        // A huge reservation (dotnet's GC reserves hundreds of GiB) is walked without a huge buffer.
        var big = ProcMaps.Read(0).MaxBy(m => m.Length)!;
        if (big.Kind != VmaKind.Vsyscall && big.Length > (ulong)Pagemap.MaxEntriesPerRead * Pagemap.PageSize)
            pm.ReadRuns(big.Start, big.End);
    }
}
