using System.Net;
using System.Net.Sockets;

namespace Crisp.Images.PageServer;

/// <summary>The dump's end of a page server connection (--page-server): pagemaps and their pages go over one TCP
/// connection in CRIU's protocol instead of into pagemap-*.img/pages-*.img. Opened before the tree is seized, so an
/// unreachable server fails the dump before anything is touched; <see cref="Finish"/> sends PS_IOV_CLOSE and waits
/// for the server's status once every page is sent. A dump that fails just drops the connection: the server then
/// sees the stream end before PS_IOV_CLOSE and keeps nothing.</summary>
public sealed class PageServerClient : IDisposable
{
    private readonly Stream _stream;
    private readonly bool _owned;
    private readonly byte[] _iov = new byte[PageServerIov.Size];

    /// <summary>A client on a connection that is already open (crisp migrate's, which goes on after the pages):
    /// disposing the client leaves <paramref name="stream"/> open unless <paramref name="owned"/>.</summary>
    public PageServerClient(Stream stream, string peer, bool owned = false)
    {
        _stream = stream;
        _owned = owned;
        Peer = peer;
        _overTls = stream is System.Net.Security.SslStream;
    }

    /// <summary>Over TLS 1.3 a server that refuses this end's certificate can only hang up after the handshake.</summary>
    private readonly bool _overTls;
    private bool _answered;

    public string Peer { get; }

    /// <summary>Connects (over TLS with <paramref name="tls"/>): any failure is one line naming the server.</summary>
    public static PageServerClient Connect(string address, int port, TimeSpan timeout, Security.Tls.TlsSettings? tls = null, bool compress = false)
    {
        string peer = $"{address}:{port}";
        var stream = TcpConnect(address, port, timeout, $"page server {peer}");
        return new PageServerClient(tls is null ? stream : tls.Client(stream, address, $"page server {peer}", timeout), peer, owned: true) { OfferCompression = compress };
    }

    /// <summary>--compress: offer LZ4 frames at each PS_IOV_OPEN2 (<see cref="PageStreamCompression"/>).</summary>
    public bool OfferCompression { get; init; }
    private bool _compressing;
    private byte[]? _frame;

    /// <summary>Page bytes given to <see cref="Add"/>, and the bytes they took on the connection.</summary>
    public long PageBytes { get; private set; }
    public long WireBytes { get; private set; }

