using Crisp.Images.Proto;

namespace Crisp.Resources.Mounts;

/// <summary>How one mount of the tree is made again.</summary>
public enum MountOrigin
{
    /// <summary>The namespace's "/": --root, bound onto itself.</summary>
    Root,
    /// <summary>A new instance of its file system (proc, sysfs, devpts, mqueue, cgroup; tmpfs then filled).</summary>
    Fresh,
    /// <summary>A bind of a path inside a mount made before it (same superblock, its root below that one's).</summary>
    Bind,
    /// <summary>Provided by the caller: --external mnt[KEY]:PATH at restore binds PATH.</summary>
    External,
}

/// <summary>One mount in the order it is made: how, from which mount (a bind: <see cref="From"/> with the
/// path below that mount's root), and whether the restored root makes it once it is in the tree's pid, ipc and
/// net namespaces (<see cref="Late"/>: proc, sysfs, mqueue, cgroup and anything on or from them).</summary>
public sealed record PlannedMount(mnt_entry Entry, MountOrigin Origin, PlannedMount? From, string SubPath, bool Late)
{
    public string Path => Entry.Mountpoint;
    public string Describe => $"mount {Entry.MntId} ({Entry.Mountpoint}, type {FsName})";
    public string FsName => Entry.HasFsname && Entry.Fsname.Length > 0 ? Entry.Fsname : MountFsTypes.Name(Entry.Fstype);
    /// <summary>Made a slave of <see cref="From"/>'s peer group.</summary>
    public bool Slave => Entry.MasterId != 0;
    /// <summary>An external mount that was a peer of the host mount it is bound from (shared, no master, not
    /// internal_sharing): kept private while the tree is made, then put in that mount's peer group again.</summary>
    public bool JoinsHostGroup => Origin == MountOrigin.External && Entry.SharedId != 0 && Entry.MasterId == 0 && !Entry.InternalSharing;
}

/// <summary>The mount tree of a namespace as an ordered list of mounts to make: parents before children, a bind
/// after the mount it binds from, a peer of a shared group bound from an earlier peer, a slave bound from its
/// master's group. The same plan is checked at dump (so what cannot be restored is refused while the tree still
/// runs) and followed at restore. Refused, one line each: a mount neither in the tree nor external, a slave of a
/// group outside the tree, a mount beneath a shared mount whose peers or slaves are in the tree (its propagated
/// copies would be made twice), a tree without exactly one "/".</summary>
public sealed class MountPlan
{
    public IReadOnlyList<PlannedMount> Mounts { get; }
    public PlannedMount Root => Mounts[0];

    private MountPlan(List<PlannedMount> mounts) => Mounts = mounts;

    public static MountPlan Of(IReadOnlyList<mnt_entry> entries, string where)
    {
        var roots = entries.Where(e => e.Mountpoint == "/").ToList();
        if (roots.Count != 1)
            throw new CrispException($"{where}: {(roots.Count == 0 ? "no mount at /" : $"{roots.Count} mounts at / (an overmounted root)")}: crisp restores a tree with exactly one root mount");
        var byParent = entries.Where(e => e != roots[0]).ToLookup(e => e.ParentMntId);
        var ordered = new List<mnt_entry>();
        void Walk(mnt_entry e)
        {
            ordered.Add(e);
            foreach (var child in CoveredFirst(byParent[e.MntId].ToList()))
                Walk(child);
        }
        Walk(roots[0]);
        if (entries.Except(ordered).FirstOrDefault() is { } lost)
            throw new CrispException($"{where}: mount {lost.MntId} ({lost.Mountpoint}) hangs from mount {lost.ParentMntId}, which is not in the tree");

        // In the table's order (crisp's: mountinfo, oldest first), except that a mount whose bind source is not made
        // yet waits until it is (CRIU's image lists mounts newest first); what never finds one is refused.
        var made = new List<PlannedMount>();
        var byId = new Dictionary<uint, PlannedMount>();
        var pending = new List<mnt_entry>(ordered);
        while (pending.Count > 0)
        {
            bool progress = false;
            for (int i = 0; i < pending.Count; i++)
            {
                var e = pending[i];
                PlannedMount? parent = null;
                if (e != roots[0] && !byId.TryGetValue(e.ParentMntId, out parent))
                    continue;
                if (parent is not null && parent.Entry.SharedId != 0
                    && entries.Any(o => o != parent.Entry && (o.SharedId == parent.Entry.SharedId || o.MasterId == parent.Entry.SharedId)))
                    throw new CrispException($"{where}: mount {e.MntId} ({e.Mountpoint}) is beneath shared mount {parent.Entry.MntId} ({parent.Path}), " +
                        "which has peers or slaves in the tree: crisp cannot restore mounts that propagate inside the tree");
                PlannedMount planned;
                try { planned = PlanOne(e, parent, made, where); }
                catch (CrispException) { continue; }
                made.Add(planned);
                byId[e.MntId] = planned;
                pending.RemoveAt(i--);
                progress = true;
            }
            if (!progress)
            {
                var stuck = pending.First(e => byId.ContainsKey(e.ParentMntId));
                PlanOne(stuck, byId[stuck.ParentMntId], made, where);   // throws its reason
                throw new CrispException($"{where}: {Describe(stuck)} cannot be planned");
            }
        }
        var plan = new MountPlan(made);
        plan.CheckOvermounts(where);
        return plan;
    }

    private HashSet<uint>? _hidden;
    private List<MountCover.Node> Nodes => Mounts.Select(m => new MountCover.Node(m.Entry.MntId, m.Entry.ParentMntId, m.Path)).ToList();

