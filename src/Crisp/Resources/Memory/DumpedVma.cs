using Crisp.Images.Proto;
using Crisp.Linux.Proc;

namespace Crisp.Resources.Memory;

/// <summary>One VMA of a dumped task: its maps line (maybe trimmed around crisp's scratch pages) and the
/// vma_entry written for it.</summary>
public sealed record DumpedVma(MapsEntry Maps, vma_entry Entry)
{
    public ulong Start => Entry.Start;
    public ulong End => Entry.End;
    /// <summary>Registered for userfaultfd write-protection (smaps VmFlags "uw"): crisp's dirty tracking.</summary>
    public bool WriteProtectRegistered { get; init; }
    /// <summary>Every page of it mapped by this task alone when its smaps was read (no Shared_Clean/Shared_Dirty, no
    /// swap, no KSM): the dump need not read pagemap's per-page exclusive bit to keep forked sharing (see
    /// <see cref="PrivatePagesDump"/>).</summary>
    public bool AllExclusive { get; init; }

    public bool Is(uint status) => VmaStatus.Is(Entry.Status, status);

    /// <summary>Private memory whose pages are stored in pagemap-PID.img (the vdso's too, as CRIU; never the
    /// vvar's, which are the kernel's data pages), and an AIO ring's (CRIU stores those too).</summary>
    public bool HasPrivatePages => Is(VmaStatus.AioRing) || Is(VmaStatus.Regular) && !Is(VmaStatus.Vvar) && (Is(VmaStatus.AnonPrivate) || Is(VmaStatus.FilePrivate));
}
