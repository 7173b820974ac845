namespace Crisp.Resources.Namespaces;

/// <summary>Dump-wide namespace state: the dump's namespace numbering, the cgroup namespace's roots and the
/// network namespaces crisp holds open for sock_diag queries (closed with the dump's context).</summary>
public sealed class NamespacesDumpState : IDisposable
{
    public NamespaceIds Ids { get; } = new();
    public CgroupNamespaceRoots CgroupRoots { get; } = new();
    public NetNamespace.HeldNamespaces Net { get; } = new();

    public void Dispose() => Net.Dispose();
}

/// <summary>Restore-wide namespace state: the kinds the tree has of its own, what each kind read at Prepare
/// and what it holds until the root is in its namespaces.</summary>
public sealed class NamespacesRestoreState : IDisposable
{
    public NamespacesRestore.Flags Own { get; } = new();
    public UtsNamespace.Names Uts { get; } = new();
    public TimeNamespace.Clocks Time { get; } = new();
    public NetNamespace.Held Net { get; } = new();
    public Mounts.MountNamespace.State Mounts { get; } = new();

    public void Dispose() => Net.Dispose();
}
