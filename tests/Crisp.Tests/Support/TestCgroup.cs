using Crisp.Linux.Proc;

namespace Crisp.Tests.Support;

/// <summary>A memory and/or pids cgroup made for one test below the test process's own cgroups (v1: one directory
/// per controller's hierarchy, memsw limited with memory so swap cannot hide an overrun; v2: one directory in the
/// unified tree), in which the crisp CLI is run as a runtime such as runc would run it. Dispose kills nothing: the
/// test ends its processes first; whatever is still listed is moved back up, then the directories are removed.</summary>
internal sealed class TestCgroup : IDisposable
{
    private readonly List<(string Dir, string Parent)> _dirs = [];

    public TestCgroup(long? memoryBytes, int? pidsMax)
    {
        string name = $"crisp-test-{Guid.NewGuid():N}"[..24];
        try
        {
            if (memoryBytes is { } mem)
            {
                var (dir, v2) = Make("memory", name);
                if (v2)
                {
                    Write(dir, "memory.max", mem.ToString());
                    if (File.Exists(Path.Combine(dir, "memory.swap.max")))
                        Write(dir, "memory.swap.max", "0");
                }
                else
                {
                    Write(dir, "memory.limit_in_bytes", mem.ToString());
                    if (File.Exists(Path.Combine(dir, "memory.memsw.limit_in_bytes")))
                        Write(dir, "memory.memsw.limit_in_bytes", mem.ToString());
                }
            }
            if (pidsMax is { } pids)
                Write(Make("pids", name).Dir, "pids.max", pids.ToString());
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>The cgroup's directories (one per v1 hierarchy, or the v2 one).</summary>
    public IEnumerable<string> Dirs => _dirs.Select(d => d.Dir).Distinct();

    /// <summary>The peak memory charged to the cgroup, when the kernel keeps one (v1 max_usage, v2 memory.peak).</summary>
    public long? PeakBytes => Dirs.Select(d => ReadLong(d, "memory.max_usage_in_bytes") ?? ReadLong(d, "memory.peak")).FirstOrDefault(v => v is not null);

    /// <summary>Runs the crisp CLI inside the cgroup: a shell joins it, then execs crisp.</summary>
    public CrispCli.Result RunCrisp(TimeSpan timeout, params string[] args)
    {
        string join = string.Concat(Dirs.Select(d => $"echo $$ > '{Path.Combine(d, "cgroup.procs")}' && "));
        return CrispCli.RunProcess("/bin/sh", timeout, null,
            ["-c", join + "exec \"$@\"", "sh", "dotnet", Path.Combine(AppContext.BaseDirectory, "crisp.dll"), .. args]);
    }

    /// <summary>PIDs still in the cgroup.</summary>
    public List<int> Procs() =>
        Dirs.SelectMany(d => File.ReadAllLines(Path.Combine(d, "cgroup.procs"))).Where(l => l.Length > 0).Select(int.Parse).Distinct().ToList();

    public void Dispose()
    {
        foreach (var (dir, parent) in Enumerable.Reverse(_dirs))
        {
            if (!Directory.Exists(dir))
                continue;
            var deadline = DateTime.UtcNow.AddSeconds(15);
            while (true)
            {
                foreach (var pid in File.ReadAllLines(Path.Combine(dir, "cgroup.procs")).Where(l => l.Length > 0))
                {
                    try { File.WriteAllText(Path.Combine(parent, "cgroup.procs"), pid); }
                    catch (IOException) { }   // gone meanwhile, or a zombie init has not reaped yet
                }
                try
                {
                    Directory.Delete(dir);
                    break;
                }
                catch (IOException) when (DateTime.UtcNow < deadline)
                {
                    Thread.Sleep(50);
                }
            }
        }
    }

    /// <summary>Makes the child cgroup for <paramref name="controller"/> below this process's own one.</summary>
    private (string Dir, bool V2) Make(string controller, string name)
    {
        var mounts = MountInfo.Read(0);
        foreach (var line in File.ReadAllLines("/proc/self/cgroup"))
        {
            var parts = line.Split(':', 3);
            bool v2 = parts[0] == "0" && parts[1] == "";
            if (!v2 && !parts[1].Split(',').Contains(controller))
                continue;
            var mount = mounts.FirstOrDefault(m => v2 ? m.FsType == "cgroup2" : m.FsType == "cgroup" && m.SuperOptions.Split(',').Contains(controller));
            if (mount is null)
                continue;
            string own = mount.Root == "/" ? parts[2] : parts[2][Math.Min(parts[2].Length, mount.Root.Length)..];
            string parent = mount.MountPoint + own.TrimEnd('/');
            if (v2 && !File.ReadAllText(Path.Combine(parent, "cgroup.controllers")).Split(' ', '\n').Contains(controller))
                continue;
            string dir = Path.Combine(parent, name);
            if (_dirs.Any(d => d.Dir == dir))
                return (dir, v2);
            if (v2)
                Write(parent, "cgroup.subtree_control", "+" + controller);
            Directory.CreateDirectory(dir);
            _dirs.Add((dir, parent));
            return (dir, v2);
        }
        throw new InvalidOperationException($"no {controller} cgroup controller for this process (v1 or v2)");
    }

    private static void Write(string dir, string file, string value) => File.WriteAllText(Path.Combine(dir, file), value);

    private static long? ReadLong(string dir, string file) =>
        File.Exists(Path.Combine(dir, file)) && long.TryParse(File.ReadAllText(Path.Combine(dir, file)).Trim(), out long v) ? v : null;
}
