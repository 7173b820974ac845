namespace Crisp.Images.Pages;

/// <summary>A page sink that writes nothing: it keeps where in a <see cref="PageSpool"/> each run's pages were read
/// (a `--leave-running` dump's copy while the tree runs, <see cref="Resources.Memory.RunningCopy"/>). A batch that found
/// no room in the spool is forgotten: the dump's own stop reads those pages again.</summary>
internal sealed class CopiedPages(PageSpool spool) : IPageSink, IPageRoom
{
    private readonly List<(ulong Start, ulong Length, nint At)> _runs = [];

    /// <summary>Copied runs in the order they were read (address order: a plan's order).</summary>
    public IReadOnlyList<(ulong Start, ulong Length, nint At)> Runs => _runs;

    public bool TryTakeRoom(int length, out nint at) => spool.TryTake(length, out at);

    public unsafe void Write(ReadOnlySpan<PageRun> runs, ReadOnlySpan<byte> data)
    {
        fixed (byte* p = data)
        {
            if (data.Length == 0 || !spool.Holds((nint)p, data.Length))
                return;
            nint at = (nint)p;
            foreach (var run in runs)
            {
                if ((run.Flags & PagemapFlags.Present) == 0)
                    continue;
                ulong length = (ulong)run.NrPages * Linux.Mman.PageSize;
                _runs.Add((run.Vaddr, length, at));
                at += (nint)length;
            }
        }
    }

    public void Complete() { }
    public void Dispose() { }
}
