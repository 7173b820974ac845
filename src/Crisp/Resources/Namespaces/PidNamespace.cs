using Crisp.Dump;
using Crisp.Restore;

namespace Crisp.Resources.Namespaces;

/// <summary>A pid namespace of the tree's own. Nothing of it is written (CRIU writes pidns-ID.img only for an
/// external one): the tasks' pids in it are pstree.img's. Its init must be the tree's root, as in CRIU: the
/// restored root is cloned with CLONE_NEWPID and so is PID 1; every other task gets its pid there by set_tid.</summary>
public sealed class PidNamespace : INamespaceContent
{
    public NamespaceKind Kind => NamespaceKind.Pid;

    public void Dump(DumpContext ctx, DumpTask root, uint id)
    {
        if (root.VirtualPid != 1)
            throw new CrispException($"task {root.Pid} is pid {root.VirtualPid} of a pid namespace of its own: crisp dumps a pid namespace only from its init (pid 1)");
    }

    public void Prepare(RestoreContext ctx, uint id)
    {
        if (ctx.Root.Pid != 1)
            throw new CrispException($"pstree.img: the root task {ctx.Root.Pid} has a pid namespace of its own but is not its init (pid 1)");
    }

    public void Restore(RestoreContext ctx, RestoreTask root, uint id) { }
}
