using Crisp.Images.Proto;

namespace Crisp.Images.Pages;

/// <summary>A pagemap into the images directory: pagemap-*.img (a pagemap_head, then one entry per run,
/// adjacent runs merged) and the raw pages-N.img, one write per batch, encrypted and hashed as it streams
/// (<see cref="ImageDirectory.CreatePages"/>).</summary>
public sealed class PageFileSink : IPageSink, IHashAheadSink
{
    private readonly ImageWriter _map;
    private readonly Stream _pages;
    private pagemap_entry? _pending;

    public PageFileSink(ImageDirectory dir, ImageFile mapFile, uint pagesId)
    {
        _map = dir.CreateWriter(mapFile);
        try
        {
            _map.Write(new pagemap_head { PagesId = pagesId });
            _pages = dir.CreatePages(pagesId);
        }
        catch
        {
            _map.Dispose();
            throw;
        }
    }

    public void Write(ReadOnlySpan<PageRun> runs, ReadOnlySpan<byte> data)
    {
        if (data.Length > 0)
            _pages.Write(data);
        foreach (var r in runs)
            Add(r);
    }

    public bool CanHashAhead => _pages is Manifest.HashingStream;

    public void HashAhead(ReadOnlySpan<byte> data) => ((Manifest.HashingStream)_pages).HashAhead(data);

    public void Complete() => FlushPending();

    public void Dispose()
    {
        try
        {
            _map.Dispose();
        }
        finally
        {
            _pages.Dispose();
        }
    }

    private void Add(PageRun run)
    {
        if (_pending is { } p && p.Flags == (uint)run.Flags && p.Vaddr + p.NrPages * PagemapWriter.PageSize == run.Vaddr && p.NrPages + run.NrPages <= uint.MaxValue)
        {
            p.NrPages += run.NrPages;
            p.CompatNrPages = (uint)p.NrPages;
            return;
        }
        FlushPending();
        _pending = new pagemap_entry { Vaddr = run.Vaddr, NrPages = run.NrPages, CompatNrPages = run.NrPages, Flags = (uint)run.Flags };
    }

    private void FlushPending()
    {
        if (_pending is null)
            return;
        _map.Write(_pending);
        _pending = null;
    }
}
