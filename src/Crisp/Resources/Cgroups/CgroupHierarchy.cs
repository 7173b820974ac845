using Crisp.Linux.Proc;

namespace Crisp.Resources.Cgroups;

/// <summary>A task's cgroups as /proc/PID/cgroup lists them (read from crisp's cgroup namespace, so the paths are
/// full ones): hierarchy name ("cpu,cpuacct", "name=systemd", "" for v2) → path.</summary>
public static class CgroupMembership
{
    public static SortedDictionary<string, string> Read(int pid)
    {
        var set = new SortedDictionary<string, string>(StringComparer.Ordinal);
        string text;
        try { text = File.ReadAllText(Procfs.Host.Path(pid, "cgroup")); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new CrispException($"task {pid}: reading its cgroups: {e.Message}"); }
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = line.Split(':', 3);
            if (parts.Length != 3)
                throw new CrispException($"{Procfs.Host.Path(pid, "cgroup")}: unexpected line '{line}'");
            set[parts[1]] = parts[2];
        }
        return set;
    }
}

/// <summary>Where a hierarchy is mounted for crisp: the v1 cgroup mount whose options name all its controllers, or the
/// cgroup2 mount for "" (on this kind of host /sys/fs/cgroup/CTRL and /sys/fs/cgroup/unified).</summary>
public static class CgroupMounts
{
    public static string? Find(IReadOnlyList<MountInfoEntry> mounts, string name)
    {
        if (name.Length == 0)
            return mounts.FirstOrDefault(m => m.FsType == "cgroup2" && m.Root == "/")?.MountPoint;
        var wanted = name.Split(',');
        return mounts.FirstOrDefault(m => m.FsType == "cgroup" && m.Root == "/" && wanted.All(w => m.SuperOptions.Split(',').Contains(w)))?.MountPoint;
    }

    /// <summary>As <see cref="Find"/> among the mounts below <paramref name="yard"/> (--cgroup-yard: the caller
    /// mounted the hierarchies there) when one is given.</summary>
    public static string? Find(IReadOnlyList<MountInfoEntry> mounts, string name, string? yard) =>
        Find(yard is null ? mounts : mounts.Where(m => m.MountPoint.StartsWith(yard.TrimEnd('/') + "/", StringComparison.Ordinal)).ToList(), name);

    /// <summary>Whether hierarchy <paramref name="name"/> is one of <paramref name="controllers"/>
    /// (--cgroup-dump-controller: a controller of it, its name= name with or without the prefix, or "unified").</summary>
    public static bool IsNamed(string name, IReadOnlyCollection<string> controllers) =>
        controllers.Count == 0 || controllers.Any(c => name.Length == 0 ? c is "unified" or "" : name.Split(',').Any(n => n == c || n == "name=" + c));

    /// <summary>The hierarchy's directory for <paramref name="path"/> ("/a/b").</summary>
    public static string Dir(string mount, string path) => path == "/" ? mount : mount + path;
}

/// <summary>Properties crisp carries per controller (CRIU's default list, cgroup-props.c, trimmed to what the kernel
/// still has); a file this kernel lacks is left out at dump. cpuset's come first: a v1 cpuset dir takes no task
/// without them.</summary>
public static class CgroupProperties
{
    private static readonly Dictionary<string, string[]> ByController = new()
    {
        ["cpuset"] = ["cpuset.cpus", "cpuset.mems"],
        ["cpu"] = ["cpu.shares", "cpu.cfs_period_us", "cpu.cfs_quota_us"],
        ["memory"] = ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "memory.soft_limit_in_bytes", "memory.swappiness"],
        ["pids"] = ["pids.max"],
        ["blkio"] = ["blkio.weight"],
        [""] = ["cpuset.cpus", "cpuset.mems", "cpu.max", "cpu.weight", "memory.min", "memory.low", "memory.high", "memory.max", "memory.swap.max", "pids.max"],
    };

    public static IEnumerable<string> Of(string hierarchy, CgroupPropsSpec spec) =>
        hierarchy.Length == 0 ? spec.Apply("unified", ByController[""])
            : hierarchy.Split(',').SelectMany(c => spec.Apply(c, ByController.GetValueOrDefault(c, []))).Distinct();
}
