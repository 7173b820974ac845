using Crisp.Images.Proto;

namespace Crisp.Images;

/// <summary>
/// A task's pagemap loaded for restore: finds where the pages for a virtual address live in
/// pages-N.img, and reads them with positioned reads.
/// </summary>
public sealed class PagemapReader : IDisposable
{
    private const int PageSize = PagemapWriter.PageSize;
    private Run[] _runs;
    private readonly Security.Encryption.StoredFile? _pages;
    /// <summary>Pages files by source: [0] this directory's, then the parent chain's (DIR/parent, its parent…).</summary>
    private Security.Encryption.StoredFile?[] _sources;
    private PagemapReader? _parent;
    private string? _missingParent;

    /// <summary>For a restore: every page this pagemap names can be read (a PE_PARENT run needs DIR/parent).</summary>
    public void RequireAllPages()
    {
        if (_missingParent is { } why)
            throw new CrispException(why);
    }

    /// <summary>One pagemap entry and, when present, the offset of its data in pages-N.img (of the parent chain's
    /// <paramref name="Source"/>-th directory: a PE_PARENT run is replaced by the runs that hold its pages there).</summary>
    public readonly record struct Run(ulong Vaddr, uint NrPages, PagemapFlags Flags, long FileOffset, int Source = 0)
    {
        public ulong End => Vaddr + (ulong)NrPages * PageSize;
        public bool IsPresent => (Flags & PagemapFlags.Present) != 0;
    }

    private PagemapReader(uint pagesId, Run[] runs, string pagesPath, Security.Encryption.StoredFile? pages)
    {
        PagesId = pagesId;
        _runs = runs;
        PagesPath = pagesPath;
        _pages = pages;
        _sources = [pages];
    }

    public uint PagesId { get; }
    public string PagesPath { get; }
    /// <summary>The progress of the restore reading these pages (see <see cref="ImageDirectory.Progress"/>).</summary>
    public ProgressMeter? Progress { get; private init; }
    public IReadOnlyList<Run> Runs => _runs;
    public long PresentPages => _runs.Where(r => r.IsPresent).Sum(r => (long)r.NrPages);

    public static PagemapReader Open(ImageDirectory dir, long pid) => Open(dir, ImageFile.Pagemap(pid));

    /// <param name="throughParent">Replace PE_PARENT runs by where DIR/parent holds their pages (restore); false:
    /// the runs as written (a dump that only asks what its parent covers).</param>
    public static PagemapReader Open(ImageDirectory dir, ImageFile mapFile, bool throughParent = true)
    {
        string mapPath = dir.PathOf(mapFile);
        using var reader = dir.OpenReader(mapFile);
        var head = reader.Read<pagemap_head>() ?? throw new ImageFormatException(mapPath, reader.Position, "missing pagemap_head");
        var runs = new List<Run>();
        long offset = 0;
        while (reader.Read<pagemap_entry>() is { } e)
        {
            // Old images say in_parent instead of flags; treat no flags as present like CRIU does.
            var flags = e.HasFlags ? (PagemapFlags)e.Flags : e.InParent ? PagemapFlags.Parent : PagemapFlags.Present;
            uint nrPages = PagemapEntries.NrPages(e, mapPath);
            runs.Add(new Run(e.Vaddr, nrPages, flags, (flags & PagemapFlags.Present) != 0 ? offset : -1));
            if ((flags & PagemapFlags.Present) != 0)
                offset += (long)nrPages * PageSize;
        }
        runs.Sort((a, b) => a.Vaddr.CompareTo(b.Vaddr));
        string pagesPath = dir.PathOf(ImageFile.Pages(head.PagesId));
        var handle = dir.Exists(ImageFile.Pages(head.PagesId)) ? dir.OpenPages(ImageFile.Pages(head.PagesId)) : null;
        if (handle is not null && handle.Length < offset)
        {
            long len = handle.Length;
            handle.Dispose();
            throw new ImageFormatException(pagesPath, len, $"holds {len} bytes but {mapPath} describes {offset}");
        }
        var result = new PagemapReader(head.PagesId, [.. runs], pagesPath, handle) { Progress = dir.Progress };
        if (throughParent && runs.Any(r => (r.Flags & PagemapFlags.Parent) != 0))
        {
            try
            {
                result.ReadThroughParent(dir, mapFile, mapPath);
            }
            catch
            {
                result.Dispose();
                throw;
            }
        }
        return result;
    }

