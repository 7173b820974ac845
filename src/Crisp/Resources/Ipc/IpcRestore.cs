using Crisp.Linux.Proc;
using Crisp.Linux;
using Crisp.Restore;

namespace Crisp.Resources.Ipc;

/// <summary>The tree's IPC namespace at restore. A tree that had one of its own (its root's ipc_ns_id differs
/// from the dumper's in inventory root_ids, CRIU's rule) gets a new one: the root puppet is cloned with
/// CLONE_NEWIPC before any child (<see cref="EnterNamespace"/> holds it open), then the sysctls and every object
/// are created in it with their ids. A tree in the dumper's namespace finds its attached segments where they were; one that is gone is
/// created again with its id, key and contents; one whose id or key now belongs to another is refused before
/// anything exists. Runs before memory, which attaches the segments (<see cref="ShmAttachments"/>).</summary>
public sealed class IpcRestore : IRestoreStage
{
    public string Name => "ipc";

    public sealed class State
    {
        public IpcNamespaceImage? Image { get; set; }
        public bool OwnNamespace { get; set; }
        /// <summary>The new namespace, held open for the threads that work in it.</summary>
        public UnixFd? Namespace { get; set; }
        public SysvObjectsRestore? Objects { get; set; }
        /// <summary>Segments of crisp's namespace that are still there: attached as they are.</summary>
        public List<int> Reused { get; } = [];
    }

    public void Prepare(RestoreContext ctx)
    {
        var ids = ctx.Root.Ids;
        if (ids is not { HasIpcNsId: true })
            return;
        var state = ctx.Ipc.Namespace;
        state.OwnNamespace = ctx.Inventory.RootIds is { HasIpcNsId: true } dumper && dumper.IpcNsId != ids.IpcNsId;
        if (ctx.Tasks.FirstOrDefault(t => t.Ids is { HasIpcNsId: true } i && i.IpcNsId != ids.IpcNsId) is { } nested)
            throw new CrispException($"task {nested.Pid} is in IPC namespace {nested.Ids.IpcNsId}, not in its root's ({ids.IpcNsId}): nested IPC namespaces are not supported");
        state.Image = IpcNamespaceImage.Read(ctx.Images, ids.IpcNsId, whole: state.OwnNamespace);
        var sizes = ctx.Ipc.Attachments.Sizes;
        foreach (var s in state.Image.Segments)
            sizes[s.Desc.Id] = s.Size;
        if (!state.OwnNamespace)
            CheckHostSegments(ctx, state);
    }

    /// <summary>The hook in the puppet tree builder: the root puppet, alone so far, moves into a new IPC
    /// namespace, which every task cloned from it then shares.</summary>
    public static void EnterNamespace(RestoreContext ctx)
    {
        var state = ctx.Ipc.Namespace;
        if (!state.OwnNamespace)
            return;
        var root = ctx.Root.Puppet;
        // The root puppet was cloned into a new IPC namespace with the tree's other namespaces (IpcNamespace in
        // NamespaceContents): the same test of the root's ids against root_ids that set OwnNamespace.
        state.Namespace = FileIo.Open(Procfs.Host.Path(root.Pid, "ns/ipc"), FileIo.O_RDONLY | FileIo.O_CLOEXEC);
    }

    public void Restore(RestoreContext ctx, RestoreTask task)
    {
        var state = ctx.Ipc.Namespace;
        if (task != ctx.Root || state.Image is not { } image)
            return;
        var objects = state.Objects = new SysvObjectsRestore(ctx.Images, ctx.Log);
        if (state.OwnNamespace)
        {
            IpcNamespaceThread.Run(state.Namespace, () =>
            {
                foreach (string warning in IpcSysctls.WriteLimits(image.Var!))
                    ctx.Log.Warn($"IPC namespace: {warning}");
                foreach (var s in image.Segments)
                    objects.CreateSegment(s, image);
                foreach (var q in image.Queues)
                    objects.CreateQueue(q);
                foreach (var s in image.Sems)
                    objects.CreateSemSet(s);
                foreach (var q in image.Var!.PosixMqs)
                    PosixQueues.Create(q);
            });
            ctx.Log.Info($"IPC namespace: {image.Segments.Count} shm segment(s), {image.Queues.Count} message queue(s), {image.Sems.Count} semaphore set(s), {image.Var!.PosixMqs.Count} POSIX message queue(s)");
        }
        else
        {
            IpcNamespaceThread.Run(null, () =>
            {
                foreach (var s in image.Segments.Where(s => !state.Reused.Contains((int)s.Desc.Id)))
                    objects.CreateSegment(s, image);
            });
        }
    }

    /// <summary>Called once every task's memory is mapped: segments that were marked for removal (IPC_RMID
    /// while attached) are marked again now that their attachments exist; then the sysctls that had to wait.</summary>
    public static void AfterAllAttached(RestoreContext ctx)
    {
        var state = ctx.Ipc.Namespace;
        if (state.Image is not { } image)
            return;
        var destroyed = image.Segments.Where(s => (s.Desc.Mode & SysvIpc.SHM_DEST) != 0 && !state.Reused.Contains((int)s.Desc.Id)).ToList();
        IpcNamespaceThread.Run(state.OwnNamespace ? state.Namespace : null, () =>
        {
            foreach (var s in destroyed)
                SysvIpc.ShmCtl((int)s.Desc.Id, SysvIpc.IPC_RMID, $"shmctl({s.Desc.Id}, IPC_RMID)");
            if (state.OwnNamespace)
                foreach (string warning in IpcSysctls.WriteLate(image.Var!))
                    ctx.Log.Warn($"IPC namespace: {warning}");
        });
    }

    public void Cleanup(RestoreContext ctx)
    {
        var state = ctx.Ipc.Namespace;
        // A failed restore in crisp's namespace removes the segments it made (the puppets' attachments die
        // with them); a namespace of the tree's own goes with its last puppet.
        if (!ctx.Released && !state.OwnNamespace && state.Objects is { Created.Count: > 0 } objects)
        {
            foreach (int id in objects.Created)
                SysvIpc.TryShmCtl(id, SysvIpc.IPC_RMID);
        }
        state.Namespace?.Dispose();
        state.Namespace = null;
    }

    /// <summary>Crisp's own namespace: each segment the tree had attached must either still be there (same
    /// id, key and size: attached as it is, its contents are the live ones) or be free to create again.</summary>
    private static void CheckHostSegments(RestoreContext ctx, State state)
    {
        var byKey = new Dictionary<int, SysvIpc.ShmInfo>();
        int max = SysvIpc.ShmMaxIndex();
        for (int i = 0; i <= max; i++)
            if (SysvIpc.ShmAtIndex(i) is { Perm.Key: not 0 } live)
                byKey[live.Perm.Key] = live;
        foreach (var s in state.Image!.Segments)
        {
            var d = s.Desc;
            string what = $"SysV shm segment {d.Id} (key 0x{d.Key:x8}, {s.Size} bytes)";
            if (SysvIpc.ShmById((int)d.Id) is { } live)
            {
                if ((uint)live.Perm.Key != d.Key || live.Size != s.Size)
                    throw new CrispException($"{what} cannot be put back: id {d.Id} now belongs to another segment (key 0x{live.Perm.Key:x8}, {live.Size} bytes)");
                state.Reused.Add((int)d.Id);
                ctx.Log.Info($"{what} is still there: attached as it is");
                continue;
            }
            if (d.Key != 0 && byKey.TryGetValue((int)d.Key, out var other))
                throw new CrispException($"{what} cannot be put back: its key now belongs to segment {other.Id}");
        }
    }
}
