using System.Runtime.InteropServices;

namespace Crisp.Linux;

/// <summary>Private anonymous memory of crisp's own outside the GC heap, unmapped when released (or finalized). Large
/// pinned arrays count against the GC's budget for large objects: four 1 MiB page batches were enough to start a
/// full, compacting collection in the middle of a dump's memory stage (with `-R`, while the tree was frozen).</summary>
public sealed class MappedPages : SafeHandle
{
    /// <param name="populate">Backed at once (MAP_POPULATE): on this kind of VM a first touch costs ~10 µs a page and
    /// populating costs under 1 µs, so memory that will be written anyway (a page batch) is cheaper populated.</param>
    public MappedPages(int length, bool populate = false) : base(0, ownsHandle: true)
    {
        Length = length;
        SetHandle(Mman.Map(0, (ulong)length, Mman.PROT_READ | Mman.PROT_WRITE,
            Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS | (populate ? Mman.MAP_POPULATE : 0)));
    }

    public int Length { get; }
    public nint Address => handle;
    public override bool IsInvalid => handle == 0;

    public unsafe Span<byte> Span(int length) => new((void*)handle, Math.Min(length, Length));

    protected override bool ReleaseHandle()
    {
        Mman.Unmap(handle, (ulong)Length);
        return true;
    }
}
