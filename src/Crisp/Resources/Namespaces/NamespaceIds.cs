using Crisp.Images.Proto;
using Crisp.Linux;

namespace Crisp.Resources.Namespaces;

/// <summary>Dump-wide numbering of namespaces, as CRIU's ns_ids: each namespace met (by its nsfs inode) gets
/// the next id, one counter across kinds, crisp's own first. A namespace of the root task that is not crisp's
/// is the tree's own (CRIU's root_ns_mask); inventory.img's root_ids holds crisp's own, so the restore can tell.</summary>
public sealed class NamespaceIds
{
    private readonly Dictionary<(NamespaceKind Kind, ulong Inode), uint> _ids = [];
    private uint _next = 1;

    /// <summary>crisp's own namespaces' ids (CRIU's NS_CRIU), null until the first task is numbered.</summary>
    public task_kobj_ids_entry? Own { get; private set; }

    /// <summary>CLONE_NEW* flags of the namespaces the root task has of its own.</summary>
    public ulong RootFlags { get; set; }

    /// <summary>Fills the namespace ids of task <paramref name="hostPid"/> into <paramref name="ids"/>.
    /// A kind this kernel lacks (no /proc/PID/ns entry) is left out, as CRIU does.</summary>
    public void Number(int hostPid, task_kobj_ids_entry ids)
    {
        if (Own is null)
        {
            var own = new task_kobj_ids_entry();
            Fill(ProcessIds.Pid, own);
            Own = own;
        }
        Fill(hostPid, ids);
    }

    private void Fill(int hostPid, task_kobj_ids_entry ids)
    {
        foreach (var kind in NamespaceKind.All)
        {
            if (kind.InodeOf(hostPid) is { } inode)
                kind.SetIn(ids, IdOf(kind, inode));
        }
    }

    /// <summary>The id of the namespace of kind <paramref name="kind"/> with nsfs inode <paramref name="inode"/>.</summary>
    public uint IdOf(NamespaceKind kind, ulong inode)
    {
        if (!_ids.TryGetValue((kind, inode), out uint id))
            _ids[(kind, inode)] = id = _next++;
        return id;
    }

    /// <summary>An id for a namespace /proc cannot show (a pid namespace unshared for children not made yet).</summary>
    public uint Fresh() => _next++;
}
