using System.Runtime.InteropServices;
using Crisp.Linux;

namespace Crisp.Check;

/// <summary>userfaultfd(2) and its UFFDIO_API handshake, shared by the uffd probes.</summary>
internal static unsafe class Uffd
{
    public const ulong UFFD_API = 0xAA;
    public const ulong FEATURE_EVENT_FORK = 1 << 1, FEATURE_EVENT_REMAP = 1 << 2, FEATURE_EVENT_REMOVE = 1 << 3,
        FEATURE_EVENT_UNMAP = 1 << 6, FEATURE_WP_ASYNC = 1 << 15;
    private const long UFFDIO_API = 0xC018AA3F;       // _IOWR(0xAA, 0x3F, struct uffdio_api)
    public const long UFFDIO_REGISTER = 0xC020AA00;   // _IOWR(0xAA, 0x00, struct uffdio_register)
    public const ulong UFFDIO_REGISTER_MODE_WP = 2;
    private const int O_NONBLOCK = 0x800;

    /// <summary>Opens a userfaultfd and does the API handshake asking for <paramref name="features"/>
    /// (0: the kernel reports every feature it has). Throws SyscallException naming the failing step.</summary>
    public static (UnixFd Fd, ulong Features) Open(ulong features = 0)
    {
        long fd = RawSyscall.TryCall(Sysno.userfaultfd, FileIo.O_CLOEXEC | O_NONBLOCK);
        if (fd < 0)
            throw new SyscallException("userfaultfd", (int)-fd);
        var uffd = new UnixFd((int)fd);
        ulong* api = stackalloc ulong[3] { UFFD_API, features, 0 };
        long r = RawSyscall.TryCall(Sysno.ioctl, fd, UFFDIO_API, (long)api);
        if (r < 0)
        {
            uffd.Dispose();
            throw new SyscallException("ioctl(UFFDIO_API)", (int)-r);
        }
        return (uffd, api[1]);
    }
}

/// <summary>uffd: userfaultfd(2) opens and answers UFFDIO_API (lazy pages).</summary>
public sealed class UffdProbe() : CriuProbe("uffd")
{
    protected override ProbeResult Check()
    {
        try
        {
            var (fd, features) = Uffd.Open();
            fd.Dispose();
            return ProbeResult.Supported($"userfaultfd + UFFDIO_API ok (features 0x{features:x})");
        }
        catch (SyscallException e)
        {
            return ProbeResult.Missing(e.Message);
        }
    }
}

/// <summary>uffd-noncoop: userfaultfd reports fork, mremap, munmap and MADV_DONTNEED events.</summary>
public sealed class UffdNoncoopProbe() : CriuProbe("uffd-noncoop")
{
    private const ulong Needed = Uffd.FEATURE_EVENT_FORK | Uffd.FEATURE_EVENT_REMAP | Uffd.FEATURE_EVENT_UNMAP | Uffd.FEATURE_EVENT_REMOVE;

    protected override ProbeResult Check()
    {
        try
        {
            var (fd, features) = Uffd.Open();
            fd.Dispose();
            return (features & Needed) == Needed
                ? ProbeResult.Supported($"userfaultfd has the fork/remap/unmap/remove events (features 0x{features:x})")
                : ProbeResult.Missing($"userfaultfd lacks events 0x{Needed & ~features:x} (features 0x{features:x})");
        }
        catch (SyscallException e)
        {
            return ProbeResult.Missing(e.Message);
        }
    }
}

/// <summary>PAGEMAP_SCAN (struct pm_scan_arg) on /proc/self/pagemap.</summary>
internal static unsafe class PagemapScan
{
    public const uint PAGEMAP_SCAN = 0xC0606610;
    public const ulong PAGE_IS_WRITTEN = 1 << 1, PAGE_IS_PRESENT = 1 << 3, PAGE_IS_GUARD = 1 << 8;
    public const ulong PM_SCAN_WP_MATCHING = 1 << 0, PM_SCAN_CHECK_WPASYNC = 1 << 1;

