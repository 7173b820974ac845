using Crisp.Dump;
using Crisp.Restore;

namespace Crisp.Resources.Namespaces;

/// <summary>What crisp carries of one kind of namespace when the tree has one of its own: the root task is
/// in it, crisp is not. The root puppet is cloned into a new one (the kind's CLONE_NEW* flag) and this fills it.
/// One class per kind that crisp can dump and restore (<see cref="NamespaceContents.All"/>); a kind without one
/// is refused at dump and at restore.</summary>
public interface INamespaceContent
{
    NamespaceKind Kind { get; }

    /// <summary>Dump: checks the namespace can be carried and writes its images (e.g. utsns-ID.img).
    /// <paramref name="id"/> is its id in the images; <paramref name="root"/> the tree's root, in it.</summary>
    void Dump(DumpContext ctx, DumpTask root, uint id);

    /// <summary>Restore, before anything is created: reads and checks the namespace's images.</summary>
    void Prepare(RestoreContext ctx, uint id);

    /// <summary>Restore, in the root puppet that was just cloned into the new namespace.</summary>
    void Restore(RestoreContext ctx, RestoreTask root, uint id);

    /// <summary>False for a kind the root puppet is not cloned into: it enters the namespace itself in
    /// <see cref="Enter"/> (a time namespace's offsets can only be set before any task is in it).</summary>
    bool MadeByClone => true;

    /// <summary>Restore, in the root puppet once it exists and before it clones any other task.</summary>
    void Enter(RestoreContext ctx, RestoreTask root, uint id) { }

    /// <summary>Restore, at the end (success or not): releases what Prepare holds.</summary>
    void Cleanup(RestoreContext ctx) { }
}

/// <summary>The kinds of namespace crisp can carry. A new kind (ipc, net, mnt…) is one more class here.</summary>
public static class NamespaceContents
{
    public static IReadOnlyList<INamespaceContent> All { get; } =
        [new PidNamespace(), new UtsNamespace(), new IpcNamespace(), new Mounts.MountNamespace(), new TimeNamespace(), new NetNamespace(), new CgroupNamespace()];

    public static INamespaceContent? Of(NamespaceKind kind) => All.FirstOrDefault(c => c.Kind == kind);
}
