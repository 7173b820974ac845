using Crisp.Dump;
using Crisp.Images.Proto;
using Crisp.Linux;

namespace Crisp.Resources.Ipc;

/// <summary>Reads the SysV objects of the IPC namespace the calling thread is in (run it on an
/// <see cref="IpcNamespaceThread"/>), as CRIU's ipc_ns.c does: every segment (contents through a read-only
/// attachment in crisp, into pagemap-shmem-ID.img), semaphore set (GETALL) and queue (messages copied with
/// MSG_COPY, so the queue keeps them), the sysctls, and the POSIX message queues (<see cref="PosixQueues"/>).</summary>
public static class IpcNamespaceDump
{
    /// <summary>The whole namespace (the tree's own).</summary>
    public static IpcNamespaceImage Whole(DumpContext ctx, int rootPid)
    {
        var names = PosixQueues.List(out string? why);
        if (why is not null)
            ctx.Log.Warn($"the POSIX message queues of task {rootPid}'s IPC namespace cannot be listed ({why}); any there are not dumped");
        var image = new IpcNamespaceImage { Var = IpcSysctls.Read() };
        if (names is { Count: > 0 })
            image.Var.PosixMqs.AddRange(PosixQueues.ReadAll(names));
        int max = SysvIpc.ShmMaxIndex();
        for (int i = 0; i <= max; i++)
            if (SysvIpc.ShmAtIndex(i) is { } shm)
                image.Segments.Add(Segment(ctx, shm));
        max = SysvIpc.SemMaxIndex();
        for (int i = 0; i <= max; i++)
        {
            if (SysvIpc.SemAtIndex(i) is not { } sem)
                continue;
            image.Sems.Add(new IpcSemSet(new ipc_sem_entry { Desc = Desc(sem.Id, sem.Perm), Nsems = sem.Nsems }, SysvIpc.SemGetAll(sem.Id, sem.Nsems)));
        }
        max = SysvIpc.MsgMaxIndex();
        int largest = (int)Math.Min(Math.Max(image.Var.MsgCtlmax, 8192u), 16u << 20);
        for (int i = 0; i <= max; i++)
        {
            if (SysvIpc.MsgAtIndex(i) is not { } q)
                continue;
            var messages = new List<(long, byte[])>();
            for (int n = 0; n < (int)q.Qnum; n++)
                messages.Add(SysvIpc.MsgCopy(q.Id, n, Math.Max(largest, (int)Math.Min(q.Qbytes, 16u << 20))));
            image.Queues.Add(new IpcQueue(new ipc_msg_entry { Desc = Desc(q.Id, q.Perm), Qbytes = (uint)q.Qbytes, Qnum = (uint)q.Qnum }, messages));
        }
        return image;
    }

    /// <summary>Only the segments <paramref name="ids"/> (those the tree has attached, in a namespace it shares
    /// with crisp: the rest of it is not the tree's).</summary>
    public static IpcNamespaceImage Attached(DumpContext ctx, IEnumerable<uint> ids)
    {
        var image = new IpcNamespaceImage();
        foreach (uint id in ids.Order())
        {
            var shm = SysvIpc.ShmById((int)id) ?? throw new CrispException($"SysV shared memory segment {id} disappeared during the dump");
            image.Segments.Add(Segment(ctx, shm));
        }
        return image;
    }

    private static ipc_shm_entry Segment(DumpContext ctx, SysvIpc.ShmInfo shm)
    {
        var entry = new ipc_shm_entry { Desc = Desc(shm.Id, shm.Perm), Size = shm.Size, InPagemaps = true };
        nint at = SysvIpc.ShmAttach(shm.Id, SysvIpc.SHM_RDONLY);
        try
        {
            ulong end = (ulong)at + ((shm.Size + 4095) & ~4095UL);
            using var fd = FileIo.Open($"/proc/self/map_files/{at:x}-{end:x}", FileIo.O_RDONLY);
            Memory.SharedAnonDump.DumpObject(ctx, fd.Fd, (ulong)shm.Id, $"SysV shared memory segment {shm.Id}");
        }
        finally
        {
            SysvIpc.ShmDetach(at);
        }
        return entry;
    }

    private static ipc_desc_entry Desc(int id, SysvIpc.Perm p) => new()
    {
        Id = (uint)id,
        Key = (uint)p.Key,
        Uid = p.Uid,
        Gid = p.Gid,
        Cuid = p.Cuid,
        Cgid = p.Cgid,
        Mode = p.Mode,
    };
}
