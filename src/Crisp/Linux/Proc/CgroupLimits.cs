namespace Crisp.Linux.Proc;

/// <summary>The tightest memory limit on a cgroup and its ancestors: where it is set, the limit, what is charged
/// there, how much of that the kernel can reclaim (clean or dirty file cache: inactive_file + active_file; shmem,
/// tmpfs included, is not reclaimable without swap) and how much it may swap.</summary>
public sealed record MemoryLimit(string Cgroup, long Limit, long Usage, long Reclaimable, long SwapAllowed)
{
    /// <summary>Bytes that can still be charged before the kernel's OOM killer acts (cache reclaimed first).</summary>
    public long Headroom => Math.Max(0, Limit - (Usage - Reclaimable));
}

/// <summary>The task limit (pids controller) closest to exhaustion on a cgroup and its ancestors.</summary>
public sealed record PidsLimit(string Cgroup, long Max, long Current)
{
    public long Headroom => Math.Max(0, Max - Current);
}

/// <summary>Reads the memory and pids limits of a process's own cgroups, v1 (memory.limit_in_bytes, pids.max
/// under each controller's mount) and v2 (memory.max, pids.max in the unified tree), from /proc/PID/cgroup and
/// /proc/PID/mountinfo. A missing controller or an unlimited tree gives null.</summary>
public static class CgroupLimits
{
    private const long Unlimited = long.MaxValue / 2;   // v1 reports 0x7ffffffffffff000, v2 "max"

    public static MemoryLimit? Memory(int pid = 0)
    {
        MemoryLimit? tightest = null;
        foreach (var (dir, name) in Levels(pid, "memory"))
        {
            // The limit first: the other files (memory.stat is ~40 lines) only matter at a level that has one.
            var level = ReadNumber(Path.Combine(dir, "memory.limit_in_bytes")) is { } v1 ? (v1 < Unlimited ? MemoryV1(dir, name, v1) : null)
                : ReadNumber(Path.Combine(dir, "memory.max")) is { } v2 && v2 < Unlimited ? MemoryV2(dir, name, v2) : null;
            if (level is not null && (tightest is null || level.Headroom < tightest.Headroom))
                tightest = level;
        }
        return tightest;
    }

    public static PidsLimit? Pids(int pid = 0)
    {
        PidsLimit? tightest = null;
        foreach (var (dir, name) in Levels(pid, "pids"))
        {
            if (ReadNumber(Path.Combine(dir, "pids.max")) is not { } max || max >= Unlimited)
                continue;
            var level = new PidsLimit(name, max, ReadNumber(Path.Combine(dir, "pids.current")) ?? 0);
            if (tightest is null || level.Headroom < tightest.Headroom)
                tightest = level;
        }
        return tightest;
    }

    private static MemoryLimit MemoryV1(string dir, string name, long limit)
    {
        var stat = Stat(Path.Combine(dir, "memory.stat"));
        long memsw = ReadNumber(Path.Combine(dir, "memory.memsw.limit_in_bytes")) ?? limit;
        return new MemoryLimit(name, limit, ReadNumber(Path.Combine(dir, "memory.usage_in_bytes")) ?? 0,
            stat.GetValueOrDefault("total_inactive_file") + stat.GetValueOrDefault("total_active_file"),
            SwapOn() ? Math.Max(0, memsw - limit) : 0);
    }

    private static MemoryLimit MemoryV2(string dir, string name, long limit)
    {
        var stat = Stat(Path.Combine(dir, "memory.stat"));
        long swapMax = ReadNumber(Path.Combine(dir, "memory.swap.max")) ?? 0;
        return new MemoryLimit(name, limit,
            ReadNumber(Path.Combine(dir, "memory.current")) ?? 0,
            stat.GetValueOrDefault("inactive_file") + stat.GetValueOrDefault("active_file"),
            SwapOn() ? swapMax : 0);
    }

    /// <summary>The directories of the process's cgroup for <paramref name="controller"/> (v1) or in the unified
    /// tree (v2), from its own up to the mount's root, each with its cgroup path.</summary>
    private static IEnumerable<(string Dir, string Name)> Levels(int pid, string controller)
    {
        var mounts = MountInfo.Read(pid);
        foreach (var line in Procfs.Host.ReadLines(pid, "cgroup"))
        {
            var parts = line.Split(':', 3);
            if (parts.Length != 3)
                continue;
            bool v2 = parts[0] == "0" && parts[1] == "";
            if (!v2 && !parts[1].Split(',').Contains(controller))
                continue;
            var mount = mounts.FirstOrDefault(m => v2
                ? m.FsType == "cgroup2"
                : m.FsType == "cgroup" && m.SuperOptions.Split(',').Contains(controller));
            if (mount is null)
                continue;
            // The mount may show a sub-tree (a container's): its root is cut from the front of the path.
            string[] path = parts[2].Split('/', StringSplitOptions.RemoveEmptyEntries);
            int hidden = mount.Root == "/" ? 0 : mount.Root.Split('/', StringSplitOptions.RemoveEmptyEntries).Length;
            if (hidden > path.Length)
                continue;
            for (int k = path.Length; k >= hidden; k--)
                yield return (Path.Combine([mount.MountPoint, .. path[hidden..k]]), "/" + string.Join('/', path[..k]));
        }
    }

    private static long? ReadNumber(string file)
    {
        // Most levels lack most of these files: a missing one is not an exception (each costs the native binary a
        // stack unwind).
        if (!File.Exists(file))
            return null;
        try
        {
            string text = File.ReadAllText(file).Trim();
            return text == "max" ? long.MaxValue : long.TryParse(text, out long n) ? n : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static Dictionary<string, long> Stat(string file)
    {
        var stat = new Dictionary<string, long>(StringComparer.Ordinal);
        try
        {
            foreach (var line in File.ReadLines(file))
                if (line.Split(' ') is [var key, var value] && long.TryParse(value, out long n))
                    stat[key] = n;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
        return stat;
    }

    /// <summary>Whether the machine has swap at all (a memsw or swap.max allowance means nothing without it).</summary>
    private static bool SwapOn() =>
        File.ReadLines("/proc/meminfo").FirstOrDefault(l => l.StartsWith("SwapTotal:", StringComparison.Ordinal)) is { } l
        && l.Split(' ', StringSplitOptions.RemoveEmptyEntries) is [_, var kb, ..] && long.TryParse(kb, out long n) && n > 0;
}
