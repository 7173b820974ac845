namespace Crisp.Images.PageServer;

/// <summary>`crisp page-server`: one dump's connection, received into an images directory as pagemap-*.img and
/// pages-N.img (CRIU's protocol, so a CRIU dump can send here too). The session is complete only when the dump
/// says PS_IOV_CLOSE; a connection that ends before that, or sends anything that is not a page server command,
/// fails the session and every file it wrote is removed — no half checkpoint is left to restore from.</summary>
public sealed class PageServerSession(Stream stream, ImageDirectory dir, Log log, bool acceptCompression = false)
{
    private const int ChunkBytes = 1 << 20;
    /// <summary>Larger runs are not pages of a real address space (47-bit user space): garbage on the port.</summary>
    private const ulong MaxPages = 1UL << 35;

    private readonly byte[] _iov = new byte[PageServerIov.Size];
    private readonly byte[] _chunk = GC.AllocateUninitializedArray<byte>(ChunkBytes);
    private readonly List<string> _written = [];
    private PagemapWriter? _writer;
    private uint _nextPagesId = 1;
    private long _commands;
    /// <summary>The open pagemap's pages come as LZ4 frames (--compress on both ends).</summary>
    private bool _compressed;
    private byte[]? _packed;

    /// <summary>Bytes the pages took on the connection (frames included).</summary>
    public long WireBytes { get; private set; }

    public long PagesReceived { get; private set; }
    public int Pagemaps { get; private set; }

    public void Run()
    {
        try
        {
            Receive();
        }
        catch
        {
            _writer?.Dispose();
            _writer = null;
            foreach (var path in _written)
                File.Delete(path);
            throw;
        }
    }

