namespace Crisp.Check;

/// <summary>Creates a temp cgroup, moves a probe child in, freezes and thaws it; always removes the cgroup.</summary>
public abstract class FreezerProbe : IFeatureProbe
{
    public abstract string Name { get; }
    public string? CriuFeature => null;

    /// <summary>crisp seizes with ptrace by default; a freezer is only needed for --freeze-cgroup.</summary>
    public bool Required => false;

    /// <summary>Directory of the cgroup crisp runs in on this hierarchy; null when it is not mounted.</summary>
    protected abstract string? OwnCgroupDir();

    protected abstract void Freeze(string cgroup, bool frozen);

    protected abstract bool IsFrozen(string cgroup);

    public ProbeResult Probe()
    {
        string? parent = OwnCgroupDir();
        if (parent == null || !Directory.Exists(parent))
            return ProbeResult.Missing("hierarchy not mounted");
        string cgroup = Path.Combine(parent, $"crisp-check-{Environment.ProcessId}-{Name}");
        Directory.CreateDirectory(cgroup);
        try
        {
            using var child = ProbeChild.StartPuppet();
            try
            {
                File.WriteAllText(Path.Combine(cgroup, "cgroup.procs"), child.Pid.ToString());
                Freeze(cgroup, true);
                if (!WaitUntil(() => IsFrozen(cgroup)))
                    return ProbeResult.Missing("the cgroup did not report frozen");
                Freeze(cgroup, false);
                if (!WaitUntil(() => !IsFrozen(cgroup)))
                    return ProbeResult.Missing("the cgroup did not thaw");
                return ProbeResult.Supported($"froze and thawed a child in {cgroup}");
            }
            finally
            {
                // Frozen tasks do not die until thawed (v1).
                try { Freeze(cgroup, false); } catch (IOException) { }
            }
        }
        finally
        {
            RemoveCgroup(cgroup);
        }
    }

    /// <summary>rmdir; the reaped child may take a moment to leave the cgroup.</summary>
    private static void RemoveCgroup(string cgroup)
    {
        for (int i = 0; ; i++)
        {
            try
            {
                Directory.Delete(cgroup);
                return;
            }
            catch (IOException) when (i < 200)
            {
                Thread.Sleep(5);
            }
        }
    }

    private static bool WaitUntil(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(3);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
                return false;
            Thread.Sleep(1);
        }
        return true;
    }

    /// <summary>Our path on the hierarchy whose /proc/self/cgroup line matches.</summary>
    protected static string? OwnPath(Func<string, bool> hierarchy)
    {
        foreach (var line in File.ReadLines("/proc/self/cgroup"))
        {
            var parts = line.Split(':', 3);
            if (parts.Length == 3 && hierarchy(parts[0] == "0" ? "" : parts[1]))
                return parts[2].TrimStart('/');
        }
        return null;
    }
}

/// <summary>cgroup v1 freezer: freezer.state FROZEN/THAWED.</summary>
public sealed class FreezerV1Probe : FreezerProbe
{
    private const string Root = "/sys/fs/cgroup/freezer";

    public override string Name => "freezer_v1";

    protected override string? OwnCgroupDir()
    {
        if (!File.Exists(Path.Combine(Root, "tasks")))
            return null;
        string? own = OwnPath(controllers => controllers.Split(',').Contains("freezer"));
        return own == null ? null : Path.Combine(Root, own);
    }

    protected override void Freeze(string cgroup, bool frozen)
        => File.WriteAllText(Path.Combine(cgroup, "freezer.state"), frozen ? "FROZEN" : "THAWED");

    protected override bool IsFrozen(string cgroup)
        => File.ReadAllText(Path.Combine(cgroup, "freezer.state")).Trim() == "FROZEN";
}

/// <summary>cgroup v2 cgroup.freeze, on /sys/fs/cgroup/unified (hybrid) or /sys/fs/cgroup (unified).</summary>
public sealed class FreezerV2Probe : FreezerProbe
{
    public override string Name => "freezer_v2";

    protected override string? OwnCgroupDir()
    {
        string? root = new[] { "/sys/fs/cgroup/unified", "/sys/fs/cgroup" }
            .FirstOrDefault(d => File.Exists(Path.Combine(d, "cgroup.controllers")));
        if (root == null)
            return null;
        string? own = OwnPath(controllers => controllers == "");
        return own == null ? null : Path.Combine(root, own);
    }

    protected override void Freeze(string cgroup, bool frozen)
        => File.WriteAllText(Path.Combine(cgroup, "cgroup.freeze"), frozen ? "1" : "0");

    protected override bool IsFrozen(string cgroup)
        => File.ReadLines(Path.Combine(cgroup, "cgroup.events")).Contains("frozen 1");
}
