using Crisp.Dump;
using Crisp.Images.Proto;

namespace Crisp.Resources.Namespaces;

/// <summary>Which namespaces each task is in: CRIU's <c>*_ns_id</c> fields of its ids (kept in core_entry.ids).
/// A namespace of the root task that crisp does not share is the tree's own and is dumped with it when crisp
/// can carry its kind (<see cref="NamespaceContents"/>: pid, uts), else the dump is refused naming it. Every
/// other task must be in the root's namespaces, but for pid namespaces nested below the tree's
/// (<see cref="NestedPidNamespaces"/>): other nested ones (a task that unshared and forked) are refused, as a
/// task that unshared its time namespace for children it has not made yet.</summary>
public sealed class NamespacesDump : IDumpStage
{
    public string Name => "namespaces";

    public void Dump(DumpContext ctx, DumpTask task)
    {
        var numbering = ctx.Namespaces.Ids;
        var ids = task.Leader.Core.Ids;
        numbering.Number(task.Pid, ids);
        NestedPidNamespaces.NumberForChildren(numbering, task);
        RefuseUnsharedForChildren(task, NamespaceKind.Time, "time_for_children");
        var root = ctx.Tasks[0];
        if (task == root)
        {
            DumpRootNamespaces(ctx, task, numbering);
            NestedPidNamespaces.Check(ctx);
        }
        else
            RefuseNested(ctx, task, root);
    }

    /// <summary>inventory.img's root_ids, as CRIU writes them: crisp's own ids (fresh object ids, crisp's
    /// namespaces), so a restore sees which namespaces are the tree's own by comparing the root task's.</summary>
    public static task_kobj_ids_entry InventoryRootIds(DumpContext ctx)
    {
        var own = ctx.Namespaces.Ids.Own?.Clone() ?? new task_kobj_ids_entry();
        own.VmId = ctx.NewId();
        own.FilesId = ctx.NewId();
        own.FsId = ctx.NewId();
        own.SighandId = ctx.NewId();
        return own;
    }

    private static void DumpRootNamespaces(DumpContext ctx, DumpTask root, NamespaceIds numbering)
    {
        var ids = root.Leader.Core.Ids;
        var own = NamespaceKind.All.Where(k => k.IdIn(ids) is { } id && id != k.IdIn(numbering.Own)).ToList();
        var missing = own.Where(k => NamespaceContents.Of(k) is null).ToList();
        if (missing.Count > 0)
            throw new CrispException($"task {root.Pid} (the tree's root) is in {Describe(missing)} of its own: crisp cannot dump " +
                $"{string.Join(", ", missing.Select(k => k.Name))} namespaces yet");
        numbering.RootFlags = own.Aggregate(0UL, (f, k) => f | k.CloneFlag);
        foreach (var kind in own)
            NamespaceContents.Of(kind)!.Dump(ctx, root, kind.IdIn(ids)!.Value);
        if (own.Count > 0)
            ctx.Log.Info($"the tree has namespaces of its own: {NamespaceKind.Names(numbering.RootFlags)}");
    }

    private static void RefuseNested(DumpContext ctx, DumpTask task, DumpTask root)
    {
        // Pid namespaces nested below the tree's are carried (NestedPidNamespaces checked their shape).
        foreach (var kind in NamespaceKind.All.Where(k => k != NamespaceKind.Pid))
            if (kind.IdIn(task.Leader.Core.Ids) != kind.IdIn(root.Leader.Core.Ids))
                throw new CrispException($"task {task.Pid} (pid {task.VirtualPid} in the tree) is in another {kind} namespace than the tree's root " +
                    $"{root.Pid}: nested {kind} namespaces are not supported yet");
    }

    private static void RefuseUnsharedForChildren(DumpTask task, NamespaceKind kind, string forChildren)
    {
        if (kind.InodeOf(task.Pid, forChildren) is { } children && kind.InodeOf(task.Pid) is { } own && children != own)
            throw new CrispException($"task {task.Pid} has unshared its {kind} namespace ({forChildren} differs): " +
                $"nested {kind} namespaces are not supported yet");
    }

    private static string Describe(List<NamespaceKind> kinds)
        => kinds.Count == 1 ? $"a {kinds[0]} namespace" : $"{string.Join(", ", kinds.Select(k => k.Name))} namespaces";
}