    /// <summary>A dump of a pre-dump chain: its PE_PARENT runs are read from DIR/parent (CRIU's parent link), whose
    /// pagemap for the same task may point further up.</summary>
    private void ReadThroughParent(ImageDirectory dir, ImageFile mapFile, string mapPath)
    {
        string parentPath = System.IO.Path.Combine(dir.Path, "parent");
        if (!Directory.Exists(parentPath))
        {
            // Read as it is (crisp show, tools); a restore stops at RequireAllPages.
            _missingParent = $"{mapPath}: has pages kept in a parent checkpoint, but {parentPath} is missing";
            return;
        }
        // The parent's files against its own manifest: its pagemap now, its pages as they stream (or when opened,
        // outside a restore).
        var parentDir = ImageDirectory.Open(parentPath, dir.Key, verifyOnOpen: true);
        parentDir.Progress = dir.Progress;
        parentDir.Pending = dir.Pending;
        if (!parentDir.Exists(mapFile))
            throw new ImageFormatException(mapPath, 0, $"has pages kept in the parent checkpoint, which has no {mapFile.FileName}");
        ImageManifest.VerifyFile(parentDir, mapFile.FileName);
        _parent = Open(parentDir, mapFile);
        var runs = new List<Run>(_runs.Length);
        foreach (var r in _runs)
        {
            if ((r.Flags & PagemapFlags.Parent) == 0)
            {
                runs.Add(r);
                continue;
            }
            ulong covered = 0;
            foreach (var (vaddr, length, offset, source) in _parent.Resolve(r.Vaddr, r.End))
            {
                runs.Add(new Run(vaddr, (uint)(length / PageSize), PagemapFlags.Present, offset, source + 1));
                covered += length;
            }
            if (covered != r.End - r.Vaddr)
                throw new ImageFormatException(mapPath, 0, $"pages 0x{r.Vaddr:x}-0x{r.End:x} are kept in the parent checkpoint ({parentPath}), which lacks some of them");
        }
        _runs = [.. runs];
        _sources = [_pages, .. _parent._sources];
    }

    /// <summary>The run holding <paramref name="vaddr"/>, if any.</summary>
    public bool TryFind(ulong vaddr, out Run run)
    {
        int lo = 0, hi = _runs.Length - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            var r = _runs[mid];
            if (vaddr < r.Vaddr)
                hi = mid - 1;
            else if (vaddr >= r.End)
                lo = mid + 1;
            else
            {
                run = r;
                return true;
            }
        }
        run = default;
        return false;
    }

    /// <summary>Offset in pages-N.img of the byte at <paramref name="vaddr"/>; -1 when not stored here.</summary>
    public long FileOffsetOf(ulong vaddr) =>
        TryFind(vaddr, out var r) && r.IsPresent ? r.FileOffset + (long)(vaddr - r.Vaddr) : -1;

    /// <summary>Stored runs overlapping [start, end), clipped, with their file offsets.</summary>
    public IEnumerable<(ulong Vaddr, ulong Length, long FileOffset, int Source)> Resolve(ulong start, ulong end)
    {
        // Binary search for the first run ending after start: a task with many VMAs and runs stays linear.
        int lo = 0, hi = _runs.Length;
        while (lo < hi)
        {
            int mid = (lo + hi) >>> 1;
            if (_runs[mid].End <= start)
                lo = mid + 1;
            else
                hi = mid;
        }
        for (int i = lo; i < _runs.Length && _runs[i].Vaddr < end; i++)
        {
            var r = _runs[i];
            if (!r.IsPresent)
                continue;
            ulong s = Math.Max(r.Vaddr, start), e = Math.Min(r.End, end);
            yield return (s, e - s, r.FileOffset + (long)(s - r.Vaddr), r.Source);
        }
    }

    /// <summary>Reads stored bytes at <paramref name="vaddr"/> into <paramref name="buffer"/> (one positioned read).</summary>
    public void ReadPages(ulong vaddr, Span<byte> buffer)
    {
        long offset = FileOffsetOf(vaddr);
        if (offset < 0 || !TryFind(vaddr, out var r) || vaddr + (ulong)buffer.Length > r.End)
            throw new ArgumentOutOfRangeException(nameof(vaddr), $"0x{vaddr:x}+{buffer.Length} is not within one stored run");
        ReadStored(buffer, offset, r.Source);
    }

    /// <summary>Reads page data at <paramref name="fileOffset"/> of the pages file (decrypted when it is encrypted).</summary>
    public void ReadStored(Span<byte> buffer, long fileOffset, int source = 0)
    {
        var pages = _sources[source];
        if (pages is null)
            throw new ImageFormatException(source == 0 ? PagesPath : $"{PagesPath} (parent {source})", 0, "file not found");
        pages.ReadExactly(buffer, fileOffset);
    }

    /// <summary>Completes the manifest checks of the pages files read through this pagemap (its own and the
    /// parent chain's) that were left to the stream: the restore of a task's memory ends with this.</summary>
    public void VerifyRest()
    {
        foreach (var source in _sources)
            source?.VerifyRest();
    }

    public void Dispose()
    {
        _pages?.Dispose();
        _parent?.Dispose();
    }
}
