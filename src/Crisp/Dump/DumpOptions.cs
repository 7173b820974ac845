namespace Crisp.Dump;

/// <summary>What the user asked `crisp dump` to do.</summary>
public sealed record DumpOptions
{
    public required int RootPid { get; init; }
    public required string ImagesDir { get; init; }
    /// <summary>Let the tree run on after a successful dump (default: kill it).</summary>
    public bool LeaveRunning { get; init; }
    /// <summary>Allow a session leader / controlling terminal outside the tree.</summary>
    public bool ShellJob { get; init; }
    /// <summary>Seize through this cgroup (v1 freezer or v2): frozen while tasks are attached, and put
    /// back in the freezer state it had afterwards.</summary>
    public string? FreezeCgroup { get; init; }
    /// <summary>Plugin assemblies (--libdir); null: CRISP_LIBS_DIR, else built-in plugins only.</summary>
    public string? LibDir { get; init; }
    /// <summary>Seize time limit.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(10);
}
