using Crisp.Dump;
using Crisp.Resources.Cgroups;
using Crisp.Restore;

namespace Crisp.Resources.Namespaces;

/// <summary>A cgroup namespace of the tree's own. Its root in each hierarchy is where the tree sees "/": found at dump
/// by reading the root task's /proc/PID/cgroup from a crisp thread inside the namespace (paths are shown relative
/// to the reader's) and kept as CRIU does, as cgns_prefix (the root's length) of the set members in cgroup.img.
/// At restore the root puppet goes into those dirs, unshares a cgroup namespace there (before it clones anyone),
/// and only then into its own cgroups. Without --manage-cgroups there is no cgroup.img: the namespace's root is
/// then where crisp is.</summary>
public sealed class CgroupNamespace : INamespaceContent
{
    public NamespaceKind Kind => NamespaceKind.Cgroup;

    public bool MadeByClone => false;

    public void Dump(DumpContext ctx, DumpTask root, uint id)
    {
        var full = CgroupMembership.Read(root.Pid);
        var inside = NamespaceThread.Run(root.Pid, Kind, () => CgroupMembership.Read(root.Pid));
        var prefixes = ctx.Namespaces.CgroupRoots.Prefixes;
        foreach (var (name, path) in full)
        {
            // Inside "/x" for "/a/b/x" outside: the namespace's root is "/a/b".
            string seen = inside.GetValueOrDefault(name) ?? "/";
            string rootPath = seen == "/" ? path : path.EndsWith(seen, StringComparison.Ordinal) ? path[..^seen.Length] : path;
            prefixes[name] = (uint)(rootPath == "/" ? 0 : rootPath.Length);
        }
        ctx.Log.Debug($"cgroup namespace {id}: roots {string.Join(", ", full.Select(m => $"{m.Key}:{m.Value[..(int)prefixes[m.Key]]}"))}");
    }

    public void Prepare(RestoreContext ctx, uint id) { }

    public void Enter(RestoreContext ctx, RestoreTask root, uint id)
    {
        CgroupsRestore.EnterNamespaceRoots(ctx, root);
        root.Call("unshare(CLONE_NEWCGROUP)", Linux.Sysno.unshare, (long)Linux.Clone3.CLONE_NEWCGROUP);
    }

    public void Restore(RestoreContext ctx, RestoreTask root, uint id) { }
}

/// <summary>Dump: the tree's cgroup namespace root per hierarchy, as a length of the root task's path (cgns_prefix).</summary>
public sealed class CgroupNamespaceRoots
{
    public Dictionary<string, uint> Prefixes { get; } = [];
}
