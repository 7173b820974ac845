using Crisp.Dump;
using Crisp.Restore;

namespace Crisp.Resources.Namespaces;

/// <summary>An IPC namespace of the tree's own. Its contents (sysctls, SysV objects) belong to the ipc stage
/// (<see cref="Ipc.IpcDump"/>, <see cref="Ipc.IpcRestore"/>), which numbers the namespace in the images and
/// fills it; this kind only lets the tree's own IPC namespace through and has the root puppet cloned into a
/// new one.</summary>
public sealed class IpcNamespace : INamespaceContent
{
    public NamespaceKind Kind => NamespaceKind.Ipc;

    public void Dump(DumpContext ctx, DumpTask root, uint id) { }

    public void Prepare(RestoreContext ctx, uint id) { }

    public void Restore(RestoreContext ctx, RestoreTask root, uint id) { }
}
