using Crisp.Dump;
using Crisp.Restore;
using Crisp.Tests.Images;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;

namespace Crisp.Tests.Resources.Memory;

/// <summary>hugetlb memory dumped and restored twice, then checked by the workload itself
/// (tests/workloads/hugetlb_state.c): private and shared anonymous MAP_HUGETLB areas and a MFD_HUGETLB memfd
/// come back with their contents, as hugetlb areas (KernelPageSize 2048 kB) with their names; the images
/// are CRIU's (MAP_HUGETLB with the size bits in vma flags, hugetlb_flag in memfd.img) and crit reads them.</summary>
public class HugetlbTests
{
    private const uint MAP_SHARED = 0x01, MAP_HUGETLB = 0x40000, Huge2M = 21u << 26, MFD_HUGETLB = 4;

    [RootFact]
    public void HugetlbAreasComeBackHugeWithTheirContents()
    {
        // 5 pages for the workload, 2 more for the private area of the restored one while the old may linger.
        using var reserved = new HugePagesReserved(16);
        using var w = new DirWorkload("crisp-hugetlb-");
        w.Start(Support.Workloads.Build("hugetlb_state"), []);
        w.WaitReady("hugetlb_state");
        int pid = w.Pid;
        RestoredTree? tree = null;
        for (int cycle = 0; cycle < 2; cycle++)
        {
            string images = w.NewImagesDir($"images{cycle}");
            w.Dump(new DumpOptions { RootPid = pid, ImagesDir = images, ShellJob = true });
            Live.AssertCritDecodesAll(images);
            global::Crisp.Images.Proto.mm_entry mm;
            using (var dir = global::Crisp.Images.ImageDirectory.Open(images))
                mm = dir.ReadAll<global::Crisp.Images.Proto.mm_entry>(global::Crisp.Images.ImageFile.Mm(pid)).Single();
            var huge = mm.Vmas.Where(v => (v.Flags & MAP_HUGETLB) != 0).ToList();
            Assert.Equal(3, huge.Count);
            Assert.All(huge, v => Assert.Equal(Huge2M, v.Flags & (0x3fu << 26)));
            Assert.Equal(2, huge.Count(v => (v.Flags & MAP_SHARED) != 0));
            var inode = Crit.Decode(Path.Combine(images, "memfd.img")).GetProperty("entries").EnumerateArray().Single();
            Assert.Equal("crisp-huge", inode.GetProperty("name").GetString());
            Assert.Equal(MFD_HUGETLB | Huge2M, inode.GetProperty("hugetlb_flag").GetUInt32());
            Live.WaitFor(() => !Directory.Exists($"/proc/{pid}"), $"pid {pid} to go");
            tree = w.Restore(new RestoreOptions { ImagesDir = images, ShellJob = true, Detached = true });
            string maps = File.ReadAllText($"/proc/{pid}/maps");
            Assert.Contains("/anon_hugepage (deleted)", maps);
            Assert.Contains("/memfd:crisp-huge (deleted)", maps);
        }
        w.SignalAndExpectPass(tree!);
    }
}
