using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux;

namespace Crisp.Resources.Ipc;

/// <summary>Creates SysV objects again with their ids, in the IPC namespace of the calling thread (run it
/// on an <see cref="IpcNamespaceThread"/>): kernel.{shm,msg,sem}_next_id set to the id just before each
/// creation (CRIU's way), created as the dumped creator (cuid/cgid), then owner and mode by IPC_SET, then
/// contents: segment pages, semaphore values, messages in their order.</summary>
public sealed class SysvObjectsRestore(ImageDirectory images, Log log)
{
    /// <summary>Segments created by this restore (a failed restore in crisp's namespace removes them).</summary>
    public List<int> Created { get; } = [];

    public void CreateSegment(ipc_shm_entry shm, IpcNamespaceImage image)
    {
        var d = shm.Desc;
        int id = Create("shm", d, () => SysvIpc.ShmGet((int)d.Key, shm.Size, Flags(d)), $"SysV shm segment {d.Id} (key 0x{d.Key:x8})");
        SysvIpc.ShmSet(id, d.Uid, d.Gid, d.Mode);
        if ((d.Mode & SysvIpc.SHM_LOCKED) != 0)
            SysvIpc.ShmCtl(id, SysvIpc.SHM_LOCK, "shmctl(SHM_LOCK)");
        Fill(shm, image);
    }

    public void CreateQueue(IpcQueue q)
    {
        var d = q.Entry.Desc;
        string what = $"SysV message queue {d.Id} (key 0x{d.Key:x8})";
        int id = Create("msg", d, () => SysvIpc.MsgGet((int)d.Key, Flags(d)), what);
        // A queue larger than kernel.msgmnb needs CAP_SYS_RESOURCE, which root may lack (it does on these hosts).
        if (SysvIpc.TryMsgSet(id, d.Uid, d.Gid, d.Mode, q.Entry.Qbytes) == -Errnos.EPERM)
        {
            log.Warn($"{what}: its size limit {q.Entry.Qbytes} bytes cannot be set (above kernel.msgmnb without CAP_SYS_RESOURCE); left at the default");
            long r = SysvIpc.TryMsgSet(id, d.Uid, d.Gid, d.Mode, null);
            if (r < 0)
                throw new SyscallException("msgctl(IPC_SET)", (int)-r);
        }
        foreach (var (type, text) in q.Messages)
            SysvIpc.MsgSend(id, type, text);
    }

    public void CreateSemSet(IpcSemSet s)
    {
        var d = s.Entry.Desc;
        int id = Create("sem", d, () => SysvIpc.SemGet((int)d.Key, s.Entry.Nsems, Flags(d)), $"SysV semaphore set {d.Id} (key 0x{d.Key:x8})");
        SysvIpc.SemSet(id, d.Uid, d.Gid, d.Mode);
        if (s.Values.Length > 0)
            SysvIpc.SemSetAll(id, s.Values);
    }

    private static int Flags(ipc_desc_entry d) => (int)(d.Mode & 0x1ff) | SysvIpc.IPC_CREAT | SysvIpc.IPC_EXCL;

    private int Create(string kind, ipc_desc_entry d, Func<int> get, string what)
    {
        int wanted = (int)d.Id, id;
        IpcSysctls.RequestNextId(kind, wanted);
        try
        {
            id = IpcNamespaceThread.AsCreator(d.Cuid, d.Cgid, get);
        }
        catch (SyscallException e)
        {
            IpcSysctls.ClearNextId(kind);
            throw new CrispException($"{what} cannot be created again: {e.Message}{(e.Errno == Errnos.EEXIST ? " (its key is taken)" : "")}");
        }
        if (kind == "shm")
            Created.Add(id);
        if (id != wanted)
            throw new CrispException($"{what} came back with id {id}: id {wanted} is taken");
        return id;
    }

    /// <summary>Writes the dumped contents through an attachment in crisp.</summary>
    private unsafe void Fill(ipc_shm_entry shm, IpcNamespaceImage image)
    {
        int id = (int)shm.Desc.Id;
        nint at = SysvIpc.ShmAttach(id, 0);
        try
        {
            var target = new Span<byte>((void*)at, checked((int)shm.Size));
            if (image.RawContents.TryGetValue(shm.Desc.Id, out var raw))
            {
                raw.AsSpan(0, (int)Math.Min((ulong)raw.Length, shm.Size)).CopyTo(target);
                return;
            }
            var file = ImageFile.ShmemPagemap(shm.Desc.Id);
            using var pages = images.OpenPagemap(file);
            ulong rounded = (shm.Size + 4095) & ~4095UL;
            foreach (var run in pages.Runs.Where(r => r.IsPresent))
            {
                if (run.End > rounded)
                    throw new CrispException($"{images.PathOf(file)}: pages beyond the segment's {shm.Size} bytes");
                pages.ReadPages(run.Vaddr, new Span<byte>((void*)(at + (nint)run.Vaddr), (int)(run.End - run.Vaddr)));
            }
        }
        finally
        {
            SysvIpc.ShmDetach(at);
        }
    }
}
