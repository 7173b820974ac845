using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Restore;
using Google.Protobuf;

namespace Crisp.Resources.Namespaces;

/// <summary>The tree's own namespaces: those where the root task's id differs from inventory.img's root_ids
/// (crisp's own at dump, as CRIU compares them). Before anything is created every task's ids are checked: a
/// kind crisp cannot restore yet, one it does not know at all, or a task in other namespaces than the root's is
/// refused in one line. The root puppet is then cloned with their CLONE_NEW* flags (<see cref="RootCloneFlags"/>,
/// read by PuppetTreeBuilder) and each namespace is filled inside it (hostname…).</summary>
public sealed class NamespacesRestore : IRestoreStage
{
    public string Name => "namespaces";

    public void Prepare(RestoreContext ctx)
    {
        ulong flags = Check(ctx.Inventory, ctx.Tasks) | Joined(ctx.Options);
        foreach (var kind in Kinds(flags))
            NamespaceContents.Of(kind)!.Prepare(ctx, kind.IdIn(ctx.Root.Ids) ?? 0);
        ctx.Namespaces.Own.OwnFlags = flags;
        ctx.Namespaces.Own.CloneFlags = Kinds(flags).Where(k => NamespaceContents.Of(k)!.MadeByClone).Aggregate(0UL, (f, k) => f | k.CloneFlag);
        if (flags != 0)
            ctx.Log.Info($"the root gets namespaces of its own: {NamespaceKind.Names(flags)}");
    }

    public void Restore(RestoreContext ctx, RestoreTask task)
    {
        if (task != ctx.Root)
            return;
        foreach (var kind in Kinds(ctx.Namespaces.Own.OwnFlags))
            NamespaceContents.Of(kind)!.Restore(ctx, task, kind.IdIn(task.Ids) ?? 0);
    }

    public void Cleanup(RestoreContext ctx)
    {
        foreach (var content in NamespaceContents.All)
            content.Cleanup(ctx);
    }

    /// <summary>--join-ns kinds: entered by the root even when the tree shared crisp's namespace at dump.</summary>
    private static ulong Joined(RestoreOptions options)
    {
        ulong flags = 0;
        foreach (var (name, path) in options.JoinNs)
        {
            var kind = NamespaceKind.All.FirstOrDefault(k => k.Name == name)
                ?? throw new CrispException($"--join-ns {name}:{path}: no such kind of namespace");
            if (kind != NamespaceKind.Net)
                throw new CrispException($"--join-ns {name}:{path}: crisp joins only net namespaces yet");
            flags |= kind.CloneFlag;
        }
        return flags;
    }

    /// <summary>The hook in the puppet tree builder: the root puppet, alone so far, enters the namespaces it was
    /// not cloned into (time), which every task cloned from it then shares.</summary>
    public static void EnterNamespaces(RestoreContext ctx)
    {
        foreach (var kind in Kinds(ctx.Namespaces.Own.OwnFlags))
            NamespaceContents.Of(kind)!.Enter(ctx, ctx.Root, kind.IdIn(ctx.Root.Ids) ?? 0);
    }

    /// <summary>The CLONE_NEW* flags of the tree's own namespaces, after refusing (one line) ids fields this crisp
    /// does not know, kinds it cannot restore yet and tasks in other namespaces than the root's.</summary>
    public static ulong Check(inventory_entry inventory, IReadOnlyList<RestoreTask> tasks)
    {
        foreach (var task in tasks)
            RefuseUnknownKinds(task.Ids, $"ids-{task.Pid}.img");
        if (inventory.RootIds is { } rootIds)
            RefuseUnknownKinds(rootIds, "inventory.img root_ids");
        var root = tasks[0];
        ulong flags = OwnFlags(inventory, root.Ids);
        var missing = NamespaceKind.All.Where(k => (flags & k.CloneFlag) != 0 && NamespaceContents.Of(k) is null).ToList();
        if (missing.Count > 0)
            throw new CrispException($"the checkpoint's tree has {string.Join(", ", missing.Select(k => $"a {k} namespace"))} of its own: " +
                $"crisp cannot restore {string.Join(", ", missing.Select(k => k.Name))} namespaces yet");
        foreach (var task in tasks.Skip(1))
            foreach (var kind in NamespaceKind.All.Where(k => k != NamespaceKind.Pid))
                if (kind.IdIn(task.Ids) != kind.IdIn(root.Ids))
                    throw new CrispException($"ids-{task.Pid}.img: task {task.Pid} is in another {kind} namespace than the root task {root.Pid}: " +
                        $"nested {kind} namespaces are not supported yet");
        NestedPidNamespaces.Check(tasks);
        return flags;
    }

