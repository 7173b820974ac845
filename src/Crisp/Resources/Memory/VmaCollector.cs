using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Linux.Proc;

namespace Crisp.Resources.Memory;

/// <summary>Turns /proc/PID/smaps into vma_entry records with CRIU's status bits, mmap flags and madvise
/// bits, leaving out pages crisp itself mapped in the task (remote-syscall scratch).</summary>
public static class VmaCollector
{
    /// <summary><paramref name="inodeFileId"/>: the file id of a VMA whose file has no path to open (a memfd, a
    /// deleted file, a socket's rings), reached through the mapping itself.</summary>
    public static List<DumpedVma> Collect(int pid, IReadOnlyList<(ulong Start, ulong Length)> owned, Func<string, uint> fileId,
        Func<MapsEntry, uint> inodeFileId)
    {
        var list = new List<DumpedVma>();
        foreach (var smaps in ProcSmaps.Enumerate(pid))
        {
            foreach (var maps in WithoutOwned(smaps.Vma, owned))
            {
                var entry = ToEntry(pid, maps, smaps, fileId, inodeFileId);
                if (entry is null)
                    continue;
                // [vvar] and [vvar_vclock] are one vvar VMA in CRIU's images (its restore expects one).
                if (list.Count > 0 && list[^1] is { } prev && prev.Is(VmaStatus.Vvar) && VmaStatus.Is(entry.Status, VmaStatus.Vvar)
                    && prev.End == entry.Start)
                {
                    prev.Entry.End = entry.End;
                    list[^1] = prev with { Maps = prev.Maps with { End = entry.End } };
                    continue;
                }
                list.Add(new DumpedVma(maps, entry)
                {
                    WriteProtectRegistered = smaps.HasFlag("uw"),
                    AllExclusive = smaps.SharedClean == 0 && smaps.SharedDirty == 0 && smaps.Swap == 0 && smaps.Get("KSM") == 0,
                });
            }
        }
        return list;
    }

    /// <summary>Pages crisp mapped in the task (remote-syscall scratch, crash-safe batch pages) may have merged into
    /// a neighbouring VMA: cut each range out of it.</summary>
    private static IEnumerable<MapsEntry> WithoutOwned(MapsEntry vma, IReadOnlyList<(ulong Start, ulong Length)> owned)
    {
        IEnumerable<MapsEntry> pieces = [vma];
        foreach (var range in owned)
            pieces = pieces.SelectMany(p => Without(p, range)).ToList();
        return pieces;
    }

    private static IEnumerable<MapsEntry> Without(MapsEntry vma, (ulong Start, ulong Length) s)
    {
        if (s.Start >= vma.End || s.Start + s.Length <= vma.Start)
        {
            yield return vma;
            yield break;
        }
        ulong sEnd = s.Start + s.Length;
        if (vma.Start < s.Start)
            yield return vma with { End = s.Start };
        if (sEnd < vma.End)
            yield return vma with { Start = sEnd, Offset = vma.Offset + (vma.Kind == VmaKind.File ? sEnd - vma.Start : 0) };
    }

