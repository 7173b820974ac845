using Crisp.Compel;
using Crisp.Compel.Puppets;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Linux.Proc;
using Crisp.Restore;

namespace Crisp.Resources.Memory;

/// <summary>Rebuilds a task's VMAs in its puppet by remote syscalls: clears the puppet's own leftovers,
/// moves its vdso/vvar to where the task had them, and maps every dumped VMA at its address.</summary>
public sealed class PuppetAddressSpace(RestoreTask task, mm_entry mm, IReadOnlyDictionary<uint, string> files, SharedAnonObjects shared,
    Files.Memfd.MemfdInodes memfds, Ipc.ShmAttachments sysv)
{
    private const int MREMAP_MAYMOVE = 1, MREMAP_FIXED = 2;
    private const ulong PageSize = PuppetElf.PageSize;

    public void CheckFits()
    {
        foreach (var v in mm.Vmas)
            if (v.Start < PuppetElf.End && v.End > PuppetElf.BaseAddress)
                throw new CrispException($"task {task.Pid}: its mapping 0x{v.Start:x}-0x{v.End:x} overlaps the restore puppet's " +
                    $"pages 0x{PuppetElf.BaseAddress:x}-0x{PuppetElf.End:x}; this task cannot be restored");
    }

    /// <summary>The puppet's text page is a mapping of its program (a memfd), which is its exe: the kernel
    /// refuses a new exe (PR_SET_MM_MAP exe_fd) while the old one is mapped. Swap in an anonymous copy,
    /// with the same bytes, so the gadget keeps working across the very mremap that replaces it.</summary>
    public void AnonymizePuppetText()
    {
        var remote = task.Puppet.Remote;
        var text = new byte[PageSize];
        remote.ReadMemory(PuppetElf.BaseAddress, text);
        long copy = task.Call("mmap(puppet text copy)", Sysno.mmap, 0, (long)PageSize, Mman.PROT_READ | Mman.PROT_EXEC,
            Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS, -1, 0);
        remote.WriteMemory((ulong)copy, text);
        task.Call("mremap(puppet text)", Sysno.mremap, copy, (long)PageSize, (long)PageSize, MREMAP_MAYMOVE | MREMAP_FIXED,
            (long)PuppetElf.BaseAddress);
    }

    /// <summary>Unmaps everything of the puppet but its own pages, the vdso/vvar areas and <paramref name="keep"/>
    /// (the task's VMAs already in place: inherited from its parent's puppet, or filled before its children were
    /// cloned). The kernel may show kept VMAs merged with each other or with leftovers: only what lies outside them goes.</summary>
    public void ClearLeftovers(IReadOnlyCollection<vma_entry>? keep = null)
    {
        var kept = (keep ?? []).Select(v => (v.Start, v.End)).OrderBy(r => r.Start).ToList();
        var unmaps = new List<(string, RemoteCall)>();   // one stop for all: each call is a ptrace round trip
        foreach (var m in ProcMaps.Read(task.Puppet.Pid))
        {
            if (IsVdsoArea(m) || m.Kind == VmaKind.Vsyscall || m.Start >= PuppetElf.BaseAddress && m.End <= PuppetElf.End)
                continue;
            ulong at = m.Start;
            foreach (var (start, end) in kept.Where(r => r.Start < m.End && r.End > m.Start))
            {
                if (start > at)
                    unmaps.Add(($"munmap({m.Path})", new RemoteCall(Sysno.munmap, (long)at, (long)(start - at))));
                at = Math.Max(at, end);
            }
            if (at < m.End)
                unmaps.Add(($"munmap({m.Path})", new RemoteCall(Sysno.munmap, (long)at, (long)(m.End - at))));
        }
        task.Puppet.Remote.CallAll(unmaps);
    }

    /// <summary>Moves [vvar], [vvar_vclock] and [vdso] to the dumped addresses (mremap keeps the kernel's
    /// idea of where the vdso is, for signal return), via a free spot when old and new overlap. The layouts
    /// are compared as contiguous spans with the vdso's place in them: CRIU records [vvar] and [vvar_vclock]
    /// as one vvar VMA, crisp as two, and both describe the same pages.</summary>
    public void MoveVdso()
    {
        var current = ProcMaps.Read(task.Puppet.Pid).Where(IsVdsoArea).OrderBy(m => m.Start).ToList();
        var wanted = mm.Vmas.Where(v => VmaStatus.Is(v.Status, VmaStatus.Regular) &&
            (VmaStatus.Is(v.Status, VmaStatus.Vdso) || VmaStatus.Is(v.Status, VmaStatus.Vvar))).OrderBy(v => v.Start).ToList();
        if (wanted.Count == 0)
        {
            foreach (var m in current)
                task.Call("munmap(vdso)", Sysno.munmap, (long)m.Start, (long)m.Length);
            return;
        }
        var wantedSpans = VdsoSpan.Of(wanted.Select(v => (v.Start, v.End, VmaStatus.Is(v.Status, VmaStatus.Vdso))));
        var currentSpans = VdsoSpan.Of(current.Select(m => (m.Start, m.End, m.Kind == VmaKind.Vdso)));
        if (wantedSpans.Count != currentSpans.Count || wantedSpans.Zip(currentSpans).Any(p => !p.First.SameShape(p.Second)))
            throw new CrispException($"task {task.Pid}: the vdso/vvar layout differs from this kernel's " +
                $"(dumped {string.Join(", ", wanted.Select(v => $"{v.End - v.Start:x}"))}; here {string.Join(", ", current.Select(m => $"{m.Length:x}"))})");
        // Where each area of this kernel goes: the same offset in the dumped span as in its own.
        var moves = current.Select(m =>
        {
            int k = currentSpans.FindIndex(sp => sp.Contains(m.Start));
            return (From: m.Start, m.Length, To: wantedSpans[k].Start + (m.Start - currentSpans[k].Start));
        }).ToList();
        if (moves.All(mv => mv.From == mv.To))
            return;

        var from = moves.Select(mv => (Start: mv.From, mv.Length)).ToList();
        bool overlap = from.Any(f => wantedSpans.Any(w => f.Start < w.End && w.Start < f.Start + f.Length));
        var remaps = new List<(string, RemoteCall)>();   // every address is known: one stop for all
        if (overlap)
        {
            ulong span = current[^1].End - current[0].Start;
            ulong temp = FreeSpot(span, [.. from.Select(f => (f.Start, f.Start + f.Length)), .. wantedSpans.Select(w => (w.Start, w.End))]);
            for (int i = 0; i < from.Count; i++)
            {
                ulong to = temp + (from[i].Start - current[0].Start);
                remaps.Add(Remap(from[i].Start, from[i].Length, to));
                from[i] = (to, from[i].Length);
            }
        }
        for (int i = 0; i < from.Count; i++)
            remaps.Add(Remap(from[i].Start, from[i].Length, moves[i].To));
        task.Puppet.Remote.CallAll(remaps);
    }

    /// <summary>Private VMAs mapped writable for the fill and made read-only only afterwards.</summary>
    public HashSet<vma_entry> WritableForFill { get; } = [];

    /// <summary>Maps every dumped VMA at its address (pages are filled from outside afterwards). A private
    /// read-only VMA holding anonymous pages was writable once, so the kernel accounts it (VM_ACCOUNT):
    /// it is mapped writable and protected after the fill, which gives it that flag again — without it,
    /// it would merge with a neighbour it was separate from (e.g. a library's relro with its rodata).</summary>
    public void MapAll(Images.PagemapReader pages, IReadOnlyCollection<vma_entry>? skip = null)
    {
        var openFiles = new Dictionary<(string, int), int>();
        // The plain mmaps go in one batch (one ptrace stop for a task's ~40 VMAs); they are MAP_FIXED and never
        // overlap, so running them after the shmats and placeholders of the loop changes nothing.
        var mmaps = new List<(vma_entry Vma, RemoteCall Call)>();
        try
        {
            // Every file the VMAs map, opened in one batch too.
            var wanted = mm.Vmas.Where(v => skip is null || !skip.Contains(v)).Select(FileOf).OfType<(string, int)>().Distinct().ToList();
            foreach (var (file, fd) in wanted.Zip(Mounts.MountNamespace.OpenAllInPuppet(task, wanted)))
                openFiles[file] = fd;
            foreach (var v in mm.Vmas)
            {
                if (skip is not null && skip.Contains(v))
                    continue;   // in place already (copy-on-write from the parent, or filled before the children were cloned)
                if (v.Status == VmaStatus.AioRing)
                {
                    // Its pages land here for now; AioRings.Restore moves a real ring over it.
                    long ring = task.Call($"mmap(AIO ring 0x{v.Start:x})", Sysno.mmap, (long)v.Start, (long)(v.End - v.Start),
                        Mman.PROT_READ | Mman.PROT_WRITE, Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS | Mman.MAP_FIXED, -1, 0);
                    if ((ulong)ring != v.Start)
                        throw new CrispException($"task {task.Pid}: mmap(MAP_FIXED 0x{v.Start:x}) gave 0x{ring:x}");
                    continue;
                }
                if (!VmaStatus.Is(v.Status, VmaStatus.Regular) || VmaStatus.Is(v.Status, VmaStatus.Vdso) || VmaStatus.Is(v.Status, VmaStatus.Vvar))
                    continue;
                if (VmaStatus.Is(v.Status, VmaStatus.Socket))
                {
                    Files.Sockets.Packet.PacketRingMappings.HoldPlace(task, v);   // the rings are mapped once the fds are in
                    continue;
                }
                if (VmaStatus.Is(v.Status, VmaStatus.SysvIpc))
                {
                    sysv.Map(task, mm.Vmas, v);   // shmat, not mmap
                    continue;
                }
                int flags = (int)v.Flags & (Mman.MAP_SHARED | Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS | Mman.MAP_GROWSDOWN
                    | Mman.MAP_NORESERVE | Mman.MAP_LOCKED) | Mman.MAP_FIXED;
                int fd = FileOf(v) is { } file ? openFiles[file] : -1;
                if (fd >= 0)
                    flags &= ~Mman.MAP_ANONYMOUS;
                else if (Hugetlb.IsHuge(v.Flags))
                    flags |= Mman.MAP_HUGETLB | (int)(v.Flags & Hugetlb.SizeMask);   // a file on hugetlbfs is huge by itself
                uint prot = v.Prot;
                if ((prot & Mman.PROT_WRITE) == 0 && (flags & Mman.MAP_PRIVATE) != 0 && pages.Resolve(v.Start, v.End).Any())
                {
                    WritableForFill.Add(v);
                    prot |= Mman.PROT_READ | Mman.PROT_WRITE;
                }
                mmaps.Add((v, new RemoteCall(Sysno.mmap, (long)v.Start, (long)(v.End - v.Start), prot, flags, fd, fd >= 0 ? (long)v.Pgoff : 0)));
            }
            var results = task.Puppet.Remote.Syscalls(mmaps.Select(m => m.Call).ToList());
            for (int i = 0; i < mmaps.Count; i++)
            {
                long at = RemoteTask.ThrowIfFailed(results[i], $"mmap(0x{mmaps[i].Vma.Start:x}) in task {task.Pid}");
                if ((ulong)at != mmaps[i].Vma.Start)
                    throw new CrispException($"task {task.Pid}: mmap(MAP_FIXED 0x{mmaps[i].Vma.Start:x}) gave 0x{at:x}");
            }
        }
        finally
        {
            task.Puppet.Remote.Syscalls(openFiles.Values.Select(fd => new RemoteCall(Sysno.close, fd)).ToList());
        }
    }

    /// <summary>Final protection of the VMAs <see cref="MapAll"/> left writable for the fill.</summary>
    public void ProtectAfterFill()
    {
        task.Puppet.Remote.CallAll(WritableForFill.Select(v => ($"mprotect(0x{v.Start:x})",
            new RemoteCall(Sysno.mprotect, (long)v.Start, (long)(v.End - v.Start), v.Prot))).ToList());
    }

    /// <summary>madvise for every advice bit a VMA had (MADV_DONTFORK, HUGEPAGE, …).</summary>
    public void Advise(Log log)
    {
        var advice = new List<(ulong Start, int Bit)>();
        var calls = new List<RemoteCall>();
        foreach (var v in mm.Vmas.Where(v => v.HasMadv && v.Madv != 0 && VmaStatus.Is(v.Status, VmaStatus.Regular)))
        {
            for (int bit = 0; bit < 64; bit++)
            {
                if ((v.Madv & (1UL << bit)) == 0)
                    continue;
                advice.Add((v.Start, bit));
                calls.Add(new RemoteCall(Sysno.madvise, (long)v.Start, (long)(v.End - v.Start), bit));
            }
        }
        if (calls.Count == 0)
            return;
        var results = task.Puppet.Remote.Syscalls(calls);   // one stop for all (a 100-thread tree: 100 stacks)
        for (int i = 0; i < results.Length; i++)
            if (results[i] < 0)
                log.Warn($"task {task.Pid}: madvise(0x{advice[i].Start:x}, {advice[i].Bit}) failed: errno {-results[i]}");
    }

    /// <summary>The file a VMA maps and the access it is opened with, or null for anonymous memory (and for what
    /// <see cref="MapAll"/> does not mmap: placeholders and SysV segments).</summary>
    private (string Path, int Flags)? FileOf(vma_entry v)
    {
        if (v.Status == VmaStatus.AioRing || !VmaStatus.Is(v.Status, VmaStatus.Regular) || VmaStatus.Is(v.Status, VmaStatus.Vdso)
            || VmaStatus.Is(v.Status, VmaStatus.Vvar) || VmaStatus.Is(v.Status, VmaStatus.Socket) || VmaStatus.Is(v.Status, VmaStatus.SysvIpc))
            return null;
        if (VmaStatus.Is(v.Status, VmaStatus.AnonShared))
            return (shared.PathOf(v.Shmid), FileIo.O_RDWR);
        if (VmaStatus.Is(v.Status, VmaStatus.Memfd))
            return (memfds.PathOfFile((uint)v.Shmid), (int)v.Fdflags & FileIo.O_ACCMODE);
        if (VmaStatus.Is(v.Status, VmaStatus.FilePrivate) || VmaStatus.Is(v.Status, VmaStatus.FileShared))
        {
            if (!files.TryGetValue((uint)v.Shmid, out var path))
                throw new CrispException($"task {task.Pid}: mapping 0x{v.Start:x} refers to file id {v.Shmid}, in neither files.img nor reg-files.img");
            return (path, (int)v.Fdflags & FileIo.O_ACCMODE);
        }
        return null;
    }

    private static (string, RemoteCall) Remap(ulong from, ulong length, ulong to)
        => ($"mremap(0x{from:x} → 0x{to:x})", new RemoteCall(Sysno.mremap, (long)from, (long)length, (long)length,
            MREMAP_MAYMOVE | MREMAP_FIXED, (long)to));

    /// <summary>A page-aligned range of <paramref name="length"/> bytes clear of <paramref name="busy"/> and the puppet.</summary>
    private static ulong FreeSpot(ulong length, List<(ulong Start, ulong End)> busy)
    {
        busy.Add((PuppetElf.BaseAddress, PuppetElf.End));
        for (ulong at = 0x100000000; at < 0x7ff000000000; at += 0x100000000)
            if (!busy.Any(b => at < b.End && b.Start < at + length))
                return at;
        throw new CrispException("no free address range to move the vdso through");
    }

    private static bool IsVdsoArea(MapsEntry m) => m.Kind is VmaKind.Vdso or VmaKind.Vvar or VmaKind.VvarVclock;
}
