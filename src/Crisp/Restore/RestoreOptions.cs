namespace Crisp.Restore;

/// <summary>What the user asked `crisp restore` to do.</summary>
public sealed record RestoreOptions
{
    public required string ImagesDir { get; init; }
    /// <summary>Return once the tree runs instead of waiting for the root to exit (-d).</summary>
    public bool Detached { get; init; }
    public string? PidFile { get; init; }
    public bool ShellJob { get; init; }
    /// <summary>Plugin assemblies (--libdir); null: CRISP_LIBS_DIR, else built-in plugins only.</summary>
    public string? LibDir { get; init; }
}
