using System.Diagnostics;

namespace Crisp.Compel.Freezer;

public enum FreezerKind { V1, V2 }

/// <summary>One cgroup that crisp freezes to seize its tasks without racing forks: cgroup v1's freezer
/// controller (freezer.state) or cgroup v2's cgroup.freeze. It remembers the state it found, so a
/// dump can put it back — a container runtime usually freezes the cgroup before calling us.</summary>
public sealed class CgroupFreezer
{
    private static readonly string[] Roots = ["/sys/fs/cgroup/freezer", "/sys/fs/cgroup/unified", "/sys/fs/cgroup"];

    private CgroupFreezer(string path, FreezerKind kind)
    {
        Path = path;
        Kind = kind;
        WasFrozen = IsFrozen();
    }

    public string Path { get; }
    public FreezerKind Kind { get; }

    /// <summary>Whether the cgroup was frozen when crisp opened it.</summary>
    public bool WasFrozen { get; }

    /// <summary>Opens a cgroup by absolute path, or by a path relative to the v1 freezer or v2 mount.</summary>
    public static CgroupFreezer Open(string path)
    {
        var candidates = System.IO.Path.IsPathRooted(path) ? [path] : Roots.Select(r => System.IO.Path.Combine(r, path));
        foreach (var dir in candidates)
        {
            if (File.Exists(System.IO.Path.Combine(dir, "freezer.state")))
                return new CgroupFreezer(dir, FreezerKind.V1);
            if (File.Exists(System.IO.Path.Combine(dir, "cgroup.freeze")))
                return new CgroupFreezer(dir, FreezerKind.V2);
        }
        throw new CrispException($"--freeze-cgroup {path}: not a v1 freezer or v2 cgroup (no freezer.state or cgroup.freeze there)");
    }

    public bool IsFrozen() => Kind == FreezerKind.V1
        ? Read("freezer.state") == "FROZEN"
        : Read("cgroup.events").Split('\n').Any(l => l.Trim() == "frozen 1");

    /// <summary>Freezes and waits until every task is frozen.</summary>
    public void Freeze(TimeSpan timeout)
    {
        RequestFreeze();
        WaitFrozen(timeout);
    }

    /// <summary>Asks the kernel to freeze the cgroup, without waiting.</summary>
    public void RequestFreeze() => Write(Kind == FreezerKind.V1 ? "freezer.state" : "cgroup.freeze", Kind == FreezerKind.V1 ? "FROZEN" : "1");

    public void WaitFrozen(TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (!IsFrozen())
        {
            if (clock.Elapsed > timeout)
                throw new CrispException($"cgroup {Path} did not freeze within {timeout.TotalSeconds:F0} s");
            Thread.Sleep(1);
        }
    }

    /// <summary>Asks the cgroup to thaw (does not wait: thawing is immediate for the kernel's purposes).</summary>
    public void Thaw() => Write(Kind == FreezerKind.V1 ? "freezer.state" : "cgroup.freeze", Kind == FreezerKind.V1 ? "THAWED" : "0");

    /// <summary>Thaws and waits until the kernel reports the cgroup thawed (v2 thaws asynchronously): for
    /// seizing by ptrace interrupt only, where tasks must run (a plugin pauses their devices first).</summary>
    public void ThawAndWait(TimeSpan timeout)
    {
        Thaw();
        var clock = Stopwatch.StartNew();
        while (Kind == FreezerKind.V1 ? Read("freezer.state") != "THAWED" : IsFrozen())
        {
            if (clock.Elapsed > timeout)
                throw new CrispException($"cgroup {Path} did not thaw within {timeout.TotalSeconds:F0} s");
            Thread.Sleep(1);
        }
    }

    /// <summary>Puts the cgroup back in the freezer state crisp found it in.</summary>
    public void RestoreOriginalState(TimeSpan timeout)
    {
        if (WasFrozen)
            Freeze(timeout);
        else
            Thaw();
    }

    /// <summary>Every process in the cgroup and the cgroups below it.</summary>
    public IReadOnlyList<int> Processes()
    {
        var pids = new SortedSet<int>();
        foreach (var dir in Directory.EnumerateDirectories(Path, "*", SearchOption.AllDirectories).Prepend(Path))
        {
            string procs = System.IO.Path.Combine(dir, "cgroup.procs");
            if (!File.Exists(procs))
                continue;
            foreach (var line in File.ReadAllLines(procs))
                if (int.TryParse(line, out int pid))
                    pids.Add(pid);
        }
        return pids.ToList();
    }

    private string Read(string file) => File.ReadAllText(System.IO.Path.Combine(Path, file)).Trim();

    private void Write(string file, string value)
    {
        try
        {
            File.WriteAllText(System.IO.Path.Combine(Path, file), value);
        }
        catch (IOException e)
        {
            throw new CrispException($"cgroup {Path}: writing {value} to {file}: {e.Message}");
        }
    }
}
