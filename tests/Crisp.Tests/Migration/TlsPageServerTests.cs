using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using Crisp.Images.PageServer;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Migration;

/// <summary>Issue 17 part 2: the page server over TLS (--tls, CRIU's options), with certificates made by openssl here.</summary>
public class TlsPageServerTests(ITestOutputHelper output) : IDisposable
{
    private static readonly TimeSpan Slow = TimeSpan.FromMinutes(3);
    private readonly TestCerts _certs = new();

    public void Dispose() => _certs.Dispose();

    private CrispCli.Result Dump(MigDirty w, string images, int port, params string[] tls)
    {
        var r = CrispCli.Run(Slow, ["dump", "-t", w.Pid.ToString(), "-D", images, "--page-server", "--address", "127.0.0.1", "--port", port.ToString(), .. tls]);
        output.WriteLine($"dump: exit {r.ExitCode} {r.Stderr.Trim()}");
        return r;
    }

    [RootFact]
    public void ADumpOverTlsRestoresFromTheServersDirectory()
    {
        using var w = MigDirty.Start(32, 10);
        string remote = SendPages(w, _certs, null, "127.0.0.1", []);
        var r = CrispCli.Run(Slow, "restore", "-d", "-D", remote, "--skip-image-verify");
        Assert.True(r.ExitCode == 0, r.Stderr);
        w.ExpectPass();
    }

    [RootFact]
    public void AClientCertificateOfAnotherCaIsRefusedByTheServerAndTheTreeRunsOn()
    {
        using var w = MigDirty.Start(8, 10);
        string remote = w.Images("remote");
        using var server = new PageServerTests.Server(remote, PageServerTests.FreePort(), _certs.Options("server"));
        var r = Dump(w, w.Images("local"), server.Port, _certs.Options("rogue"));
        var (rc, err) = server.Wait();
        output.WriteLine(err);
        Assert.Equal(1, r.ExitCode);
        FailureSafetyTests.AssertOneLine(r.Stderr, $"page server 127.0.0.1:{server.Port}");
        Assert.Equal(1, rc);
        FailureSafetyTests.AssertOneLine(err, "TLS handshake failed: the peer's certificate (CN=crisp rogue");
        Assert.Empty(Directory.GetFiles(remote));
        Assert.False(Directory.Exists(w.Images("local")), "the failed dump left its images directory");
        w.ExpectPass();
    }

    [RootFact]
    public void AServerCertificateOfAnotherCaFailsTheDumpBeforeThePagesAndTheTreeRunsOn()
    {
        using var w = MigDirty.Start(8, 10);
        string remote = w.Images("remote");
        using var server = new PageServerTests.Server(remote, PageServerTests.FreePort(), _certs.Options("rogue", ca: "rogue"));
        var r = Dump(w, w.Images("local"), server.Port, _certs.Options("client"));
        var (rc, _) = server.Wait();
        Assert.Equal(1, r.ExitCode);
        FailureSafetyTests.AssertOneLine(r.Stderr, "TLS handshake failed: the peer's certificate (CN=crisp rogue, issued by CN=crisp rogue) is not signed by the CA of --tls-cacert");
        Assert.Equal(1, rc);
        Assert.Empty(Directory.GetFiles(remote));
        w.ExpectPass();
    }

    /// <summary>"Two hosts" (<see cref="TwoHosts"/>), TLS on, both ways: a tree here is dumped to a page server
    /// there and restored there; then a tree running there is dumped from inside its namespaces (nsenter) to a page
    /// server here and restored here. Each server listens only on its own side of the veth pair, so the pages cross
    /// it; each restored tree checks every page.</summary>
    [RootFact]
    public void TlsPagesCrossTheVethPairBothWaysAndTheReceivingHostRestoresTheTree()
    {
        using var hosts = new TwoHosts();
        using var certs = new TestCerts(hosts.Here, hosts.There);   // the addresses each server is reached at
        string ours = NetNs(Environment.ProcessId);
        using (var w = MigDirty.Start(32, 10))
        {
            string remote = SendPages(w, certs, hosts.Ns, hosts.There, []);
            var r = Live.RunProcess("/usr/sbin/ip", Slow, null, "netns", "exec", hosts.Ns, CrispCli.Exe, "restore", "-d", "-D", remote, "--skip-image-verify");
            Assert.True(r.ExitCode == 0, r.Stderr);
            Assert.NotEqual(ours, NetNs(w.Pid));   // restored on the other host
            w.ExpectPass();
        }
        using (var w = MigDirty.Start(32, 10, hosts.Ns))
        {
            Assert.NotEqual(ours, NetNs(w.Pid));
            string remote = SendPages(w, certs, null, hosts.Here, ["/usr/bin/nsenter", "-t", w.Pid.ToString(), "-n", "-m"]);
            var r = CrispCli.Run(Slow, "restore", "-d", "-D", remote, "--skip-image-verify");
            Assert.True(r.ExitCode == 0, r.Stderr);
            Assert.Equal(ours, NetNs(w.Pid));   // restored here
            w.ExpectPass();
        }
    }

