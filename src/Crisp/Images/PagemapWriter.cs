using Crisp.Images.Pages;

namespace Crisp.Images;

/// <summary>
/// The front of a pagemap being dumped: checks and counts the runs and pages a dump hands it and passes them,
/// a batch at a time, to the page sink of the dump's transport (<see cref="IPageSink"/>: the images directory
/// or a page server).
/// </summary>
public sealed class PagemapWriter : IDisposable
{
    public const int PageSize = Linux.Mman.PageSize;

    private readonly IPageSink _sink;
    private readonly ProgressMeter? _progress;
    /// <summary>The runs of one batch, reused (no allocation per batch).</summary>
    private PageRun[] _runs = new PageRun[64];

    public PagemapWriter(IPageSink sink, ProgressMeter? progress)
    {
        _sink = sink;
        _progress = progress;
        _hashAhead = sink is IHashAheadSink { CanHashAhead: true } h ? h : null;
    }

    private readonly IHashAheadSink? _hashAhead;

    /// <summary>Whether the sink hashes the page data (<see cref="HashAhead"/> does something).</summary>
    public bool Hashes => _hashAhead is not null;

    /// <summary>Hashes a batch's data ahead of its <see cref="AddBatch(ReadOnlySpan{Linux.RemoteRange}, ReadOnlySpan{byte}, IReadOnlyList{ValueTuple{int, Linux.RemoteRange, PagemapFlags}}, bool)"/>
    /// with hashedAhead, on whichever thread has time (the page pipe's ordered step; batches in the order they are
    /// added); nothing where the sink does not hash.</summary>
    public void HashAhead(ReadOnlySpan<byte> data)
    {
        if (data.Length > 0)
            _hashAhead?.HashAhead(data);
    }

    public long PagesWritten { get; private set; }
    /// <summary>Pages recorded as kept in the parent images (CRIU's pages_skipped_parent).</summary>
    public long PagesInParent { get; private set; }
    /// <summary>Pages recorded as lazy (PE_LAZY, no data: a dump --lazy-pages serves them later).</summary>
    public long PagesLazy { get; private set; }
    /// <summary>Time spent writing page data (CRIU's memwrite_time).</summary>
    public TimeSpan WriteTime { get; private set; }

    public static PagemapWriter Create(ImageDirectory dir, ImageFile mapFile, uint pagesId) =>
        new(new PageFileSink(dir, mapFile, pagesId), dir.Progress);

    /// <summary>Stores the pages at <paramref name="vaddr"/>; <paramref name="data"/> is whole pages.</summary>
    public void AddPages(ulong vaddr, ReadOnlySpan<byte> data)
    {
        if (data.Length == 0)
            return;
        if (data.Length % PageSize != 0 || vaddr % PageSize != 0)
            throw new ArgumentException("page runs must be page-aligned and whole pages");
        HashAhead(data);
        Send([new PageRun(vaddr, (uint)(data.Length / PageSize), PagemapFlags.Present)], data);
    }

    /// <summary>Stores a batch of runs whose pages lie back to back in <paramref name="data"/>, with one write.</summary>
    public void AddBatch(ReadOnlySpan<Linux.RemoteRange> runs, ReadOnlySpan<byte> data, bool hashedAhead = false) => AddBatch(runs, data, [], hashedAhead);

    /// <summary>As <see cref="AddBatch(ReadOnlySpan{Linux.RemoteRange}, ReadOnlySpan{byte})"/>, with runs kept in the
    /// parent images (PE_PARENT) or lazy (PE_LAZY) placed before the data run of index Before (address order).</summary>
    public void AddBatch(ReadOnlySpan<Linux.RemoteRange> runs, ReadOnlySpan<byte> data, IReadOnlyList<(int Before, Linux.RemoteRange Range, PagemapFlags Flags)> parentRuns, bool hashedAhead = false)
    {
        long total = 0;
        foreach (var r in runs)
        {
            if (r.Length % PageSize != 0 || r.Address % PageSize != 0)
                throw new ArgumentException("page runs must be page-aligned and whole pages");
            total += (long)r.Length;
        }
        if (total != data.Length)
            throw new ArgumentException($"runs cover {total} bytes, the batch holds {data.Length}");
        int count = runs.Length + parentRuns.Count;
        if (_runs.Length < count)
            _runs = new PageRun[Math.Max(count, _runs.Length * 2)];
        int n = 0, hole = 0;
        for (int i = 0; i <= runs.Length; i++)
        {
            for (; hole < parentRuns.Count && parentRuns[hole].Before == i; hole++)
            {
                var (_, h, flags) = parentRuns[hole];
                _runs[n++] = new PageRun(h.Address, (uint)(h.Length / PageSize), flags);
                if ((flags & PagemapFlags.Parent) != 0)
                    PagesInParent += (long)h.Length / PageSize;
                else
                    PagesLazy += (long)h.Length / PageSize;
            }
            if (i < runs.Length)
                _runs[n++] = new PageRun(runs[i].Address, (uint)(runs[i].Length / PageSize), PagemapFlags.Present);
        }
        if (!hashedAhead)
            HashAhead(data);
        Send(_runs.AsSpan(0, n), data);
    }

    /// <summary>Whether the sink keeps pages in memory of its own (<see cref="TryTakeRoom"/> may give room).</summary>
    public bool HoldsInMemory => _sink is IPageRoom;

    /// <summary>Room in the sink's own memory to read a batch's <paramref name="length"/> bytes into, where the sink
    /// holds pages in memory (<see cref="IPageRoom"/>, a `--leave-running` dump's spool); false otherwise.</summary>
    public bool TryTakeRoom(int length, out nint at)
    {
        at = 0;
        return _sink is IPageRoom room && room.TryTakeRoom(length, out at);
    }

    /// <summary>Records a run whose data is not stored here (in the parent, or lazy).</summary>
    public void AddRun(ulong vaddr, uint nrPages, PagemapFlags flags)
    {
        if ((flags & PagemapFlags.Present) != 0)
            throw new ArgumentException("present runs need their data: use AddPages", nameof(flags));
        if ((flags & PagemapFlags.Parent) != 0)
            PagesInParent += nrPages;
        Send([new PageRun(vaddr, nrPages, flags)], []);
    }

    public void Dispose()
    {
        try
        {
            _sink.Complete();
        }
        finally
        {
            _sink.Dispose();
        }
    }

    private void Send(ReadOnlySpan<PageRun> runs, ReadOnlySpan<byte> data)
    {
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        _sink.Write(runs, data);
        WriteTime += System.Diagnostics.Stopwatch.GetElapsedTime(start);
        if (data.Length > 0)
        {
            _progress?.Add(data.Length);
            PagesWritten += data.Length / PageSize;
        }
    }
}
