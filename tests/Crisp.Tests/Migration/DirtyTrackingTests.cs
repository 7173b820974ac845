using Crisp.Check;
using Crisp.Linux;
using Crisp.Linux.Proc;
using Crisp.Resources.Memory;
using Crisp.Tests.Support;

namespace Crisp.Tests.Migration;

/// <summary>Issue 17: the soft-dirty fallback of pre-dump --track-mem, as far as a kernel without
/// CONFIG_MEM_SOFT_DIRTY lets it be tested: the choice of method, what `check --feature mem_dirty_track` says, the
/// pagemap-entry reading that stands in for PAGEMAP_SCAN (compared with PAGEMAP_SCAN on real pages), and the
/// crisp-mem-track line of a soft-dirty tracked task. The soft-dirty path itself runs only where the kernel has it.</summary>
public unsafe class DirtyTrackingTests
{
    private const ulong Page = Pagemap.PageSize;

    [Fact]
    public void WriteProtectIsChosenFirstThenSoftDirtyElseNone()
    {
        Assert.Equal(DirtyTrackingMethod.WriteProtect, DirtyTracking.Choose(true, () => throw new InvalidOperationException("soft-dirty probed although write-protect works")));
        Assert.Equal(DirtyTrackingMethod.SoftDirty, DirtyTracking.Choose(false, () => true));
        Assert.Equal(DirtyTrackingMethod.None, DirtyTracking.Choose(false, () => false));
    }

    /// <summary>What this kernel gives is what crisp uses and what check says it uses; soft-dirty here only if its
    /// probe (write, clear_refs 4, bit 55 clear, write, bit 55 set) passes.</summary>
    [RootFact]
    public void CheckMemDirtyTrackSaysWhichMethodThisKernelGives()
    {
        bool wp = MemDirtyTrackProbe.WriteProtectScan().Ok;
        bool soft = FeatureCheck.Run(new SoftDirtyProbe()).Result.Ok;
        var expected = DirtyTracking.Choose(wp, () => soft);
        Assert.Equal(expected, DirtyTracking.Current);
        var r = CrispCli.Run("check", "--feature=mem_dirty_track");
        Assert.Contains($"pre-dump --track-mem uses: {DirtyTracking.Describe(expected)}", r.Stdout);
        Assert.Contains($"soft-dirty: {(soft ? "yes" : "no")}", r.Stdout);
        Assert.Equal(expected == DirtyTrackingMethod.None ? 1 : 0, r.ExitCode == 0 ? 0 : 1);
    }

    /// <summary>Pagemap.EntryRegions (kernels without PAGEMAP_SCAN) reports the regions PAGEMAP_SCAN reports: anonymous
    /// pages touched in a pattern, and a private file mapping read whole with two pages written (copied on write:
    /// anonymous), with and without the file pages left out, soft-dirty category included.</summary>
    [Fact]
    public void PagemapEntriesGiveTheRegionsPagemapScanGives()
    {
        using var pagemap = Pagemap.Open(Environment.ProcessId);
        Assert.True(pagemap.ScanSupported, "this kernel has PAGEMAP_SCAN: the comparison needs it");
        const ulong Data = Pagemap.PAGE_IS_PRESENT | Pagemap.PAGE_IS_SWAPPED, F = Pagemap.PAGE_IS_FILE;
        const ulong Returned = Data | F | Pagemap.PAGE_IS_SOFT_DIRTY;
        nint anon = Mman.Map(0, 64 * Page, Mman.PROT_READ | Mman.PROT_WRITE, Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS);
        string path = Path.GetTempFileName();
        nint file = 0;
        try
        {
            foreach (int i in new[] { 0, 1, 2, 5, 9, 10, 11, 12, 40, 63 })
                ((byte*)anon)[i * (int)Page] = 1;
            File.WriteAllBytes(path, Enumerable.Repeat((byte)7, 16 * (int)Page).ToArray());
            using (var f = File.OpenHandle(path))
                file = Mman.Map(0, 16 * Page, Mman.PROT_READ | Mman.PROT_WRITE, Mman.MAP_PRIVATE, (int)f.DangerousGetHandle());
            long sum = 0;
            for (int i = 0; i < 16; i++)
                sum += ((byte*)file)[i * (int)Page];
            Assert.Equal(16 * 7, sum);
            ((byte*)file)[3 * (int)Page] = 1;
            ((byte*)file)[4 * (int)Page] = 1;
            foreach (var (start, len) in new[] { ((ulong)anon, 64 * Page), ((ulong)file, 16 * Page) })
                foreach (ulong leftOut in new[] { 0UL, F })
                {
                    var scanned = pagemap.ScanRegions(start, start + len, 0, leftOut, leftOut, Data, Returned).ToList();
                    var read = pagemap.EntryRegions(start, start + len, leftOut, leftOut, Data, Returned).ToList();
                    Assert.NotEmpty(scanned);
                    Assert.Equal(scanned.Select(r => (r.Start, r.End, r.Categories)), read.Select(r => (r.Start, r.End, r.Categories)));
                }
            var cow = pagemap.EntryRegions((ulong)file, (ulong)file + 16 * Page, F, F, Data, Data).Single();
            Assert.Equal(((ulong)file + 3 * Page, (ulong)file + 5 * Page), (cow.Start, cow.End));
        }
        finally
        {
            Mman.Unmap(anon, 64 * Page);
            if (file != 0)
                Mman.Unmap(file, 16 * Page);
            File.Delete(path);
        }
    }

    [Fact]
    public void ASoftDirtyTrackedTaskIsWrittenWithoutAnFdAndReadBack()
    {
        var dir = Directory.CreateTempSubdirectory().FullName;
        try
        {
            TrackFile.Write(dir, [new TrackedTask(123, 456, TrackedTask.SoftDirtyFd, [(0x1000, 0x5000)]), new TrackedTask(124, 457, 1000, [(0x2000, 0x3000)])],
                Crisp.Security.ImageModes.Private);
            var read = TrackFile.Read(dir);
            Assert.True(read[123].SoftDirty);
            Assert.True(read[123].Covers(0x1000, 0x5000));
            Assert.False(read[124].SoftDirty);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
