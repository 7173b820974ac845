using Crisp.Images.PageServer;

namespace Crisp.Images.Pages;

/// <summary>A pagemap sent to a page server (--page-server): PS_IOV_OPEN2 for the map, then each run as
/// PS_IOV_ADD_F with its pages right after it. The server writes the files.</summary>
public sealed class PageServerSink : IPageSink
{
    private readonly PageServerClient _server;
    private readonly ulong _dstId;

    public PageServerSink(PageServerClient server, ImageFile mapFile)
    {
        _server = server;
        _dstId = PageServerIov.DstIdOf(mapFile);
        server.Open(mapFile);
    }

    public void Write(ReadOnlySpan<PageRun> runs, ReadOnlySpan<byte> data)
    {
        int offset = 0;
        foreach (var r in runs)
        {
            int len = r.DataBytes;
            _server.Add(_dstId, r.Vaddr, r.NrPages, r.Flags, data.Slice(offset, len));
            offset += len;
        }
    }

    public void Complete() { }

    public void Dispose() { }
}
