using System.Runtime.InteropServices;
using Crisp.Linux;
using Crisp.Linux.Proc;

namespace Crisp.Check;

/// <summary>PAGEMAP_SCAN ioctl on /proc/self/pagemap (Linux 6.7+): a faster way to find dirty pages.</summary>
public sealed unsafe class PagemapScanProbe : IFeatureProbe
{
    private const uint PAGEMAP_SCAN = 0xC0606610; // _IOWR('f', 16, struct pm_scan_arg)
    private const ulong PAGE_IS_PRESENT = 1 << 3;
    private const int ENOTTY = 25;

    public string Name => "pagemap_scan";
    public string? CriuFeature => "pagemap_scan";
    public bool Required => false;

    public ProbeResult Probe()
    {
        byte* page = (byte*)NativeMemory.AlignedAlloc(4096, 4096);
        try
        {
            page[0] = 1;
            using var pagemap = File.OpenHandle("/proc/self/pagemap", FileMode.Open, FileAccess.Read);
            ulong* region = stackalloc ulong[3];
            ulong* arg = stackalloc ulong[12];
            new Span<ulong>(arg, 12).Clear();
            arg[0] = 96;                          // size
            arg[2] = (ulong)page;                 // start
            arg[3] = (ulong)page + 4096;          // end
            arg[5] = (ulong)region;               // vec
            arg[6] = 1;                           // vec_len
            arg[10] = PAGE_IS_PRESENT;            // category_anyof_mask
            arg[11] = PAGE_IS_PRESENT;            // return_mask
            long r = RawSyscall.TryCall(Sysno.ioctl, (long)pagemap.DangerousGetHandle(), PAGEMAP_SCAN, (long)arg);
            if (r == -ENOTTY)
                return ProbeResult.Missing("ioctl(PAGEMAP_SCAN): not supported by this kernel");
            return r >= 0
                ? ProbeResult.Supported($"scanned a page of ours: {r} present region")
                : ProbeResult.Missing($"ioctl(PAGEMAP_SCAN): {Errnos.Describe((int)-r)}");
        }
        finally
        {
            NativeMemory.AlignedFree(page);
        }
    }
}

/// <summary>Soft-dirty tracking: clear_refs accepts 4 and a page written afterwards has pagemap bit 55.
/// One half of mem_dirty_track (<see cref="MemDirtyTrackProbe"/>).</summary>
public sealed class SoftDirtyProbe : IFeatureProbe
{
    public string Name => "soft_dirty";
    public string? CriuFeature => null;
    public bool Required => false;

    public ProbeResult Probe()
    {
        using var child = ProbeChild.StartPuppet();
        ulong address = ProcStat.Read(child.Pid).StartStack;
        try
        {
            File.WriteAllText(Procfs.Host.Path(child.Pid, "clear_refs"), "4");
        }
        catch (IOException e)
        {
            return ProbeResult.Missing($"clear_refs rejects 4: {e.Message}");
        }
        bool before = Entry(child.Pid, address).SoftDirty;
        // Write the word back unchanged: the write fault is what marks the page soft-dirty.
        var word = new byte[8];
        ProcessVm.ReadExactly(child.Pid, address, word);
        ProcessVm.WriteExactly(child.Pid, address, word);
        bool after = Entry(child.Pid, address).SoftDirty;
        return !before && after
            ? ProbeResult.Supported("clear_refs 4 cleared pagemap bit 55, a write set it again")
            : ProbeResult.Missing(!before && !after
                ? "a written page never gets pagemap bit 55 (kernel built without CONFIG_MEM_SOFT_DIRTY?)"
                : $"pagemap bit 55 after clear_refs: {before}, after a write: {after}");
    }

    private static PagemapEntry Entry(int pid, ulong address)
    {
        using var pagemap = File.OpenHandle(Procfs.Host.Path(pid, "pagemap"), FileMode.Open, FileAccess.Read);
        var raw = new byte[8];
        RandomAccess.Read(pagemap, raw, (long)(address / 4096 * 8));
        return new PagemapEntry(BitConverter.ToUInt64(raw));
    }
}

/// <summary>timerfd_create, and whether TFD_IOC_SET_TICKS exists (needs CONFIG_CHECKPOINT_RESTORE).</summary>
public sealed unsafe class TimerfdProbe : IFeatureProbe
{
    private const int CLOCK_MONOTONIC = 1, TFD_CLOEXEC = 0x80000, ENOTTY = 25;
    private const uint TFD_IOC_SET_TICKS = 0x40085400; // _IOW('T', 0, u64)

    public string Name => "timerfd";
    public string? CriuFeature => "timerfd";
    public bool Required => true;

    public ProbeResult Probe()
    {
        long fd = RawSyscall.TryCall(Sysno.timerfd_create, CLOCK_MONOTONIC, TFD_CLOEXEC);
        if (fd < 0)
            return ProbeResult.Missing($"timerfd_create: {Errnos.Describe((int)-fd)}");
        using var timer = new UnixFd((int)fd);
        ulong ticks = 0;
        // Zero ticks is refused with EINVAL by a kernel that has the ioctl; ENOTTY means it has not.
        long r = RawSyscall.TryCall(Sysno.ioctl, fd, TFD_IOC_SET_TICKS, (long)&ticks);
        return ProbeResult.Supported(r == -ENOTTY
            ? "timerfd_create ok; TFD_IOC_SET_TICKS absent (expiry counts are not restored)"
            : "timerfd_create ok; TFD_IOC_SET_TICKS present");
    }
}
