using Crisp.Images.Proto;

namespace Crisp.Images;

/// <summary>
/// Writes pagemap-PID.img (a pagemap_head, then one pagemap_entry per run) together with the raw
/// pages-N.img that holds the data of every PE_PRESENT run, in order. Adjacent runs are merged.
/// </summary>
public sealed class PagemapWriter : IDisposable
{
    public const int PageSize = Linux.Mman.PageSize;

    private readonly ImageWriter? _map;
    private readonly Stream? _pages;
    private pagemap_entry? _pending;
    private readonly ProgressMeter? _progress;
    /// <summary>--page-server: entries and pages go to the server instead (<see cref="_map"/> and <see cref="_pages"/> unused).</summary>
    private readonly PageServer.PageServerClient? _server;
    private readonly ulong _dstId;

    private PagemapWriter(ImageWriter? map, Stream? pages, ProgressMeter? progress, PageServer.PageServerClient? server = null, ulong dstId = 0)
    {
        _map = map;
        _pages = pages;
        _progress = progress;
        _server = server;
        _dstId = dstId;
    }

    /// <summary>A pagemap sent to a page server: each run as PS_IOV_ADD_F, its pages right after it.</summary>
    public static PagemapWriter ToServer(PageServer.PageServerClient server, ImageFile mapFile, ProgressMeter? progress)
    {
        server.Open(mapFile);
        return new PagemapWriter(null, null, progress, server, PageServer.PageServerIov.DstIdOf(mapFile));
    }

    public long PagesWritten { get; private set; }
    /// <summary>Time spent writing page data (CRIU's memwrite_time).</summary>
    public TimeSpan WriteTime { get; private set; }

    public static PagemapWriter Create(ImageDirectory dir, long pid, uint pagesId) => Create(dir, ImageFile.Pagemap(pid), pagesId);

    public static PagemapWriter Create(ImageDirectory dir, ImageFile mapFile, uint pagesId)
    {
        var map = dir.CreateWriter(mapFile);
        map.Write(new pagemap_head { PagesId = pagesId });
        var pages = dir.CreatePages(pagesId);
        return new PagemapWriter(map, pages, dir.Progress);
    }

    /// <summary>Stores the pages at <paramref name="vaddr"/>; <paramref name="data"/> is whole pages.</summary>
    public void AddPages(ulong vaddr, ReadOnlySpan<byte> data)
    {
        if (data.Length == 0)
            return;
        if (data.Length % PageSize != 0 || vaddr % PageSize != 0)
            throw new ArgumentException("page runs must be page-aligned and whole pages");
        if (_server is not null)
        {
            SendRun(vaddr, (uint)(data.Length / PageSize), PagemapFlags.Present, data);
            return;
        }
        WriteData(data);
        Add(vaddr, (uint)(data.Length / PageSize), PagemapFlags.Present);
    }

    /// <summary>Page server: one run, with its data when present (counted as written here).</summary>
    private void SendRun(ulong vaddr, uint nrPages, PagemapFlags flags, ReadOnlySpan<byte> data)
    {
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        _server!.Add(_dstId, vaddr, nrPages, flags, data);
        if (data.Length > 0)
        {
            _progress?.Add(data.Length);
            PagesWritten += data.Length / PageSize;
        }
        WriteTime += System.Diagnostics.Stopwatch.GetElapsedTime(start);
    }

    private void WriteData(ReadOnlySpan<byte> data)
    {
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        _pages!.Write(data);
        _progress?.Add(data.Length);
        WriteTime += System.Diagnostics.Stopwatch.GetElapsedTime(start);
        PagesWritten += data.Length / PageSize;
    }

    /// <summary>Stores a batch of runs whose pages lie back to back in <paramref name="data"/>, with one write.</summary>
    public void AddBatch(ReadOnlySpan<Linux.RemoteRange> runs, ReadOnlySpan<byte> data) => AddBatch(runs, data, []);

    /// <summary>As <see cref="AddBatch(ReadOnlySpan{Linux.RemoteRange}, ReadOnlySpan{byte})"/>, with runs kept in the
    /// parent images (PE_PARENT) placed before the data run of index Before (address order).</summary>
    public void AddBatch(ReadOnlySpan<Linux.RemoteRange> runs, ReadOnlySpan<byte> data, IReadOnlyList<(int Before, Linux.RemoteRange Range)> parentRuns)
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
        if (_server is not null)
        {
            SendBatch(runs, data, parentRuns);
            return;
        }
        if (data.Length > 0)
            WriteData(data);
        int hole = 0;
        for (int i = 0; i <= runs.Length; i++)
        {
            for (; hole < parentRuns.Count && parentRuns[hole].Before == i; hole++)
            {
                var h = parentRuns[hole].Range;
                Add(h.Address, (uint)(h.Length / PageSize), PagemapFlags.Parent);
                PagesInParent += (long)h.Length / PageSize;
            }
            if (i < runs.Length)
                Add(runs[i].Address, (uint)(runs[i].Length / PageSize), PagemapFlags.Present);
        }
    }

    private void SendBatch(ReadOnlySpan<Linux.RemoteRange> runs, ReadOnlySpan<byte> data, IReadOnlyList<(int Before, Linux.RemoteRange Range)> parentRuns)
    {
        int hole = 0, offset = 0;
        for (int i = 0; i <= runs.Length; i++)
        {
            for (; hole < parentRuns.Count && parentRuns[hole].Before == i; hole++)
            {
                var h = parentRuns[hole].Range;
                SendRun(h.Address, (uint)(h.Length / PageSize), PagemapFlags.Parent, []);
                PagesInParent += (long)h.Length / PageSize;
            }
            if (i < runs.Length)
            {
                int len = (int)runs[i].Length;
                SendRun(runs[i].Address, (uint)(len / PageSize), PagemapFlags.Present, data.Slice(offset, len));
                offset += len;
            }
        }
    }

    /// <summary>Pages recorded as kept in the parent images (CRIU's pages_skipped_parent).</summary>
    public long PagesInParent { get; private set; }

    /// <summary>Records a run whose data is not stored here (in the parent, or lazy).</summary>
    public void AddRun(ulong vaddr, uint nrPages, PagemapFlags flags)
    {
        if ((flags & PagemapFlags.Present) != 0)
            throw new ArgumentException("present runs need their data: use AddPages", nameof(flags));
        if (_server is not null)
            SendRun(vaddr, nrPages, flags, []);
        else
            Add(vaddr, nrPages, flags);
    }

    public void Dispose()
    {
        if (_server is not null)
            return;
        FlushPending();
        _map!.Dispose();
        _pages!.Dispose();
    }

    private void Add(ulong vaddr, uint nrPages, PagemapFlags flags)
    {
        if (_pending is { } p && p.Flags == (uint)flags && p.Vaddr + p.NrPages * PageSize == vaddr && p.NrPages + nrPages <= uint.MaxValue)
        {
            p.NrPages += nrPages;
            p.CompatNrPages = (uint)p.NrPages;
            return;
        }
        FlushPending();
        _pending = new pagemap_entry { Vaddr = vaddr, NrPages = nrPages, CompatNrPages = nrPages, Flags = (uint)flags };
    }

    private void FlushPending()
    {
        if (_pending is null)
            return;
        _map!.Write(_pending);
        _pending = null;
    }
}
