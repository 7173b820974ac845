using System.Net.Sockets;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace Crisp.Tests.Runtimes;

/// <summary>runc's --console-socket: a unix stream socket runc connects to and sends the container terminal's pty
/// master over (SCM_RIGHTS). Each master received is read from for as long as it gives output (so the container
/// never blocks on a full terminal); what each one printed is kept.</summary>
internal sealed class ConsoleSocket : IDisposable
{
    private readonly Socket _listener = new(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
    private readonly List<StringBuilder> _outputs = [];
    public string Path { get; }

    public ConsoleSocket(string path)
    {
        Path = path;
        _listener.Bind(new UnixDomainSocketEndPoint(path));
        _listener.Listen(4);
        new Thread(Accept) { IsBackground = true, Name = "console-socket" }.Start();
    }

    public int Masters { get { lock (_outputs) return _outputs.Count; } }

    /// <summary>What master <paramref name="n"/> (in the order received) has printed so far.</summary>
    public string Output(int n) { lock (_outputs) return _outputs[n].ToString(); }

    private void Accept()
    {
        try
        {
            while (true)
            {
                using var conn = _listener.Accept();
                int[] fds = Crisp.Linux.Sockets.ReceiveFds((int)conn.Handle, 4, new byte[256]);
                foreach (int fd in fds)
                {
                    var output = new StringBuilder();
                    lock (_outputs)
                        _outputs.Add(output);
                    new Thread(() => Drain(fd, output)) { IsBackground = true, Name = "console-master" }.Start();
                }
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or Crisp.Linux.SyscallException) { }
    }

    private static void Drain(int fd, StringBuilder output)
    {
        using var stream = new FileStream(new SafeFileHandle(fd, ownsHandle: true), FileAccess.Read, 1);
        var buffer = new byte[4096];
        try
        {
            int n;
            while ((n = stream.Read(buffer)) > 0)
                lock (output)
                    output.Append(Encoding.ASCII.GetString(buffer, 0, n));
        }
        catch (IOException) { }   // EIO: every slave closed
    }

    public void Dispose()
    {
        _listener.Dispose();
        try { File.Delete(Path); } catch (IOException) { }
    }
}