    private void Receive()
    {
        for (;;)
        {
            if (!ReadExactly(_iov))
                throw new CrispException(_commands == 0
                    ? $"page server: the dump's connection ended before its first command{(stream is System.Net.Security.SslStream ? " (did the dump refuse this server's TLS certificate?)" : "")}"
                    : "page server: the dump's connection ended before it sent every page (no PS_IOV_CLOSE): the pages received were removed");
            _commands++;
            var iov = PageServerIov.Read(_iov);
            switch (iov.Command)
            {
                case PageServerIov.Open:
                case PageServerIov.Open2:
                    OpenMap(iov);
                    _compressed = iov.Command == PageServerIov.Open2 && acceptCompression && (iov.Flags & PageStreamCompression.Offer) != 0;
                    if (iov.Command == PageServerIov.Open2)
                        Answer([(byte)((HasParent(iov) ? 1 : 0) | (_compressed ? PageStreamCompression.Accepted : 0))]);
                    break;
                case PageServerIov.Parent:
                    Answer(BitConverter.GetBytes(HasParent(iov) ? 1 : 0));
                    break;
                case PageServerIov.Add:
                case PageServerIov.AddF:
                case PageServerIov.Hole:
                    var flags = iov.Command == PageServerIov.AddF ? (PagemapFlags)iov.Flags
                        : iov.Command == PageServerIov.Add ? PagemapFlags.Present : PagemapFlags.Parent;
                    AddRun(iov, flags);
                    break;
                case PageServerIov.Close:
                case PageServerIov.ForceClose:
                    _writer?.Dispose();
                    _writer = null;
                    Answer(BitConverter.GetBytes(0));
                    // As CRIU: wait for the dump to close its end (no TIME_WAIT here).
                    try { while (stream.Read(_chunk) > 0) { } } catch (IOException) { }
                    log.Info($"page server: {Pagemaps} pagemap(s), {PagesReceived} pages received into {dir.Path} ({WireBytes} bytes on the connection)");
                    return;
                default:
                    throw new CrispException($"page server: unknown command 0x{iov.Cmd:x} from the dump (not CRIU's page server protocol?): the pages received were removed");
            }
        }
    }

    private void OpenMap(PageServerIov iov)
    {
        var map = PageServerIov.MapOf(iov.DstId)
            ?? throw new CrispException($"page server: unknown pagemap type in dst_id 0x{iov.DstId:x}: the pages received were removed");
        _writer?.Dispose();
        uint pagesId = _nextPagesId++;
        _written.Add(dir.PathOf(map));
        _written.Add(dir.PathOf(ImageFile.Pages(pagesId)));
        _writer = PagemapWriter.Create(dir, map, pagesId);
        Pagemaps++;
        log.Debug($"page server: receiving {map.FileName} (pages-{pagesId}.img)");
    }

    private bool HasParent(PageServerIov iov) =>
        PageServerIov.MapOf(iov.DstId) is { } map && File.Exists(Path.Combine(dir.Path, "parent", map.FileName));

    private void AddRun(PageServerIov iov, PagemapFlags flags)
    {
        if (_writer is null)
            throw new CrispException("page server: pages sent before any pagemap was opened: the pages received were removed");
        if (iov.NrPages == 0 || iov.NrPages > MaxPages || iov.Vaddr % PagemapWriter.PageSize != 0)
            throw new CrispException($"page server: a run of {iov.NrPages} pages at 0x{iov.Vaddr:x} is not a run of pages: the pages received were removed");
        if ((flags & PagemapFlags.Present) == 0)
        {
            _writer.AddRun(iov.Vaddr, (uint)iov.NrPages, flags);
            return;
        }
        ulong left = iov.NrPages * PagemapWriter.PageSize, vaddr = iov.Vaddr;
        while (left > 0)
        {
            int n = _compressed ? ReadFrame(left, vaddr) : (int)Math.Min(left, (ulong)_chunk.Length);
            if (!_compressed && !ReadExactly(_chunk.AsSpan(0, n)))
                throw new CrispException($"page server: the dump's connection ended in the middle of the pages at 0x{vaddr:x}: the pages received were removed");
            if (!_compressed)
                WireBytes += n;
            _writer.AddPages(vaddr, _chunk.AsSpan(0, n));
            vaddr += (ulong)n;
            left -= (ulong)n;
            PagesReceived += n / PagemapWriter.PageSize;
        }
    }

    /// <summary>One LZ4 frame unpacked into the chunk buffer; returns its page bytes.</summary>
    private int ReadFrame(ulong left, ulong vaddr)
    {
        Span<byte> header = stackalloc byte[PageStreamCompression.HeaderSize];
        var packed = _packed ??= GC.AllocateUninitializedArray<byte>(PageStreamCompression.FrameBytes);
        if (!ReadExactly(header))
            throw new CrispException($"page server: the dump's connection ended in the middle of the pages at 0x{vaddr:x}: the pages received were removed");
        var (stored, raw) = PageStreamCompression.ReadHeader(header, left);
        if (!ReadExactly(packed.AsSpan(0, stored)))
            throw new CrispException($"page server: the dump's connection ended in the middle of the pages at 0x{vaddr:x}: the pages received were removed");
        PageStreamCompression.Unpack(packed.AsSpan(0, stored), _chunk.AsSpan(0, raw));
        WireBytes += PageStreamCompression.HeaderSize + stored;
        return raw;
    }

    /// <summary>False when the stream ends first.</summary>
    private bool ReadExactly(Span<byte> buffer)
    {
        int got = 0;
        try
        {
            while (got < buffer.Length)
            {
                int n = stream.Read(buffer[got..]);
                if (n == 0)
                    return false;
                got += n;
            }
        }
        catch (IOException e)
        {
            throw new CrispException($"page server: the dump's connection failed ({(e.InnerException ?? e).Message.ReplaceLineEndings(" ")}): the pages received were removed");
        }
        return true;
    }

    private void Answer(ReadOnlySpan<byte> bytes)
    {
        try
        {
            stream.Write(bytes);
            stream.Flush();
        }
        catch (IOException e)
        {
            throw new CrispException($"page server: the dump's connection failed ({(e.InnerException ?? e).Message.ReplaceLineEndings(" ")}): the pages received were removed");
        }
    }
}