    /// <summary>Scans [start, end) of crisp's own memory: regions found, or -errno.</summary>
    public static long Scan(nint start, nint end, ulong flags, ulong anyof, ulong returnMask, out ulong firstCategories)
    {
        using var pagemap = File.OpenHandle("/proc/self/pagemap", FileMode.Open, FileAccess.Read);
        ulong* region = stackalloc ulong[3 * 4];
        ulong* arg = stackalloc ulong[12];
        new Span<ulong>(arg, 12).Clear();
        arg[0] = 96;              // size
        arg[1] = flags;
        arg[2] = (ulong)start;
        arg[3] = (ulong)end;
        arg[5] = (ulong)region;   // vec
        arg[6] = 4;               // vec_len
        arg[10] = anyof;          // category_anyof_mask
        arg[11] = returnMask;
        long r = RawSyscall.TryCall(Sysno.ioctl, (long)pagemap.DangerousGetHandle(), PAGEMAP_SCAN, (long)arg);
        firstCategories = r > 0 ? region[2] : 0;
        return r;
    }
}

/// <summary>mem_dirty_track: pages written since a point can be found, by soft-dirty bits (what CRIU
/// checks) or by PAGEMAP_SCAN over userfaultfd async write-protection. The detail says which work, and which one
/// pre-dump --track-mem uses (<see cref="Resources.Memory.DirtyTracking.Choose"/>).</summary>
public sealed class MemDirtyTrackProbe() : CriuProbe("mem_dirty_track")
{
    protected override ProbeResult Check()
    {
        var soft = FeatureCheck.Run(new SoftDirtyProbe()).Result;
        // In-process, cheap: checked even when soft-dirty works, so the detail tells both.
        var wp = WriteProtectScan();
        var used = Resources.Memory.DirtyTracking.Choose(wp.Ok, () => soft.Ok);
        string detail = $"pre-dump --track-mem uses: {Resources.Memory.DirtyTracking.Describe(used)}; " +
            $"soft-dirty: {(soft.Ok ? "yes" : "no")} ({soft.Detail}); PAGEMAP_SCAN write-protect: {(wp.Ok ? "yes" : "no")} ({wp.Detail})";
        return soft.Ok || wp.Ok ? ProbeResult.Supported(detail) : ProbeResult.Missing(detail);
    }

    /// <summary>A page of crisp's under async uffd-wp: a WP_MATCHING scan clears "written", a write sets it.</summary>
    public static unsafe ProbeResult WriteProtectScan()
    {
        UnixFd uffd;
        try
        {
            (uffd, _) = Uffd.Open(Uffd.FEATURE_WP_ASYNC);
        }
        catch (SyscallException e)
        {
            return ProbeResult.Missing(e.Message);
        }
        using (uffd)
        {
            nint page = Mman.Map(0, 4096, Mman.PROT_READ | Mman.PROT_WRITE, Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS);
            try
            {
                *(byte*)page = 1;
                ulong* reg = stackalloc ulong[4] { (ulong)page, 4096, Uffd.UFFDIO_REGISTER_MODE_WP, 0 };
                long r = RawSyscall.TryCall(Sysno.ioctl, uffd.Fd, Uffd.UFFDIO_REGISTER, (long)reg);
                if (r < 0)
                    return ProbeResult.Missing($"ioctl(UFFDIO_REGISTER, MODE_WP): {ProbeSys.Err(r)}");
                const ulong W = PagemapScan.PAGE_IS_WRITTEN;
                r = PagemapScan.Scan(page, page + 4096, PagemapScan.PM_SCAN_WP_MATCHING | PagemapScan.PM_SCAN_CHECK_WPASYNC, W, W, out _);
                if (r < 0)
                    return ProbeResult.Missing($"PAGEMAP_SCAN with PM_SCAN_WP_MATCHING: {ProbeSys.Err(r)}");
                long clean = PagemapScan.Scan(page, page + 4096, 0, W, W, out _);
                *(byte*)page = 2;
                long dirty = PagemapScan.Scan(page, page + 4096, 0, W, W, out _);
                return clean == 0 && dirty == 1
                    ? ProbeResult.Supported("a write-protected page shows PAGE_IS_WRITTEN after a write")
                    : ProbeResult.Missing($"written regions after write-protect: {clean}, after a write: {dirty}");
            }
            finally
            {
                Mman.Unmap(page, 4096);
            }
        }
    }
}