    private static string NetNs(int pid) => new FileInfo($"/proc/{pid}/ns/net").LinkTarget!;

    /// <summary>A TLS page server on ADDRESS (in NETNS, or here), a dump of the workload to it (run through
    /// WRAP: the dump's side's namespaces), and the dump's other images put beside the pages, as a copy would.</summary>
    private string SendPages(MigDirty w, TestCerts certs, string? netns, string address, string[] wrap)
    {
        string remote = w.Images("remote"), local = w.Images("local");
        using var server = new PageServerTests.Server(netns, address, remote, PageServerTests.FreePort(), certs.Options("server"));
        string[] dump = [CrispCli.Exe, "dump", "-t", w.Pid.ToString(), "-D", local, "--page-server", "--address", address, "--port", server.Port.ToString(), .. certs.Options("client")];
        string[] argv = [.. wrap, .. dump];
        var r = Live.RunProcess(argv[0], Slow, null, argv[1..]);
        output.WriteLine($"dump to {address}: exit {r.ExitCode} {r.Stderr.Trim()}");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var (rc, err) = server.Wait();
        Assert.True(rc == 0, $"page-server failed: {err}");
        Assert.True(MigDirty.StoredPages(remote) >= 32 * 256, "the page server holds the buffer's pages");
        foreach (var f in Directory.GetFiles(local, "*.img"))
            File.Copy(f, Path.Combine(remote, Path.GetFileName(f)));
        Live.WaitPidsFree([w.Pid], ourChild: w.Pid);
        return remote;
    }

    [RootFact]
    public void GarbageOnATlsPortFailsTheServerInOneLineAndLeavesNoFiles()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"crisp-ps-{Guid.NewGuid():N}");
        try
        {
            using var server = new PageServerTests.Server(dir, PageServerTests.FreePort(), _certs.Options("server"));
            using (var c = new TcpClient("127.0.0.1", server.Port))
                c.GetStream().Write("GET / HTTP/1.1\r\nHost: x\r\n\r\n and then some more bytes"u8);
            var (rc, err) = server.Wait();
            Assert.Equal(1, rc);
            FailureSafetyTests.AssertOneLine(err, "TLS handshake failed");
            Assert.Empty(Directory.GetFiles(dir));
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }

    [RootFact]
    public void ATlsConnectionClosedMidStreamFailsTheDumpInOneLineAndTheTreeRunsOn()
    {
        using var w = MigDirty.Start(64, 10);
        using var cert = X509Certificate2.CreateFromPemFile(_certs.P("server.pem"), _certs.P("server.key"));
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        // A TLS server that takes the first pagemap's opening and a little data, then hangs up.
        var fake = Task.Run(() =>
        {
            using var s = new SslStream(new NetworkStream(listener.AcceptSocket(), ownsSocket: true));
            s.AuthenticateAsServer(new SslServerAuthenticationOptions
            {
                ServerCertificate = cert,
                ClientCertificateRequired = true,
                RemoteCertificateValidationCallback = (_, _, _, _) => true,
            });
            s.ReadExactly(new byte[PageServerIov.Size]);
            s.Write([0]);   // no parent
            s.ReadExactly(new byte[1 << 20]);
        });
        var r = Dump(w, w.Images("local"), port, _certs.Options("client"));
        fake.Wait();
        listener.Stop();
        Assert.Equal(1, r.ExitCode);
        FailureSafetyTests.AssertOneLine(r.Stderr, $"page server 127.0.0.1:{port}: connection lost");
        Assert.False(Directory.Exists(w.Images("local")), "the failed dump left its images directory");
        w.ExpectPass();
    }
}
