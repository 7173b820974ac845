using Crisp.Check;

namespace Crisp.Resources.Memory;

/// <summary>How pre-dump --track-mem finds the pages written since: userfaultfd async write-protection read with
/// PAGEMAP_SCAN (Linux 6.7+), or, where that is missing and the kernel has CONFIG_MEM_SOFT_DIRTY, soft-dirty
/// bits (clear_refs 4, pagemap bit 55: what CRIU uses).</summary>
public enum DirtyTrackingMethod
{
    None,
    WriteProtect,
    SoftDirty,
}

/// <summary>Which <see cref="DirtyTrackingMethod"/> this kernel gives, probed once per crisp process (the soft-dirty
/// probe, which starts a child, only when write-protection is missing).</summary>
public static class DirtyTracking
{
    private static readonly Lazy<DirtyTrackingMethod> Detected = new(() =>
        Choose(MemDirtyTrackProbe.WriteProtectScan().Ok, () => FeatureCheck.Run(new SoftDirtyProbe()).Result.Ok));

    public static DirtyTrackingMethod Current => Detected.Value;

    /// <summary>Write-protection when it works (nothing to clear each time, no bits shared with other users of
    /// clear_refs), else soft-dirty when it works, else none.</summary>
    public static DirtyTrackingMethod Choose(bool writeProtect, Func<bool> softDirty) =>
        writeProtect ? DirtyTrackingMethod.WriteProtect : softDirty() ? DirtyTrackingMethod.SoftDirty : DirtyTrackingMethod.None;

    public static string Describe(DirtyTrackingMethod m) => m switch
    {
        DirtyTrackingMethod.WriteProtect => "userfaultfd async write-protect + PAGEMAP_SCAN",
        DirtyTrackingMethod.SoftDirty => "soft-dirty bits (clear_refs 4, pagemap bit 55)",
        _ => "none",
    };
}