/// <summary>Dirty tracking by PAGEMAP_SCAN over userfaultfd async write-protection (crisp's name; one half
/// of mem_dirty_track).</summary>
public sealed class PagemapScanWpProbe : IFeatureProbe
{
    public string Name => "pagemap_scan_wp";
    public string? CriuFeature => null;
    public bool Required => false;
    public ProbeResult Probe() => MemDirtyTrackProbe.WriteProtectScan();
}

/// <summary>pagemap_scan_guard_pages: PAGEMAP_SCAN reports MADV_GUARD_INSTALL guard pages (PAGE_IS_GUARD).</summary>
public sealed unsafe class PagemapScanGuardPagesProbe() : CriuProbe("pagemap_scan_guard_pages")
{
    private const int MADV_GUARD_INSTALL = 102;

    protected override ProbeResult Check()
    {
        nint map = Mman.Map(0, 8192, Mman.PROT_READ | Mman.PROT_WRITE, Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS);
        try
        {
            const ulong G = PagemapScan.PAGE_IS_GUARD;
            long r = PagemapScan.Scan(map, map + 8192, 0, G, G, out _);
            if (r < 0)
                return ProbeResult.Missing($"PAGEMAP_SCAN with PAGE_IS_GUARD: {ProbeSys.Err(r)}");
            long g = RawSyscall.TryCall(Sysno.madvise, map, 4096, MADV_GUARD_INSTALL);
            if (g < 0)
                return ProbeResult.Supported($"PAGEMAP_SCAN accepts PAGE_IS_GUARD (madvise(MADV_GUARD_INSTALL): {ProbeSys.Err(g)})");
            r = PagemapScan.Scan(map, map + 8192, 0, G, G, out ulong categories);
            return r == 1 && (categories & G) != 0
                ? ProbeResult.Supported("PAGEMAP_SCAN reports a MADV_GUARD_INSTALL page as PAGE_IS_GUARD")
                : ProbeResult.Missing($"a guard page scanned as {r} guard regions");
        }
        finally
        {
            Mman.Unmap(map, 8192);
        }
    }
}

/// <summary>aio_remap: an AIO ring can be moved with mremap and still works (io_getevents on the new address).</summary>
public sealed unsafe class AioRemapProbe() : CriuProbe("aio_remap")
{
    private const long MREMAP_MAYMOVE = 1, MREMAP_FIXED = 2;

    protected override ProbeResult Check()
    {
        ulong ctx = 0;
        long r = RawSyscall.TryCall(Sysno.io_setup, 16, (long)&ctx);
        if (r < 0)
            return ProbeResult.Missing($"io_setup: {ProbeSys.Err(r)}");
        try
        {
            string prefix = $"{ctx:x}-";
            string? line = File.ReadLines("/proc/self/maps").FirstOrDefault(l => l.StartsWith(prefix, StringComparison.Ordinal));
            if (line is null || !line.EndsWith("/[aio] (deleted)", StringComparison.Ordinal))
                return ProbeResult.Missing("no AIO ring in /proc/self/maps at the context address");
            var range = line.Split(' ')[0].Split('-');
            ulong len = Convert.ToUInt64(range[1], 16) - Convert.ToUInt64(range[0], 16);
            nint to = Mman.Map(0, len, Mman.PROT_READ | Mman.PROT_WRITE, Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS);
            long moved = RawSyscall.TryCall(Sysno.mremap, (long)ctx, (long)len, (long)len, MREMAP_MAYMOVE | MREMAP_FIXED, to);
            if (moved < 0)
            {
                Mman.Unmap(to, len);
                return ProbeResult.Missing($"mremap of the AIO ring: {ProbeSys.Err(moved)}");
            }
            ctx = (ulong)moved;
            r = RawSyscall.TryCall(Sysno.io_getevents, (long)ctx, 0, 1, 0, 0);
            return r < 0 ? ProbeResult.Missing($"io_getevents on the moved ring: {ProbeSys.Err(r)}")
                : ProbeResult.Supported($"moved a {len}-byte AIO ring, io_getevents on it ok");
        }
        finally
        {
            RawSyscall.TryCall(Sysno.io_destroy, (long)ctx);
        }
    }
}