    /// <summary>CLONE_NEW* flags the root puppet is cloned with (after <see cref="Prepare"/>).</summary>
    public static ulong RootCloneFlags(RestoreContext ctx) => ctx.Namespaces.Own.CloneFlags;

    /// <summary>Whether the tree has a pid namespace of its own: its pids are then free by construction.</summary>
    public static bool HasOwnPidNamespace(inventory_entry inventory, task_kobj_ids_entry rootIds)
        => (OwnFlags(inventory, rootIds) & Clone3.CLONE_NEWPID) != 0;

    /// <summary>Kinds whose id differs between the root task and crisp at dump. Images without root_ids, or
    /// without a kind's ids (older crisp and CRIU images), say the tree shares crisp's.</summary>
    private static ulong OwnFlags(inventory_entry inventory, task_kobj_ids_entry rootIds)
    {
        if (inventory.RootIds is not { } own)
            return 0;
        return NamespaceKind.All.Where(k => k.IdIn(rootIds) is { } id && k.IdIn(own) is { } mine && id != mine)
            .Aggregate(0UL, (f, k) => f | k.CloneFlag);
    }

    private static IEnumerable<NamespaceKind> Kinds(ulong flags) => NamespaceKind.All.Where(k => (flags & k.CloneFlag) != 0);

    /// <summary>A field of task_kobj_ids_entry this crisp does not know would be a namespace kind added after it:
    /// refused rather than restored without it.</summary>
    /// <summary>task_kobj_ids_entry's fields, spelled out: asking its descriptor builds protobuf's reflection for every
    /// image message on first use (~10 ms of a small restore).</summary>
    private static readonly HashSet<int> KnownIdsFields =
    [
        task_kobj_ids_entry.VmIdFieldNumber, task_kobj_ids_entry.FilesIdFieldNumber, task_kobj_ids_entry.FsIdFieldNumber,
        task_kobj_ids_entry.SighandIdFieldNumber, task_kobj_ids_entry.PidNsIdFieldNumber, task_kobj_ids_entry.NetNsIdFieldNumber,
        task_kobj_ids_entry.IpcNsIdFieldNumber, task_kobj_ids_entry.UtsNsIdFieldNumber, task_kobj_ids_entry.MntNsIdFieldNumber,
        task_kobj_ids_entry.UserNsIdFieldNumber, task_kobj_ids_entry.CgroupNsIdFieldNumber, task_kobj_ids_entry.TimeNsIdFieldNumber,
        task_kobj_ids_entry.PidForChildrenNsIdFieldNumber,
    ];

    private static void RefuseUnknownKinds(task_kobj_ids_entry ids, string where)
    {
        var input = new CodedInputStream(ids.ToByteArray());
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            int field = WireFormat.GetTagFieldNumber(tag);
            if (!KnownIdsFields.Contains(field))
                throw new CrispException($"{where}: the ids name a kind of namespace crisp does not know (task_kobj_ids_entry field {field})");
            input.SkipLastField();
        }
    }

    public sealed class Flags
    {
        /// <summary>Every kind the tree has of its own.</summary>
        public ulong OwnFlags { get; set; }
        public ulong CloneFlags { get; set; }
    }
}
