using Crisp.Linux;

namespace Crisp.Resources.Memory;

/// <summary>One batch of page data on its way between a task and an image file: a fixed buffer and
/// the remote ranges it holds back to back.
/// Batches are made once per process and go round (<see cref="PagePipe"/>), so the memory crisp moves pages
/// through stays the same few MiB whatever the size of the tree.</summary>
internal sealed class PageBatch
{
    private readonly List<RemoteRange> _ranges = new(64);
    private readonly List<(int Before, RemoteRange Range, Images.PagemapFlags Flags)> _parentRuns = [];

    public PageBatch(int capacity, bool populate = false) => _memory = new MappedPages(capacity, populate);

    /// <summary>The batch's own memory (outside the GC heap: see <see cref="MappedPages"/>).</summary>
    private readonly MappedPages _memory;
    private nint _room;
    public int Bytes { get; private set; }
    public int Room => Held ? 0 : _memory.Length - Bytes;
    public bool IsEmpty => Bytes == 0;
    /// <summary>Restore: whether the ranges are writable by process_vm_writev (else /proc/PID/mem).
    /// Dump: whether they are readable by process_vm_readv.</summary>
    public bool Accessible { get; set; }

    public ReadOnlySpan<RemoteRange> Ranges => System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_ranges);
    /// <summary>Dump: runs recorded without data — pages the parent images hold (PE_PARENT) or lazy pages served
    /// later (PE_LAZY) —, each with the index of the range it comes before, so the pagemap keeps address order.</summary>
    public IReadOnlyList<(int Before, RemoteRange Range, Images.PagemapFlags Flags)> ParentRuns => _parentRuns;
    public bool HasNothing => Bytes == 0 && _parentRuns.Count == 0;
    /// <summary>Filled by the pipe's own thread before it drains it (<see cref="PagePipe.FillOnBothSides"/>).</summary>
    public bool FillOnDrain { get; set; }
    /// <summary>Through the pipe's ordered step (<see cref="PagePipe"/>'s inOrder).</summary>
    public bool Stepped { get; set; }

    /// <summary>The batch's bytes: in its own memory, or in the sink's room (<see cref="UseRoom"/>).</summary>
    public unsafe Span<byte> Data => _room != 0 ? new Span<byte>((void*)_room, Bytes) : _memory.Span(Bytes);

    /// <summary>Dump: the batch's bytes are read into <paramref name="at"/> (room the page sink holds, at least
    /// <see cref="Bytes"/> long) instead of the batch's own memory, until <see cref="Clear"/>.</summary>
    public void UseRoom(nint at) => _room = at;

    /// <summary>Dump: pages already held in memory at <paramref name="at"/> (a copy made while the tree ran,
    /// <see cref="RunningCopy"/>): the batch is that one range, its data that memory, nothing to read.</summary>
    public void Hold(RemoteRange range, nint at)
    {
        if (!IsEmpty || range.Length > int.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(range), "a held range is a batch of its own, under 2 GiB");
        _ranges.Add(range);
        Bytes = (int)range.Length;
        _room = at;
        Held = true;
    }

    /// <summary>A further range whose data follows the held batch's in memory (at <see cref="HeldEnd"/>).</summary>
    public void HoldMore(RemoteRange range)
    {
        if (!Held || (ulong)Bytes + range.Length > int.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(range), "only a held batch takes more held ranges, under 2 GiB");
        _ranges.Add(range);
        Bytes += (int)range.Length;
    }

    /// <summary>Where the held data ends: a range held from there joins the batch.</summary>
    public nint HeldEnd => Held ? _room + Bytes : 0;

    /// <summary>The data is held already (<see cref="Hold"/>): the pipe does not fill the batch.</summary>
    public bool Held { get; private set; }

    /// <summary>Appends a range (at most <see cref="Room"/> bytes).</summary>
    public void Add(RemoteRange range)
    {
        if (range.Length > (ulong)Room)
            throw new ArgumentOutOfRangeException(nameof(range), "range does not fit the batch");
        _ranges.Add(range);
        Bytes += (int)range.Length;
    }

    /// <summary>Records a run without data (after the ranges added so far): in the parent images, or lazy.</summary>
    public void AddParentRun(RemoteRange range, Images.PagemapFlags flags) => _parentRuns.Add((_ranges.Count, range, flags));

    public void Clear()
    {
        _parentRuns.Clear();
        _ranges.Clear();
        Bytes = 0;
        Accessible = false;
        _room = 0;
        FillOnDrain = false;
        Stepped = false;
        Held = false;
    }
}
