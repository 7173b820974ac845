using System.Net;
using System.Net.Sockets;
using System.Text;
using Crisp.Linux;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Resources.Sockets;

/// <summary>--network-lock: a loopback echo server is dumped with --tcp-established through the CLI and
/// killed; its client writes a request while no socket owns the connection. With the lock (nftables, the
/// default) the packets are dropped and retransmitted until the restored server takes the request and
/// answers on the same connection, and the lock's table is gone after the restore. With `skip` the host
/// answers the same request with a RST: the client's connection is reset (the premise of the lock).</summary>
public class NetworkLockTests(ITestOutputHelper output)
{
    [RootTheory]
    [InlineData("nftables")]
    [InlineData("skip")]
    public void AClientWritingWhileTheServerIsDownKeepsItsConnectionOnlyWithTheLock(string method)
    {
        string exe = Support.Workloads.Build("tcp_echo");
        using var dir = new Live.TempDir();
        int pid = Spawn.Start(exe, ["tcp_echo"], new SpawnOptions
        {
            NewSession = true,
            Opens =
            [
                (0, "/dev/null", Live.O_RDONLY, 0),
                (1, Path.Combine(dir.Path, "out"), Live.O_WRONLY | Live.O_CREAT | Live.O_TRUNC, 0x1a4),
                (2, Path.Combine(dir.Path, "err"), Live.O_WRONLY | Live.O_CREAT | Live.O_TRUNC, 0x1a4),
            ],
        });
        string table = $"crisp-{pid}";
        try
        {
            string ready = "";
            Live.WaitFor(() => (ready = File.ReadAllText(Path.Combine(dir.Path, "out"))).EndsWith('\n') || Spawn.TryReap(pid) is not null, "tcp_echo's ready line");
            int port = int.Parse(ready.Split(' ', StringSplitOptions.TrimEntries)[2]);
            using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveTimeout = 60_000 };
            client.Connect(IPAddress.Loopback, port);
            Assert.Equal("echo:first\n", Request(client, "first\n"));

            var dump = Live.Crisp(null, "dump", "-t", pid.ToString(), "-D", dir.Images, "--tcp-established", "--network-lock", method);
            Assert.True(dump.ExitCode == 0, $"dump: {dump.Stderr}");
            Live.WaitPidsFree([pid], pid);
            Assert.Equal(method == "nftables", TableExists(table));

            // The server is gone: this request reaches a host without its socket.
            client.Send(Encoding.ASCII.GetBytes("during\n"));
            Thread.Sleep(700);   // the first transmission and a retransmission or two
            if (method == "skip")
            {
                var reset = Assert.Throws<SocketException>(() => ReadLine(client));
                Assert.Equal(SocketError.ConnectionReset, reset.SocketErrorCode);
                return;
            }

            var restore = Live.Crisp(null, "restore", "-D", dir.Images, "--tcp-established", "-d");
            Assert.True(restore.ExitCode == 0, $"restore: {restore.Stderr}");
            Assert.False(TableExists(table), "the lock's table must be gone once the tree runs");
            Assert.Equal("echo:during\n", ReadLine(client));
            Assert.Equal("echo:after\n", Request(client, "after\n"));
            client.Shutdown(SocketShutdown.Send);
            Live.WaitFor(() => !File.Exists($"/proc/{pid}/stat") || File.ReadAllText($"/proc/{pid}/stat").Contains(") Z "), "the server to exit", TimeSpan.FromSeconds(30));
            Assert.Equal("", File.ReadAllText(Path.Combine(dir.Path, "err")));
        }
        catch
        {
            output.WriteLine($"server stderr: {File.ReadAllText(Path.Combine(dir.Path, "err"))}");
            throw;
        }
        finally
        {
            Live.KillAll([pid], pid);
            if (TableExists(table))
                Live.RunProcess("/usr/sbin/nft", TimeSpan.FromSeconds(10), null, "delete", "table", "inet", table);
        }
    }

    private static bool TableExists(string table) =>
        Live.RunProcess("/usr/sbin/nft", TimeSpan.FromSeconds(10), null, "list", "table", "inet", table).ExitCode == 0;

    private static string Request(Socket s, string line)
    {
        s.Send(Encoding.ASCII.GetBytes(line));
        return ReadLine(s);
    }

    private static string ReadLine(Socket s)
    {
        var bytes = new List<byte>();
        var one = new byte[1];
        while (bytes.Count == 0 || bytes[^1] != '\n')
        {
            if (s.Receive(one) == 0)
                throw new EndOfStreamException($"connection closed after '{Encoding.ASCII.GetString([.. bytes])}'");
            bytes.Add(one[0]);
        }
        return Encoding.ASCII.GetString([.. bytes]);
    }
}
