namespace Crisp.Check;

/// <summary>One kernel feature crisp relies on, and how to find out whether this kernel has it.</summary>
public interface IFeatureProbe
{
    /// <summary>crisp's name for the feature (accepted by <c>--feature</c> too).</summary>
    string Name { get; }

    /// <summary>CRIU's <c>check --feature</c> name, where CRIU has one.</summary>
    string? CriuFeature { get; }

    /// <summary>False for features crisp can work without (shown, but not a reason to fail).</summary>
    bool Required { get; }

    /// <summary>Runs the probe. Must leave no child process, tracee or temp cgroup behind.</summary>
    ProbeResult Probe();
}

/// <summary>What a probe found: supported or not, and one line saying why.</summary>
public sealed record ProbeResult(bool Ok, string Detail)
{
    public static ProbeResult Supported(string detail) => new(true, detail);
    public static ProbeResult Missing(string detail) => new(false, detail);
}
