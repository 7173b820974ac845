using System.Net;
using System.Net.Sockets;

namespace Crisp.Images.PageServer;

/// <summary>The listening socket of crisp's servers (page server, lazy pages, migration receiver): one connection,
/// the address reusable at once (a server restarted on its port right after a run), one error line that names
/// <paramref name="what"/> if the address cannot be had.</summary>
public static class TcpListenerSocket
{
    public static Socket Listen(IPAddress ip, string address, int port, string what)
    {
        var listener = new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            listener.Bind(new IPEndPoint(ip, port));
            listener.Listen(1);
            return listener;
        }
        catch (SocketException e)
        {
            listener.Dispose();
            throw new CrispException($"{what}: cannot listen on {address}:{port} ({e.Message})");
        }
    }
}