    private static vma_entry? ToEntry(int pid, MapsEntry m, SmapsEntry smaps, Func<string, uint> fileId, Func<MapsEntry, uint> inodeFileId)
    {
        var e = new vma_entry
        {
            Start = m.Start,
            End = m.End,
            Pgoff = m.Offset,
            Prot = (uint)m.Prot,
            Fd = -1,
            Shmid = 0,   // required in CRIU's schema: set for anonymous VMAs too (file VMAs overwrite it)
        };
        uint flags = m.Shared ? (uint)Mman.MAP_SHARED : (uint)Mman.MAP_PRIVATE;
        ulong madv = 0;
        // VM_MAYWRITE ("mw"): a shared mapping made read-only by mprotect can be made writable again only
        // if its file was open for writing, so restore opens it O_RDWR (.NET flips its memfd views so).
        bool mayWrite = m.CanWrite || smaps.VmFlags.Contains("mw");
        foreach (var f in smaps.VmFlags)
        {
            switch (f)
            {
                case "gd": flags |= Mman.MAP_GROWSDOWN; break;
                case "lo": flags |= Mman.MAP_LOCKED; break;
                case "nr": flags |= Mman.MAP_NORESERVE; break;
                case "ht": flags |= Mman.MAP_HUGETLB; break;
                case "sr": madv |= 1UL << Mman.MADV_SEQUENTIAL; break;
                case "rr": madv |= 1UL << Mman.MADV_RANDOM; break;
                case "dc": madv |= 1UL << Mman.MADV_DONTFORK; break;
                case "dd": madv |= 1UL << Mman.MADV_DONTDUMP; break;
                case "mg": madv |= 1UL << Mman.MADV_MERGEABLE; break;
                case "hg": madv |= 1UL << Mman.MADV_HUGEPAGE; break;
                case "nh": madv |= 1UL << Mman.MADV_NOHUGEPAGE; break;
                case "wf": madv |= 1UL << Mman.MADV_WIPEONFORK; break;
            }
        }
        if (madv != 0)
            e.Madv = madv;
        bool huge = (flags & Mman.MAP_HUGETLB) != 0;
        if (huge)
        {
            // CRIU's form: the page size's bits next to MAP_HUGETLB (smaps KernelPageSize is the huge page size).
            flags |= Hugetlb.SizeFlag(smaps.Get("KernelPageSize"));
            if (m.Kind != VmaKind.File || !(Hugetlb.IsAnonymous(m) || m.IsMemfd))
                throw new CrispException($"task {pid}: hugetlb mapping {m} is not supported (only anonymous ones and memfds are)");
        }

        uint status = VmaStatus.Regular;
        switch (m.Kind)
        {
            // CRIU's marks: the vdso and vvar are anonymous private areas too; the vdso's pages are dumped (CRIU's
            // restore reads the dumped vdso's ELF to see whether the running one matches), the vvar's never.
            case VmaKind.Vdso:
                status |= VmaStatus.Vdso | VmaStatus.AnonPrivate;
                flags |= Mman.MAP_ANONYMOUS;
                break;
            case VmaKind.Vvar:
            case VmaKind.VvarVclock:
                status |= VmaStatus.Vvar | VmaStatus.AnonPrivate;
                flags |= Mman.MAP_ANONYMOUS;
                break;
            case VmaKind.Vsyscall:
                // A fixed kernel page: recorded the way CRIU does (not regular), never mapped or dumped.
                status = VmaStatus.Vsyscall | VmaStatus.AnonPrivate;
                flags |= Mman.MAP_ANONYMOUS;
                break;
            case VmaKind.Heap:
                status |= VmaStatus.AnonPrivate | VmaStatus.Heap;
                flags |= Mman.MAP_ANONYMOUS;
                break;
            case VmaKind.Stack:
                status |= VmaStatus.AnonPrivate | VmaStatus.Stack;
                flags |= Mman.MAP_ANONYMOUS;
                break;
            case VmaKind.Anonymous:
                status |= m.Shared ? VmaStatus.AnonShared : VmaStatus.AnonPrivate;
                flags |= Mman.MAP_ANONYMOUS;
                break;
            case VmaKind.Special when m.Path.StartsWith("[anon:", StringComparison.Ordinal):
                status |= VmaStatus.AnonPrivate;
                flags |= Mman.MAP_ANONYMOUS;
                break;
            case VmaKind.Special when m.Path.StartsWith("[anon_shmem:", StringComparison.Ordinal):
                status |= VmaStatus.AnonShared;
                flags |= Mman.MAP_ANONYMOUS;
                e.Shmid = m.Inode;
                break;
            case VmaKind.Special when m.Path == "[uprobes]":
                return null;   // the kernel's uprobe trampoline page; it comes back by itself
            case VmaKind.Special:
                throw new CrispException($"task {pid}: mapping {m} is not supported");
            case VmaKind.File when huge && Hugetlb.IsAnonymous(m):
                // MAP_ANONYMOUS|MAP_HUGETLB: private ones store their pages in the task's pagemap; a shared one is a
                // hugetlbfs object keyed by its inode, like shared /dev/zero (CRIU's ANON_SHARED form; CRIU 4.2 itself
                // writes it as a memfd named "anon_hugepage", which crisp restores as such).
                status |= m.Shared ? VmaStatus.AnonShared : VmaStatus.AnonPrivate;
                flags |= Mman.MAP_ANONYMOUS;
                if (m.Shared)
                    e.Shmid = m.Inode;
                break;
            case VmaKind.File when m.Shared && m.Path == "/dev/zero" && m.Deleted:
                // MAP_SHARED|MAP_ANONYMOUS (and shared /dev/zero): a shmem object, keyed by its inode.
                status |= VmaStatus.AnonShared;
                flags |= Mman.MAP_ANONYMOUS;
                e.Shmid = m.Inode;
                break;
            case VmaKind.File when m.IsSocket:
                // CRIU's form: a packet socket's rings, SOCKET with the socket's file id; no pages (they are the socket's).
                e.Flags = flags;
                e.Status = VmaStatus.Regular | VmaStatus.Socket;
                e.Shmid = inodeFileId(m);
                e.Fdflags = (uint)(mayWrite ? FileIo.O_RDWR : FileIo.O_RDONLY);
                return e;
            case VmaKind.File when Aio.AioRings.IsRing(m):
                // CRIU's form: AIORING alone, the pages stored whole (Aio/AioRings.cs).
                e.Flags = flags;
                e.Status = VmaStatus.AioRing;
                e.Fdflags = (uint)FileIo.O_RDWR;   // as CRIU writes it
                return e;
            case VmaKind.File when m.IsSysvShm:
                // CRIU's form: the segment's id (its inode number) in shmid; the contents are the IPC
                // namespace's (ipcns-shm); fdflags says whether it was attached read-only.
                status |= VmaStatus.AnonShared | VmaStatus.SysvIpc;
                flags |= Mman.MAP_ANONYMOUS;
                e.Shmid = m.Inode;
                e.Fdflags = (uint)(mayWrite ? FileIo.O_RDWR : FileIo.O_RDONLY);
                break;
            case VmaKind.File when m.IsMemfd:
                // CRIU's form: a MEMFD file entry (shmid) whose inode holds the contents; private copies of
                // pages of a MAP_PRIVATE one go to the pagemap like any private file mapping's.
                status |= VmaStatus.Memfd | (m.Shared ? VmaStatus.FileShared : VmaStatus.FilePrivate);
                e.Shmid = inodeFileId(m);
                e.Fdflags = (uint)(m.Shared && mayWrite ? FileIo.O_RDWR : FileIo.O_RDONLY);
                break;
            case VmaKind.File:
                // A deleted file's entry is remapped to its ghost (Files/Ghost/GhostReferences.cs).
                status |= m.Shared ? VmaStatus.FileShared : VmaStatus.FilePrivate;
                e.Shmid = m.Deleted ? inodeFileId(m) : fileId(m.Path);
                e.Fdflags = (uint)(m.Shared && mayWrite ? FileIo.O_RDWR : FileIo.O_RDONLY);
                break;
        }
        e.Flags = flags;
        e.Status = status;
        return e;
    }
}
