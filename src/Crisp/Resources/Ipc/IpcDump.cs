using Crisp.Dump;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Linux.Proc;

namespace Crisp.Resources.Ipc;

/// <summary>The tree's IPC namespace. Each task's ipc_ns_id goes into its ids; every task must be in the
/// root's namespace (nested ones are refused, as CRIU does). A namespace of the tree's own is dumped whole
/// (ipcns-var/shm/msg/sem-NSID.img); in crisp's own namespace only the SysV segments the tree has attached
/// are kept (ipcns-shm), so the restore can put back one that is gone by then.</summary>
public sealed class IpcDump : IDumpStage
{
    public string Name => "ipc";

    public void Dump(DumpContext ctx, DumpTask task)
    {
        var state = ctx.Ipc;
        ulong ns = IpcNamespaces.InodeOf(task.Pid);
        state.TreeNs ??= ns;
        if (ns != state.TreeNs)
            throw new CrispException($"task {task.Pid} is in IPC namespace {ns}, not in its root's ({state.TreeNs}): nested IPC namespaces are not supported");
        // The namespaces stage has numbered it with the others (CRIU's one counter); the images use that id.
        var ids = task.Leader.Core.Ids;
        if (ids.HasIpcNsId)
            state.Name(ns, ids.IpcNsId);
        else
            ids.IpcNsId = state.IdOf(ctx, ns);
        foreach (var m in ProcMaps.Read(task.Pid).Where(m => m.IsSysvShm))
            state.Attached.Add((uint)m.Inode);   // a segment's inode number is its id
    }

    public void Finish(DumpContext ctx)
    {
        var state = ctx.Ipc;
        if (state.TreeNs is not { } ns)
            return;
        uint nsId = state.IdOf(ctx, ns);
        IpcNamespaceImage image;
        if (state.TreeHasOwn)
        {
            using var fd = FileIo.Open(Procfs.Host.Path(ctx.Tasks[0].Pid, "ns/ipc"), FileIo.O_RDONLY | FileIo.O_CLOEXEC);
            image = IpcNamespaceThread.Run(fd, () => IpcNamespaceDump.Whole(ctx, ctx.Tasks[0].Pid));
        }
        else if (state.Attached.Count > 0)
            image = IpcNamespaceThread.Run(null, () => IpcNamespaceDump.Attached(ctx, state.Attached));
        else
            return;
        image.Write(ctx.Images, nsId);
        ctx.Log.Info($"IPC namespace {ns} ({(state.TreeHasOwn ? "the tree's own" : "crisp's")}): {image.Segments.Count} shm segment(s), " +
            $"{image.Sems.Count} semaphore set(s), {image.Queues.Count} message queue(s)");
    }
}

/// <summary>IPC namespaces met in a dump: inode → the id the images use; the tree's; segments it attached.</summary>
public sealed class IpcNamespaces
{
    private readonly Dictionary<ulong, uint> _ids = [];

    public ulong? TreeNs { get; set; }
    public HashSet<uint> Attached { get; } = [];
    public bool TreeHasOwn => TreeNs is { } ns && ns != InodeOf(0);

    /// <summary>Records the id another stage gave the namespace at <paramref name="inode"/>.</summary>
    public void Name(ulong inode, uint id) => _ids.TryAdd(inode, id);

    public uint IdOf(DumpContext ctx, ulong inode)
    {
        if (!_ids.TryGetValue(inode, out uint id))
            _ids[inode] = id = ctx.NewId();
        return id;
    }

    /// <summary>Inode of /proc/PID/ns/ipc (0: crisp's own).</summary>
    public static ulong InodeOf(int pid)
    {
        string link = new FileInfo(Procfs.Host.Path(pid, "ns/ipc")).LinkTarget
            ?? throw new CrispException($"task {pid}: {Procfs.Host.Path(pid, "ns/ipc")} is not readable");
        // "ipc:[4026531839]"
        return ulong.Parse(link.AsSpan(5, link.Length - 6), System.Globalization.CultureInfo.InvariantCulture);
    }
}
