using Crisp.Images.PageServer;

namespace Crisp.Images.Pages;

/// <summary>Pages asked of a page server over its socket (CRIU's PS_IOV_GET, as `criu lazy-pages --page-server`
/// asks a `dump --lazy-pages`): each read is one request and its answer, repeated while the server sends fewer
/// pages than asked. A connection that ends or fails is one <see cref="CrispException"/> naming the server.</summary>
public sealed class SocketPageSource(PageServerClient server) : IPageSource
{
    public string Peer => server.Peer;

    public void Read(int pid, ulong vaddr, Span<byte> buffer)
    {
        while (buffer.Length > 0)
        {
            int got = server.Get(pid, vaddr, buffer);
            int bytes = got * PagemapWriter.PageSize;
            buffer = buffer[bytes..];
            vaddr += (ulong)bytes;
        }
    }

    /// <summary>Every page is in: PS_IOV_CLOSE, and the server's status.</summary>
    public void Complete() => server.Finish();

    public void Dispose() => server.Dispose();
}
