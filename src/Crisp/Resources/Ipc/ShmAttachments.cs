using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Restore;

namespace Crisp.Resources.Ipc;

/// <summary>SysV segments attached in restored tasks (VMAs with VMA_AREA_SYSVIPC, shmid = the segment id). One
/// shmat maps a whole segment, which mprotect may have split into several VMAs: the first piece (pgoff 0)
/// attaches it at its address — read-only unless some piece was attached writable (fdflags), with SHM_EXEC
/// if some piece is executable — and every piece then gets its own protection. Pieces that do not cover
/// the segment from start to end (a hole, a partial munmap) are refused, as in CRIU.</summary>
public sealed class ShmAttachments
{
    private const ulong PageSize = Mman.PageSize;

    /// <summary>Size of each segment of the images, by id (set by <see cref="IpcRestore"/>).</summary>
    public Dictionary<uint, ulong> Sizes { get; } = [];

    public void Map(RestoreTask task, IReadOnlyList<vma_entry> vmas, vma_entry v)
    {
        uint id = (uint)v.Shmid;
        if (v.Pgoff != 0)
        {
            bool continues = vmas.Any(p => p != v && Memory.VmaStatus.Is(p.Status, Memory.VmaStatus.SysvIpc) && p.Shmid == v.Shmid
                && p.End == v.Start && p.Pgoff + (p.End - p.Start) == v.Pgoff);
            if (!continues)
                throw new CrispException($"task {task.Pid}: SysV shm segment {id} is attached at 0x{v.Start:x} from offset 0x{v.Pgoff:x} only; partial attachments are not supported");
            return;   // mapped with its first piece
        }
        if (!Sizes.TryGetValue(id, out ulong size))
            throw new CrispException($"task {task.Pid}: mapping 0x{v.Start:x} is SysV shm segment {id}, which is not in the IPC images");
        var chain = new List<vma_entry> { v };
        while (vmas.FirstOrDefault(p => Memory.VmaStatus.Is(p.Status, Memory.VmaStatus.SysvIpc) && p.Shmid == v.Shmid && p.Start == chain[^1].End
            && p.Pgoff == chain[^1].End - v.Start) is { } next)
            chain.Add(next);
        ulong rounded = (size + PageSize - 1) & ~(PageSize - 1);
        if (chain[^1].End - v.Start != rounded)
            throw new CrispException($"task {task.Pid}: SysV shm segment {id} ({size} bytes) is attached at 0x{v.Start:x} for 0x{chain[^1].End - v.Start:x} bytes only; partial attachments are not supported");
        bool writable = chain.Any(p => (p.Fdflags & FileIo.O_ACCMODE) == FileIo.O_RDWR);
        bool exec = chain.Any(p => (p.Prot & Mman.PROT_EXEC) != 0);
        int flags = (writable ? 0 : SysvIpc.SHM_RDONLY) | (exec ? SysvIpc.SHM_EXEC : 0);
        long at = task.Call($"shmat({id}, 0x{v.Start:x})", Sysno.shmat, id, (long)v.Start, flags);
        if ((ulong)at != v.Start)
            throw new CrispException($"task {task.Pid}: shmat of SysV segment {id} gave 0x{at:x}, not 0x{v.Start:x}");
        uint attached = (uint)(Mman.PROT_READ | (writable ? Mman.PROT_WRITE : 0) | (exec ? Mman.PROT_EXEC : 0));
        foreach (var p in chain.Where(p => p.Prot != attached))
            task.Call($"mprotect(0x{p.Start:x})", Sysno.mprotect, (long)p.Start, (long)(p.End - p.Start), p.Prot);
    }
}
