namespace Crisp.Resources.Mounts;

/// <summary>Which mount a path of a mount table reaches, as the kernel's path walk does: from "/" down each
/// component, onto the topmost mount stacked at it. A mount that its own mount point does not reach is
/// overmounted (hidden): something mounted later over it, over its mount point, or over a directory above it.</summary>
public static class MountCover
{
    /// <summary>A mount as the walk needs it: its id, its parent's id and its mount point.</summary>
    public readonly record struct Node(uint Id, uint Parent, string MountPoint);

    /// <summary>The mounts the walk to <paramref name="path"/> passes, the one it ends on last; empty when the
    /// table has no mount at "/".</summary>
    public static List<Node> Walk(IReadOnlyList<Node> nodes, string path)
    {
        var chain = new List<Node>();
        var children = nodes.ToLookup(n => n.Parent);
        // The root: the mount at "/" whose parent is not a mount of the table, then anything stacked on it.
        var ids = nodes.Select(n => n.Id).ToHashSet();
        if (nodes.FirstOrDefault(n => n.MountPoint == "/" && !ids.Contains(n.Parent)) is not { MountPoint: not null } root)
            return chain;
        var cur = root;
        chain.Add(cur);
        string prefix = "";
        foreach (string part in path.Split('/', StringSplitOptions.RemoveEmptyEntries).Prepend(""))
        {
            prefix = part.Length == 0 ? "/" : (prefix == "/" ? "/" : prefix + "/") + part;
            // The last of several mounted on the same place is the one on top (the table lists them in order).
            while (children[cur.Id].LastOrDefault(c => c.MountPoint == prefix && c.Id != cur.Id) is { MountPoint: not null } on)
            {
                cur = on;
                chain.Add(cur);
            }
        }
        return chain;
    }

    /// <summary>Whether <paramref name="id"/>'s own mount point reaches another mount (it is covered).</summary>
    public static bool IsHidden(IReadOnlyList<Node> nodes, uint id) =>
        nodes.FirstOrDefault(n => n.Id == id) is { MountPoint: not null } m && Walk(nodes, m.MountPoint) is { Count: > 0 } chain && chain[^1].Id != id;

    /// <summary>The mounts that cover <paramref name="id"/>: those the walk to its mount point passes that are
    /// not among its parents (empty for a mount that is not hidden).</summary>
    public static List<Node> Covers(IReadOnlyList<Node> nodes, uint id)
    {
        var byId = nodes.ToDictionary(n => n.Id);
        if (!byId.TryGetValue(id, out var m))
            return [];
        var ancestors = new HashSet<uint>();
        for (uint p = id; byId.TryGetValue(p, out var n) && ancestors.Add(p); p = n.Parent) { }
        return Walk(nodes, m.MountPoint).Where(n => !ancestors.Contains(n.Id)).ToList();
    }

    /// <summary>Whether mount point <paramref name="over"/> lies on or above <paramref name="path"/>: a mount
    /// made there afterwards would hide what is at <paramref name="path"/>.</summary>
    public static bool IsOnOrAbove(string over, string path) =>
        over == path || over == "/" || path.StartsWith(over + "/", StringComparison.Ordinal);
}
