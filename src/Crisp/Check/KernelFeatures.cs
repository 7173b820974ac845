namespace Crisp.Check;

/// <summary>Every kernel feature crisp relies on, in the order <c>crisp check</c> reports them.</summary>
public static class KernelFeatures
{
    public static IReadOnlyList<IFeatureProbe> All { get; } =
    [
        new PtraceSeizeProbe(),
        new SuspendSeccompProbe(),
        new SeccompGetFilterProbe(),
        new SeccompGetMetadataProbe(),
        new RseqConfigurationProbe(),
        new Clone3SetTidProbe(),
        new PidFdProbe(),
        new ProcessVmReadvProbe(),
        new MapFilesProbe(),
        new MmMapProbe(),
        new TimerfdProbe(),
        new SoftDirtyProbe(),
        new PagemapScanProbe(),
        new FreezerV1Probe(),
        new FreezerV2Probe(),
    ];

    /// <summary>A probe by CRIU's feature name or crisp's own name (case-insensitive); null if unknown.</summary>
    public static IFeatureProbe? Find(string name) => All.FirstOrDefault(p =>
        string.Equals(p.CriuFeature, name, StringComparison.OrdinalIgnoreCase)
        || string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase)
        || (p is PidFdProbe && string.Equals(name, "pidfd_getfd", StringComparison.OrdinalIgnoreCase)));

    /// <summary>Names <c>--feature</c> accepts.</summary>
    public static IEnumerable<string> Names => All.SelectMany(p => p.CriuFeature is { } c && c != p.Name ? [c, p.Name] : new[] { p.Name });
}
