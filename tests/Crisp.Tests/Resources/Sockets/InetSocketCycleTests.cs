using System.Net;
using System.Net.Sockets;
using System.Text;
using Crisp.Dump;
using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Restore;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Resources.Sockets;

/// <summary>TCP and UDP sockets over IPv4/IPv6: listeners and bound datagram sockets come back on the same
/// address (the workload checks, then accepts and receives from the test); a loopback TCP echo server keeps
/// its client's connection across --tcp-established dumps (left running, and killed + restored), with
/// unread data in its receive queue and unsent data in its send queue; without the flag it is refused.
/// Ports are chosen by the kernel, so parallel runs do not collide.</summary>
public class InetSocketCycleTests(ITestOutputHelper output)
{
    private const int Blob = 1 << 20, SmallBlob = 16 << 10;

    [RootFact]
    public void ListenersAndBoundDatagramSocketsComeBackOnTheirAddressesAfterTwoCycles()
        => Run("sockets_inet", (dir, pid, ports) =>
        {
            Live.Cycle(output, new DumpOptions { RootPid = pid, ImagesDir = Path.Combine(dir.Path, "c1") }, [pid]);
            var tree = Live.Cycle(output, new DumpOptions { RootPid = pid, ImagesDir = Path.Combine(dir.Path, "c2") }, [pid]);
            using (var t4 = Connect(AddressFamily.InterNetwork, IPAddress.Loopback, ports[0]))
            using (var t6 = Connect(AddressFamily.InterNetworkV6, IPAddress.IPv6Loopback, ports[1]))
            using (var u4 = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp))
            using (var u6 = new Socket(AddressFamily.InterNetworkV6, SocketType.Dgram, ProtocolType.Udp))
            {
                t4.Send("hi4"u8);
                t6.Send("hi6"u8);
                u4.SendTo("d4"u8, new IPEndPoint(IPAddress.Loopback, ports[2]));
                u6.SendTo("d6"u8, new IPEndPoint(IPAddress.IPv6Loopback, ports[3]));
                Live.SignalAndExpectPass(pid, dir.Path, () => Live.ExitCodeWithin(tree));
            }
        });

    [RootFact]
    public void AnEchoClientKeepsItsConnectionAcrossLeaveRunningAndKillRestore()
        => Run("tcp_echo", (dir, pid, ports) =>
        {
            // A small receive buffer, so the server's held reply stays in its own send queue.
            using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp)
            { ReceiveBufferSize = 8192, ReceiveTimeout = 60_000 };
            client.Connect(IPAddress.Loopback, ports[0]);
            Assert.Equal("echo:first\n", Request(client, "first\n"));

            // 1: --leave-running; the server goes on with the same socket.
            HoldAndSendUnread(client, "req2", dir.Path, 1, Blob);
            string leave = Path.Combine(dir.Path, "leave");
            Dump(leave, pid, leaveRunning: true);
            AssertStream(leave, fullSendQueue: true);
            Crisp.Linux.Signals.Kill(pid, Live.SIGUSR1);
            AssertHeldReplyThen(client, "echo:req2\n", Blob);
            Assert.Equal("echo:req3\n", Request(client, "req3\n"));

            // 2: killed and restored; the client's side never closed. The client's window is opened first,
            // so the held reply is not stuck behind window probes (the network lock drops those, and the
            // client's answers, while no socket owns the connection).
            client.ReceiveBufferSize = 1 << 20;
            HoldAndSendUnread(client, "req4", dir.Path, 2, SmallBlob);
            // Both directions acknowledged before the kill, so the queues in the image are exactly the ones
            // asserted below (the network lock would keep late packets off anyway: NetworkLockTests).
            int clientPort = ((IPEndPoint)client.LocalEndPoint!).Port;
            Live.WaitFor(() => SendQueue(ports[0], clientPort) == 0 && SendQueue(clientPort, ports[0]) == 0,
                "both sides to acknowledge everything", TimeSpan.FromSeconds(30));
            string killed = Path.Combine(dir.Path, "killed");
            Dump(killed, pid, leaveRunning: false);
            Live.WaitPidsFree([pid], pid);
            AssertStream(killed, fullSendQueue: false);
            var refused = Assert.Throws<CrispException>(() => new Restorer(new RestoreOptions { ImagesDir = killed, Detached = true }, new Log(TextWriter.Null, 0)).Run());
            Assert.Contains("--tcp-established", refused.Message);
            Assert.False(Directory.Exists($"/proc/{pid}"), "a refused restore must leave nothing behind");
            var tree = Restore(killed);
            Assert.Equal(pid, tree.RootPid);
            Crisp.Linux.Signals.Kill(pid, Live.SIGUSR1);
            try
            {
                AssertHeldReplyThen(client, "echo:req4\n", SmallBlob);
            }
            catch
            {
                output.WriteLine($"server alive: {Directory.Exists($"/proc/{pid}")}, stderr: {File.ReadAllText(Path.Combine(dir.Path, "err"))}");
                output.WriteLine(File.Exists($"/proc/{pid}/stat") ? File.ReadAllText($"/proc/{pid}/stat") : "no stat");
                output.WriteLine(Live.RunProcess("/usr/bin/ss", TimeSpan.FromSeconds(10), null, "-tanoi", $"sport = :{ports[0]} or dport = :{ports[0]}").Stdout);
                throw;
            }
            Assert.Equal("echo:req5\n", Request(client, "req5\n"));

            client.Shutdown(SocketShutdown.Send);
            Assert.Equal(0, Live.ExitCodeWithin(tree));
            Assert.Equal("", File.ReadAllText(Path.Combine(dir.Path, "err")));
        });

    [RootFact]
    public void AnEstablishedConnectionWithoutTcpEstablishedIsRefusedInOneLine()
        => Run("tcp_echo", (dir, pid, ports) =>
        {
            using var client = Connect(AddressFamily.InterNetwork, IPAddress.Loopback, ports[0]);
            Assert.Equal("echo:a\n", Request(client, "a\n"));
            var r = CrispCli.Run("dump", "-t", pid.ToString(), "-D", dir.Images);
            Assert.Equal(1, r.ExitCode);
            FailureSafetyTests.AssertOneLine(r.Stderr, $"task {pid} fd 4: TCP socket 127.0.0.1:{ports[0]}");
            Assert.Contains("--tcp-established", r.Stderr);
            Assert.Equal("echo:b\n", Request(client, "b\n"));
        });

    [RootFact]
    public void AFailedDumpLeavesTheConnectionWorking()
        => Run("tcp_echo", (dir, pid, ports) =>
        {
            using var client = Connect(AddressFamily.InterNetwork, IPAddress.Loopback, ports[0]);
            Assert.Equal("echo:a\n", Request(client, "a\n"));
            client.Send("b\n"u8);    // unread while the dump has the socket in repair mode
            var e = Assert.Throws<CrispException>(() => new Dumper(
                new DumpOptions { RootPid = pid, ImagesDir = dir.Images, TcpEstablished = true },
                new Log(TextWriter.Null, 0), new FaultInjection("dump:images")).Run());
            Assert.Contains("fault injected", e.Message);
            Assert.Equal("echo:b\n", ReadLine(client));
            Assert.Equal("echo:c\n", Request(client, "c\n"));
        });

    /// <summary>tx_queue of the loopback connection 127.0.0.1:local → 127.0.0.1:remote in /proc/net/tcp
    /// (bytes sent and not yet acknowledged, plus unsent); -1 when absent.</summary>
    private static long SendQueue(int local, int remote)
    {
        foreach (var line in File.ReadLines("/proc/net/tcp").Skip(1))
        {
            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (f[1] == $"0100007F:{local:X4}" && f[2] == $"0100007F:{remote:X4}")
                return Convert.ToInt64(f[4].Split(':')[0], 16);
        }
        return -1;
    }

    private static void HoldAndSendUnread(Socket client, string next, string dir, int holds, int size)
    {
        client.Send(Encoding.ASCII.GetBytes($"hold {size}\n"));
        var ok = new byte[3];
        ReadExactly(client, ok);
        Assert.Equal("ok\n", Encoding.ASCII.GetString(ok));
        client.Send(Encoding.ASCII.GetBytes(next + "\n"));    // the server holds: this stays unread
        Live.WaitFor(() => File.ReadAllText(Path.Combine(dir, "out")).Split('\n').Count(l => l.StartsWith("held ")) == holds,
            "the server to fill its send queue", TimeSpan.FromSeconds(30));
    }

    /// <summary>The held pattern arrives whole and in order, then the answer to the unread request.</summary>
    private static void AssertHeldReplyThen(Socket client, string line, int size)
    {
        var blob = new byte[size];
        ReadExactly(client, blob);
        for (int i = 0; i < size; i++)
            if (blob[i] != (byte)(i % 251))
                Assert.Fail($"held reply differs at byte {i}");
        Assert.Equal(line, ReadLine(client));
    }

    /// <summary>tcp-stream-INO.img holds the request the server had not read, and crit decodes it all.</summary>
    private void AssertStream(string images, bool fullSendQueue)
    {
        Live.AssertCritDecodesAll(images);
        var file = Assert.Single(Directory.GetFiles(images, "tcp-stream-*.img"));
        using var r = ImageReader.Open(file, ImageKind.TcpStream);
        var e = r.Read<tcp_stream_entry>()!;
        output.WriteLine($"{Path.GetFileName(file)}: in {e.InqLen} out {e.OutqLen} (unsent {e.UnsqLen}), {new FileInfo(file).Length} bytes");
        Assert.Equal(5u, e.InqLen);
        if (fullSendQueue)
            Assert.True(e.OutqLen > 0, "the held reply should be in the send queue");
        Assert.Equal("req", Encoding.ASCII.GetString(r.ReadExtra(e.InqLen))[..3]);
    }

    private void Dump(string images, int pid, bool leaveRunning) => Live.Logged(output, log =>
        new Dumper(new DumpOptions { RootPid = pid, ImagesDir = images, LeaveRunning = leaveRunning, TcpEstablished = true }, log).Run());

    private RestoredTree Restore(string images) => Live.Logged(output, log =>
        new Restorer(new RestoreOptions { ImagesDir = images, Detached = true, TcpEstablished = true }, log).Run());

    /// <summary>Starts the workload <paramref name="name"/> in a scratch directory, hands <paramref name="body"/>
    /// its PID and the ports of its ready line, and kills what is left afterwards.</summary>
    private static void Run(string name, Action<Live.TempDir, int, int[]> body)
    {
        string exe = Support.Workloads.Build(name);
        using var dir = new Live.TempDir();
        var w = Workload.Start(exe, [name], dir.Path);
        int[] ports = w.WaitReady($"{name}'s ready line", p => p.Length >= 3)[2..].Select(int.Parse).ToArray();
        try
        {
            body(dir, w.Pid, ports);
        }
        finally
        {
            Live.KillAll([w.Pid], w.Pid);
        }
    }

    private static Socket Connect(AddressFamily family, IPAddress address, int port)
    {
        var s = new Socket(family, SocketType.Stream, ProtocolType.Tcp) { ReceiveTimeout = 60_000 };
        s.Connect(address, port);
        return s;
    }

    private static string Request(Socket s, string line)
    {
        s.Send(Encoding.ASCII.GetBytes(line));
        return ReadLine(s);
    }

    private static string ReadLine(Socket s)
    {
        var sb = new StringBuilder();
        var one = new byte[1];
        while (!sb.ToString().EndsWith('\n'))
        {
            if (s.Receive(one) != 1)
                throw new IOException($"connection closed after '{sb}'");
            sb.Append((char)one[0]);
        }
        return sb.ToString();
    }

    private static void ReadExactly(Socket s, byte[] buffer)
    {
        int at = 0;
        while (at < buffer.Length)
        {
            int n = s.Receive(buffer, at, buffer.Length - at, SocketFlags.None);
            if (n == 0)
                throw new IOException($"connection closed after {at} of {buffer.Length} bytes");
            at += n;
        }
    }
}
