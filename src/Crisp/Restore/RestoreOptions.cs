namespace Crisp.Restore;

/// <summary>What the user asked `crisp restore` to do.</summary>
public sealed record RestoreOptions
{
    public required string ImagesDir { get; init; }
    /// <summary>Return once the tree runs instead of waiting for the root to exit (-d).</summary>
    public bool Detached { get; init; }
    public string? PidFile { get; init; }
    public bool ShellJob { get; init; }
    /// <summary>Use images without checking them against crisp-manifest.sha256 (images made by CRIU or other tools).</summary>
    public bool SkipImageVerify { get; init; }
}
