using System.Runtime.CompilerServices;
using Crisp.Linux.Proc;

namespace Crisp.Footprint;

/// <summary>Checks, before a dump or restore gets going, that crisp's own cgroups leave room for it (issue 24): a
/// runtime such as runc moves crisp into the container's cgroups to restore it, so crisp, and at restore the whole
/// tree it creates, is charged to the container's memory and pids limits. Being OOM-killed halfway is the worst
/// outcome for a user, so crisp says so in one line first: a warning where the run might not fit, a refusal where
/// it certainly cannot (the tree's own pages alone exceed what the cgroup can still hold). File cache, such as the
/// images a dump writes to disk, is reclaimable and not counted as used; images on tmpfs are.</summary>
public static class CgroupHeadroom
{
    /// <summary>What crisp's own memory charge grows by while it works, beyond what it holds when it checks: the
    /// page batches, heap growth and, in the JIT build, the code compiled on the way (measured: the JIT build dumps
    /// 256 MiB inside 32 MiB, not inside 24, and holds ~6 MiB when it checks).</summary>
    public static long OwnGrowth =>
        Resources.Memory.PagePipe.Depth * Resources.Memory.PagePipe.BatchBytes + (4L << 20)
        + (RuntimeFeature.IsDynamicCodeCompiled ? 18L << 20 : 0);

    /// <summary>Threads crisp may add while it works (tracer, page pipe drain, thread pool).</summary>
    private const int OwnThreads = 6;

    /// <summary>Before anything is touched: a warning when the dump might not fit (a killed dump leaves the
    /// tree running as it was, so it is not refused).</summary>
    public static void BeforeDump(Log log)
    {
        if (CgroupLimits.Memory() is { } m && m.Headroom < OwnGrowth)
            log.Warn($"memory cgroup {m.Cgroup} has {MiB(m.Headroom)} MiB free of its {MiB(m.Limit)} MiB limit (file cache not counted); " +
                $"crisp needs about {MiB(OwnGrowth)} MiB more and may be OOM-killed (the tree then runs on as it was)");
    }

    /// <summary>Once the tree is seized: images on tmpfs (/dev/shm) stay in memory, charged to crisp's cgroup,
    /// so a tree whose pages cannot fit there is refused rather than have the OOM killer pick a task — perhaps
    /// one of the tree's own — halfway.</summary>
    public static void BeforePages(string imagesDir, long treeBytes)
    {
        if (treeBytes == 0 || !OnTmpfs(imagesDir) || CgroupLimits.Memory() is not { } m)
            return;
        if (m.Headroom + m.SwapAllowed < treeBytes + OwnGrowth)
            throw new CrispException($"images dir {imagesDir} is on tmpfs, which is charged to memory cgroup {m.Cgroup}: " +
                $"the tree's {MiB(treeBytes)} MiB of pages and crisp's ~{MiB(OwnGrowth)} MiB do not fit in its {MiB(m.Headroom)} MiB free " +
                $"(limit {MiB(m.Limit)} MiB); dump to disk or raise the limit");
    }

    /// <summary>Before anything is created: the restored tree is created in crisp's cgroups. Refused when its pages
    /// (or its tasks) alone exceed what the cgroup can still take; a warning when crisp's own share may not fit.</summary>
    /// <param name="treeBytes">The tree's pages, counted only where a memory limit applies (it reads every pagemap).</param>
    public static void BeforeRestore(Func<long> treeBytes, int treeTasks, Log log) =>
        BeforeRestore(CgroupLimits.Memory() is { } m ? (m, treeBytes()) : null, treeTasks, log);

    private static void BeforeRestore((MemoryLimit Limit, long TreeBytes)? memory, int treeTasks, Log log)
    {
        if (memory is { } limited)
        {
            var (m, treeBytes) = limited;
            if (m.Headroom + m.SwapAllowed < treeBytes)
                throw new CrispException($"memory cgroup {m.Cgroup} has {MiB(m.Headroom)} MiB free of its {MiB(m.Limit)} MiB limit, " +
                    $"but the restored tree alone needs {MiB(treeBytes)} MiB (it is created in this cgroup): refusing to start a restore that would be OOM-killed");
            if (m.Headroom < treeBytes + OwnGrowth)
                log.Warn($"memory cgroup {m.Cgroup} has {MiB(m.Headroom)} MiB free of its {MiB(m.Limit)} MiB limit (file cache not counted); " +
                    $"the tree needs {MiB(treeBytes)} MiB and crisp about {MiB(OwnGrowth)} MiB more: the restore may be OOM-killed (it then leaves nothing behind)");
        }
        if (CgroupLimits.Pids() is { } p)
        {
            // One more for the first puppet, which the root is cloned from.
            if (p.Headroom < treeTasks + 1)
                throw new CrispException($"pids cgroup {p.Cgroup} allows {p.Headroom} more tasks (pids.max {p.Max}), " +
                    $"but the restored tree has {treeTasks} (threads included): refusing to start a restore that cannot create them");
            if (p.Headroom < treeTasks + 1 + OwnThreads)
                log.Warn($"pids cgroup {p.Cgroup} allows {p.Headroom} more tasks (pids.max {p.Max}); the tree has {treeTasks} and crisp may start {OwnThreads} threads");
        }
    }

    private static bool OnTmpfs(string dir)
    {
        string full = Path.GetFullPath(dir).TrimEnd('/') + "/";
        var mount = MountInfo.Read(0)
            .Where(m => full.StartsWith(m.MountPoint.TrimEnd('/') + "/", StringComparison.Ordinal))
            .OrderBy(m => m.MountPoint.Length)
            .LastOrDefault();   // the longest mount point, and of those the one mounted last
        return mount?.FsType == "tmpfs";
    }

    private static long MiB(long bytes) => (bytes + (1 << 20) - 1) >> 20;
}
