using Crisp.Dump;
using Crisp.Linux;
using Crisp.Linux.Proc;
using Crisp.Resources.Files;
using Crisp.Resources.Namespaces;

namespace Crisp.Resources.Mounts;

/// <summary>Where the files of a tree with a mount namespace of its own lie. A file on one of the tree's mounts is
/// opened inside the restored namespace; one on a mount of crisp's own namespace (a runtime's /dev/null or log
/// file given to the container as stdio) is opened there again at restore, as CRIU does for its root namespace;
/// one on a mount of neither is refused at dump (CRIU: "Can't lookup mount"): nothing could open it again.</summary>
public sealed class TreeMounts
{
    private HashSet<int>? _known;
    private Dictionary<int, string> _hidden = [];
    private bool _read;

    public void Check(DumpContext ctx, OpenFd fd)
    {
        if (!_read)
        {
            _read = true;
            int root = ctx.Tasks[0].Pid;
            if (NamespaceKind.Mnt.InodeOf(root) != NamespaceKind.Mnt.InodeOf(ProcessIds.Pid))
            {
                var tree = MountInfo.Read(root);
                _known = [.. tree.Select(m => m.MountId), .. MountInfo.Read(ProcessIds.Pid).Select(m => m.MountId)];
                var nodes = tree.Select(m => new MountCover.Node((uint)m.MountId, (uint)m.ParentId, m.MountPoint)).ToList();
                _hidden = tree.Where(m => MountCover.IsHidden(nodes, (uint)m.MountId)).ToDictionary(m => m.MountId, m => m.MountPoint);
            }
        }
        // Files are opened again by path, and a covered mount's path leads to what covers it.
        if (_hidden.TryGetValue(fd.Info.MntId, out var point))
            throw new CrispException($"task {fd.Pid} fd {fd.Fd}: {fd.Target} is on mount {fd.Info.MntId} ({point}), which another mount " +
                "covers, so it cannot be opened again by path at restore");
        if (_known is not null && fd.Info.MntId != 0 && !_known.Contains(fd.Info.MntId))
            throw new CrispException($"task {fd.Pid} fd {fd.Fd}: {fd.Target} is on mount {fd.Info.MntId}, in neither the tree's " +
                "mount namespace nor crisp's, so it cannot be opened again at restore");
    }
}
