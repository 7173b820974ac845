using Crisp.Dump;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Linux.Proc;
using Crisp.Resources.Memory;
using Crisp.Restore;

namespace Crisp.Resources.Files.Sockets.Packet;

/// <summary>The mapping of a packet socket's rings in a task, in CRIU's form: a vma_entry with status SOCKET whose
/// shmid is the socket's file id, and no pages (the ring's memory is the socket's). The socket must be one of the
/// task's own fds, as CRIU requires: restore maps that fd. The address space stage holds the place with an
/// inaccessible mapping until the task's fds are in; this step, right after them, maps the new socket's rings there.</summary>
public sealed class PacketRingMappings : IRestoreStage
{
    private const int AF_PACKET = 17;

    public string Name => "packet rings";

    /// <summary>Dump: the file id of the socket mapped at <paramref name="m"/> in task <paramref name="pid"/>, dumping
    /// its description now (the files stage finds the same id for the fd by kcmp).</summary>
    public static uint FileIdOf(DumpContext ctx, int pid, MapsEntry m)
    {
        var link = ProcFds.Read(pid).FirstOrDefault(l => l.Target == m.Path);
        if (link.Target is null)
            throw new CrispException($"task {pid}: mapping {m} is of a socket the task has no fd of: not supported");
        using var pidfd = PidFd.Open(pid);
        using var copy = pidfd.GetFd(link.Fd);
        var fd = new OpenFd(pid, link.Fd, link.Target, copy, FdOps.Stat(copy.Fd), FdInfo.Read(pid, link.Fd));
        if (SocketCalls.GetInt(copy.Fd, SocketCalls.SOL_SOCKET, SocketCalls.SO_DOMAIN) != AF_PACKET)
            throw new CrispException($"task {pid}: mapping {m} is of a socket other than a packet socket's rings: not supported");
        var kind = FileKinds.Claiming(fd) ?? throw FileKinds.Unsupported(fd);
        return ctx.Files.Table.IdOf(ctx, kind, fd);
    }

    /// <summary>Restore, address space stage: an inaccessible placeholder where the rings go, so nothing else is
    /// mapped there meanwhile.</summary>
    public static void HoldPlace(RestoreTask task, vma_entry v)
    {
        long at = task.Call($"mmap(ring placeholder 0x{v.Start:x})", Sysno.mmap, (long)v.Start, (long)(v.End - v.Start), Mman.PROT_NONE,
            Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS | Mman.MAP_NORESERVE | Mman.MAP_FIXED, -1, 0);
        if ((ulong)at != v.Start)
            throw new CrispException($"task {task.Pid}: mmap(MAP_FIXED 0x{v.Start:x}) gave 0x{at:x}");
    }

    public void Restore(RestoreContext ctx, RestoreTask task)
    {
        if (!ctx.Memory.Mms.TryGetValue(task.Pid, out var mm))
            return;
        var fds = ctx.Files.Open.Fdinfos.TryGetValue(task.Ids.FilesId, out var list) ? list : [];
        foreach (var v in mm.Vmas.Where(v => VmaStatus.Is(v.Status, VmaStatus.Regular | VmaStatus.Socket)))
        {
            var fi = fds.FirstOrDefault(f => f.Id == (uint)v.Shmid && f.Type == fd_types.Packetsk)
                ?? throw new CrispException($"task {task.Pid}: ring mapping 0x{v.Start:x} is of packet socket {v.Shmid}, which the task has no fd of");
            int flags = (int)v.Flags & (Mman.MAP_SHARED | Mman.MAP_PRIVATE) | Mman.MAP_FIXED;
            long at = task.Call($"mmap(packet rings 0x{v.Start:x})", Sysno.mmap, (long)v.Start, (long)(v.End - v.Start), v.Prot, flags,
                fi.Fd, (long)v.Pgoff);
            if ((ulong)at != v.Start)
                throw new CrispException($"task {task.Pid}: mmap(MAP_FIXED 0x{v.Start:x}) gave 0x{at:x}");
        }
    }
}
