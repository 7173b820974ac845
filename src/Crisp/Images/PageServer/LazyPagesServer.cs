using System.Net;
using System.Net.Sockets;

namespace Crisp.Images.PageServer;

/// <summary>The source side of a lazy migration (`dump --lazy-pages --port P`): once the images are written, the
/// still-seized tree's lazy pages are served to a lazy-pages daemon in CRIU's protocol. Each PS_IOV_GET (dst_id: the
/// task's virtual pid) is answered PS_IOV_ADD_F|PE_PRESENT with as many of the asked pages as the lazy run holds,
/// then the pages; PS_IOV_CLOSE is answered with an int32 status 0 and ends the session. The listening socket is
/// made before the tree is seized, so a port in use fails the dump before anything is touched.</summary>
public sealed class LazyPagesServer : IDisposable
{
    private const int MaxPagesPerAnswer = 256;

    private readonly Socket? _listener;
    private readonly byte[] _iov = new byte[PageServerIov.Size];
    private readonly byte[] _pages = GC.AllocateUninitializedArray<byte>(MaxPagesPerAnswer * PagemapWriter.PageSize, pinned: true);

    private readonly Security.Tls.TlsSettings? _tls;

    private LazyPagesServer(Socket? listener, string endpoint, Security.Tls.TlsSettings? tls)
    {
        _listener = listener;
        Endpoint = endpoint;
        _tls = tls;
    }

    public string Endpoint { get; }

    /// <summary>Pages sent so far (read from another thread too: crisp migrate counts those sent once the target ran).</summary>
    public long PagesSent { get => Interlocked.Read(ref _pagesSent); private set => Interlocked.Exchange(ref _pagesSent, value); }
    private long _pagesSent;

    /// <summary>crisp migrate --lazy: the pages go over a connection the caller opened (<see cref="ServeOn"/>).</summary>
    public static LazyPagesServer ForConnection(string peer) => new(null, peer, null);

    /// <summary>Listens; with <paramref name="tls"/> (--tls) the daemon's connection is TLS as the page server's.</summary>
    public static LazyPagesServer Listen(string address, int port, Security.Tls.TlsSettings? tls = null)
    {
        if (!IPAddress.TryParse(address, out var ip))
            throw new CrispException($"lazy pages: bad --address '{address}': an IPv4 or IPv6 address");
        var listener = TcpListenerSocket.Listen(ip, address, port, "lazy pages");
        return new LazyPagesServer(listener, $"{address}:{port}", tls);
    }

    /// <summary>Serves one lazy-pages daemon until it says PS_IOV_CLOSE.</summary>
    /// <param name="available">How many pages from vaddr on (at most the count asked) task pid has lazy: 0 when the
    /// address is not one of its lazy pages.</param>
    /// <param name="read">Reads pages of the seized task into the buffer.</param>
    public void Serve(Func<int, ulong, int, int> available, Action<int, ulong, Span<byte>> read)
    {
        var accepted = (_listener ?? throw new InvalidOperationException("no listener")).Accept();
        accepted.NoDelay = true;
        Stream plain = new NetworkStream(accepted, ownsSocket: true);
        using var socket = _tls is null ? plain : _tls.Server(plain, $"lazy pages: the daemon's connection from {accepted.RemoteEndPoint}", TimeSpan.FromSeconds(30));
        ServeOn(socket, available, read, drain: true);
    }

    /// <summary>Serves the daemon at the other end of <paramref name="socket"/> until PS_IOV_CLOSE. <paramref name="drain"/>:
    /// then reads on until the daemon hangs up (CRIU's page server closes first); crisp migrate closes the connection
    /// itself.</summary>
    public void ServeOn(Stream socket, Func<int, ulong, int, int> available, Action<int, ulong, Span<byte>> read, bool drain = false)
    {
        for (;;)
        {
            if (!ReadExactly(socket, _iov))
                throw new CrispException($"lazy pages: the lazy-pages daemon's connection ended before PS_IOV_CLOSE ({PagesSent} pages sent); the tree runs on");
            var iov = PageServerIov.Read(_iov);
            switch (iov.Command)
            {
                case PageServerIov.Get:
                    int pid = (int)iov.DstId;
                    int n = iov.NrPages is 0 or > int.MaxValue ? 0 : available(pid, iov.Vaddr, (int)Math.Min(iov.NrPages, MaxPagesPerAnswer));
                    if (n <= 0)
                        throw new CrispException($"lazy pages: the daemon asked for {iov.NrPages} pages of task {pid} at 0x{iov.Vaddr:x}, which are not its lazy pages; the tree runs on");
                    var data = _pages.AsSpan(0, n * PagemapWriter.PageSize);
                    read(pid, iov.Vaddr, data);
                    new PageServerIov(PageServerIov.WithFlags(PageServerIov.AddF, PagemapFlags.Present), (ulong)n, iov.Vaddr, iov.DstId).Write(_iov);
                    SendAll(socket, _iov);
                    SendAll(socket, data);
                    PagesSent += n;
                    break;
                case PageServerIov.Close:
                case PageServerIov.ForceClose:
                    SendAll(socket, BitConverter.GetBytes(0));
                    if (drain)
                        try { while (socket.Read(_iov) > 0) { } } catch (IOException) { }
                    return;
                default:
                    throw new CrispException($"lazy pages: unknown command 0x{iov.Cmd:x} from the lazy-pages daemon; the tree runs on");
            }
        }
    }

    public void Dispose() => _listener?.Dispose();

    private void SendAll(Stream socket, ReadOnlySpan<byte> data)
    {
        try
        {
            socket.Write(data);
            socket.Flush();
        }
        catch (IOException e)
        {
            throw new CrispException($"lazy pages: the lazy-pages daemon's connection failed ({Reason(e)}) after {PagesSent} pages; the tree runs on");
        }
    }

    private static string Reason(Exception e) => (e.InnerException ?? e).Message.ReplaceLineEndings(" ");

    private bool ReadExactly(Stream socket, Span<byte> buffer)
    {
        try
        {
            for (int got = 0; got < buffer.Length;)
            {
                int n = socket.Read(buffer[got..]);
                if (n == 0)
                    return false;
                got += n;
            }
            return true;
        }
        catch (IOException e)
        {
            throw new CrispException($"lazy pages: the lazy-pages daemon's connection failed ({Reason(e)}) after {PagesSent} pages; the tree runs on");
        }
    }
}