    /// <summary>Mounts another mount of the tree covers (over them, over their mount point or above it).</summary>
    public bool IsHidden(PlannedMount m) => (_hidden ??= Mounts.Where(p => MountCover.IsHidden(Nodes, p.Entry.MntId)).Select(p => p.Entry.MntId).ToHashSet()).Contains(m.Entry.MntId);

    /// <summary>Whether mount <paramref name="mntId"/> is one of the tree's and hidden.</summary>
    public bool IsHidden(uint mntId) => Mounts.FirstOrDefault(m => m.Entry.MntId == mntId) is { } m && IsHidden(m);

    /// <summary>Mounts are made by path, so a hidden mount must be made before what covers it: refused, one line,
    /// when a hidden mount is one the restored root makes late (proc, sysfs, mqueue, cgroup or below them) while
    /// what covers it is made early, and a hidden unbindable mount (made unbindable by path at the end).</summary>
    private void CheckOvermounts(string where)
    {
        var nodes = Nodes;
        var byId = Mounts.ToDictionary(m => m.Entry.MntId);
        foreach (var m in Mounts.Where(IsHidden))
        {
            var covers = MountCover.Covers(nodes, m.Entry.MntId).Select(n => byId[n.Id]).ToList();
            if (m.Late && covers.FirstOrDefault(c => !c.Late) is { } early)
                throw new CrispException($"{where}: {m.Describe} is covered by {early.Describe}, which is made before it: crisp cannot restore this overmount");
            if ((m.Entry.Flags & MountFlags.MS_UNBINDABLE) != 0)
                throw new CrispException($"{where}: {m.Describe} is unbindable and covered by {covers[0].Describe}: not supported");
            if (m.JoinsHostGroup)
                throw new CrispException($"{where}: {m.Describe} is shared with a host mount and covered by {covers[0].Describe}: crisp cannot put it back in its peer group");
        }
    }

    /// <summary>Children of one mount in the order they are made: as the table lists them, except that one mounted
    /// on or above another's mount point (an overmount) comes after it, as it must have been mounted after it.</summary>
    private static List<mnt_entry> CoveredFirst(List<mnt_entry> children)
    {
        for (int pass = 0; pass < children.Count * children.Count; pass++)
        {
            int moved = -1;
            for (int i = 0; i < children.Count && moved < 0; i++)
            {
                int last = children.FindLastIndex(c => c != children[i] && c.Mountpoint != children[i].Mountpoint
                    && MountCover.IsOnOrAbove(children[i].Mountpoint, c.Mountpoint));
                if (last > i)
                    moved = i;
                if (moved >= 0)
                {
                    var c = children[i];
                    children.RemoveAt(i);
                    children.Insert(last, c);
                }
            }
            if (moved < 0)
                break;
        }
        return children;
    }

    private static PlannedMount PlanOne(mnt_entry e, PlannedMount? parent, List<PlannedMount> made, string where)
    {
        if (parent is null)
            return new PlannedMount(e, MountOrigin.Root, null, "", false);
        bool parentLate = parent.Late;
        if (e.HasExtKey && e.ExtKey.Length > 0)
            return new PlannedMount(e, MountOrigin.External, null, "", parentLate);
        PlannedMount? from;
        if (e.SharedId != 0 && (from = Below(made, e, p => p.Entry.SharedId == e.SharedId)) is not null)
            return Bound(e, from, parentLate);
        if (e.MasterId != 0)
        {
            from = Below(made, e, p => p.Entry.SharedId == e.MasterId)
                ?? throw new CrispException($"{where}: {Describe(e)} is a slave of peer group {e.MasterId}, which is outside the tree: not supported");
            return Bound(e, from, parentLate);
        }
        // An external mount of the same superblock (runc's masked paths: binds of /dev's /null) does not make
        // this one a bind: the caller provides it from outside.
        if (MountFsTypes.IsFresh(e.Fstype) && e.Root == "/" && !made.Any(p => p.Entry.RootDev == e.RootDev && p.Origin != MountOrigin.External))
            return new PlannedMount(e, MountOrigin.Fresh, null, "", parentLate || MountFsTypes.NeedsTreeNamespaces(e.Fstype));
        from = Below(made, e, _ => true)
            ?? throw new CrispException($"{where}: {Describe(e)} is neither in the tree nor external " +
                $"(root {e.Root} of a file system the tree does not mount; --external mnt[{e.Mountpoint}]:KEY marks it as provided)");
        return Bound(e, from, parentLate);
    }

    private static PlannedMount Bound(mnt_entry e, PlannedMount from, bool parentLate)
    {
        string sub = from.Entry.Root == "/" ? (e.Root == "/" ? "" : e.Root) : e.Root[from.Entry.Root.Length..];
        return new PlannedMount(e, MountOrigin.Bind, from, sub, parentLate || from.Late);
    }

    /// <summary>An earlier mount of the same superblock whose root holds <paramref name="e"/>'s root; the tree's
    /// own mounts before external ones, the widest root first.</summary>
    private static PlannedMount? Below(List<PlannedMount> made, mnt_entry e, Func<PlannedMount, bool> also) =>
        made.Where(p => p.Entry.RootDev == e.RootDev && Holds(p.Entry.Root, e.Root) && also(p))
            .OrderBy(p => p.Origin == MountOrigin.External ? 1 : 0).ThenBy(p => p.Entry.Root.Length).FirstOrDefault();

    private static bool Holds(string root, string path) =>
        root == "/" || path == root || path.StartsWith(root + "/", StringComparison.Ordinal);

    public static string Describe(mnt_entry e) =>
        $"mount {e.MntId} ({e.Mountpoint}, type {(e.HasFsname && e.Fsname.Length > 0 ? e.Fsname : MountFsTypes.Name(e.Fstype))})";
}