    /// <summary>A TCP connection to address:port as a stream; failures are one line starting with <paramref name="what"/>.</summary>
    public static NetworkStream TcpConnect(string address, int port, TimeSpan timeout, string what)
    {
        if (!IPAddress.TryParse(address, out var ip))
        {
            try { ip = Dns.GetHostAddresses(address).First(); }
            catch (Exception e) when (e is SocketException or InvalidOperationException or ArgumentException)
            {
                throw new CrispException($"{what}: cannot resolve the address");
            }
        }
        var socket = new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            using var cts = new CancellationTokenSource(timeout);
            socket.ConnectAsync(new IPEndPoint(ip, port), cts.Token).AsTask().GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            socket.Dispose();
            throw new CrispException($"{what}: cannot connect ({(e is SocketException se ? se.Message : "timed out")})");
        }
        return new NetworkStream(socket, ownsSocket: true);
    }

    /// <summary>PS_IOV_OPEN2 for a pagemap: the runs sent next belong to it. Returns whether the server has its
    /// parent (a previous pre-dump) for it.</summary>
    public bool Open(ImageFile map)
    {
        uint cmd = PageServerIov.Open2 | (OfferCompression ? PageStreamCompression.Offer << 16 : 0);
        Send(new PageServerIov(cmd, 0, 0, PageServerIov.DstIdOf(map)), []);
        Span<byte> answer = stackalloc byte[1];
        Receive(answer, "the answer to PS_IOV_OPEN2");
        _compressing = OfferCompression && (answer[0] & PageStreamCompression.Accepted) != 0;
        return (answer[0] & 1) != 0;
    }

    /// <summary>One pagemap run (PS_IOV_ADD_F with its flags), its pages after it when they are present.</summary>
    public void Add(ulong dstId, ulong vaddr, ulong nrPages, PagemapFlags flags, ReadOnlySpan<byte> data)
    {
        PageBytes += data.Length;
        Send(new PageServerIov(PageServerIov.WithFlags(PageServerIov.AddF, flags), nrPages, vaddr, dstId), data, _compressing);
    }

    /// <summary>PS_IOV_GET (lazy pages): asks for the pages at <paramref name="vaddr"/> of task <paramref name="pid"/>
    /// (dst_id is the virtual pid itself here, as CRIU's lazy-pages sends it). The server answers PS_IOV_ADD_F with
    /// the number of pages it sends — possibly fewer than asked — and the pages. Returns that number.</summary>
    public int Get(int pid, ulong vaddr, Span<byte> into)
    {
        ulong asked = (ulong)into.Length / PagemapWriter.PageSize;
        Send(new PageServerIov(PageServerIov.Get, asked, vaddr, (ulong)pid), []);
        Receive(_iov, "the answer to PS_IOV_GET");
        var answer = PageServerIov.Read(_iov);
        if (answer.Command != PageServerIov.AddF || answer.Vaddr != vaddr || answer.DstId != (ulong)pid || answer.NrPages == 0 || answer.NrPages > asked)
            throw new CrispException($"page server {Peer}: asked for {asked} pages of task {pid} at 0x{vaddr:x}, it answered command 0x{answer.Cmd:x} " +
                $"with {answer.NrPages} pages at 0x{answer.Vaddr:x} of {answer.DstId}");
        Receive(into[..(int)(answer.NrPages * PagemapWriter.PageSize)], "the pages of PS_IOV_GET");
        return (int)answer.NrPages;
    }

    /// <summary>PS_IOV_CLOSE: every page is sent; the server answers once it has them all.</summary>
    public void Finish()
    {
        Send(new PageServerIov(PageServerIov.Close, 0, 0, 0), []);
        _stream.Flush();
        Span<byte> status = stackalloc byte[4];
        Receive(status, "the final status");
        int code = BitConverter.ToInt32(status);
        if (code != 0)
            throw new CrispException($"page server {Peer}: it reported status {code} for the pages sent");
    }

    public void Dispose()
    {
        if (_owned)
            _stream.Dispose();
    }

    private void Send(PageServerIov iov, ReadOnlySpan<byte> data, bool compressed = false)
    {
        iov.Write(_iov);
        try
        {
            _stream.Write(_iov);
            if (compressed && data.Length > 0)
                WireBytes += PageStreamCompression.WriteFrames(_stream, data,
                    _frame ??= GC.AllocateUninitializedArray<byte>(PageStreamCompression.HeaderSize + PageStreamCompression.MaxStored(PageStreamCompression.FrameBytes)));
            else
            {
                _stream.Write(data);
                WireBytes += data.Length;
            }
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
        {
            throw new CrispException($"page server {Peer}: connection lost while sending pages ({Reason(e)})");
        }
    }

    private static string Reason(Exception e) => (e.InnerException ?? e).Message.ReplaceLineEndings(" ");

    private void Receive(Span<byte> buffer, string what)
    {
        try
        {
            for (int got = 0; got < buffer.Length;)
            {
                int n = _stream.Read(buffer[got..]);
                if (n == 0)
                    throw new CrispException($"page server {Peer}: connection closed while waiting for {what}" +
                        (_overTls && !_answered ? " (did the server refuse this end's TLS certificate?)" : ""));
                got += n;
            }
            _answered = true;
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
        {
            throw new CrispException($"page server {Peer}: connection lost while waiting for {what} ({Reason(e)})");
        }
    }
}
