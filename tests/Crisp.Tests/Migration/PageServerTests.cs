using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Crisp.Images.PageServer;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Migration;

/// <summary>Issue 17 part 2: the page server (CRIU's protocol) on 127.0.0.1.</summary>
public class PageServerTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Slow = TimeSpan.FromMinutes(3);

    /// <summary>A free TCP port on 127.0.0.1 (bound and released: nothing else here picks ports in this range).</summary>
    internal static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    /// <summary>`crisp page-server` as a child process, once it listens (seen in its own /proc/PID/net/tcp): on
    /// 127.0.0.1, or on an address of a network namespace it runs in (`ip netns exec`, which becomes crisp).</summary>
    internal sealed class Server : IDisposable
    {
        private readonly Process _p;
        public int Port { get; }
        public string Dir { get; }

        public Server(string dir, int port, params string[] extra) : this(null, "127.0.0.1", dir, port, extra) { }

        public Server(string? netns, string address, string dir, int port, string[] extra)
        {
            Dir = dir;
            Port = port;
            string[] prefix = netns is null ? [] : ["netns", "exec", netns, CrispCli.Exe];
            var psi = new ProcessStartInfo(netns is null ? CrispCli.Exe : "/usr/sbin/ip") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
            foreach (var a in prefix.Concat(["page-server", "--address", address, "--port", port.ToString(), "-D", dir]).Concat(extra))
                psi.ArgumentList.Add(a);
            _p = Process.Start(psi)!;
            string hexPort = $":{port:X4} ";
            Live.WaitFor(() => _p.HasExited || Listens($"/proc/{_p.Id}/net/tcp", hexPort), "the page server to listen", TimeSpan.FromSeconds(20));
            if (_p.HasExited)
                Assert.Fail($"page-server exited: {_p.StandardError.ReadToEnd()}");
        }

        private static bool Listens(string table, string hexPort)
        {
            try { return File.ReadLines(table).Any(l => l.Contains(hexPort) && l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[3] == "0A"); }
            catch (IOException) { return false; }   // gone meanwhile: HasExited says so next
        }

        public (int ExitCode, string Stderr) Wait()
        {
            Assert.True(_p.WaitForExit(60_000), "page-server did not end");
            return (_p.ExitCode, _p.StandardError.ReadToEnd());
        }

        public void Dispose()
        {
            if (!_p.HasExited)
                _p.Kill();
            _p.Dispose();
        }
    }

    private void Ok(CrispCli.Result r, string what)
    {
        output.WriteLine($"{what}: exit {r.ExitCode} {r.Stderr.Trim()}");
        Assert.True(r.ExitCode == 0, $"{what} failed: {r.Stderr}");
    }

    [RootFact]
    public void ADumpSentToAPageServerRestoresFromTheServersDirectory()
    {
        using var w = MigDirty.Start(64, 10);
        string remote = w.Images("remote"), local = w.Images("local");
        using var server = new Server(remote, FreePort());
        Ok(CrispCli.Run(Slow, "dump", "-t", w.Pid.ToString(), "-D", local, "--page-server", "--address", "127.0.0.1", "--port", server.Port.ToString()), "dump");
        var (rc, err) = server.Wait();
        Assert.True(rc == 0, $"page-server failed: {err}");
        Assert.Empty(Directory.GetFiles(local, "pages-*.img"));
        Assert.Empty(Directory.GetFiles(local, "pagemap-*.img"));
        Assert.True(MigDirty.StoredPages(remote) >= 64 * 256, "the server holds the buffer's pages");
        Live.AssertCritDecodesAll(remote);
        foreach (var f in Directory.GetFiles(local, "*.img"))
            File.Copy(f, Path.Combine(remote, Path.GetFileName(f)));
        Live.WaitPidsFree([w.Pid], ourChild: w.Pid);
        Ok(CrispCli.Run(Slow, "restore", "-d", "-D", remote, "--skip-image-verify"), "restore");
        w.ExpectPass();
    }

    /// <summary>--compress on both ends: mem_check's pages (16 MiB of ones, patterns) go as LZ4 frames, in far
    /// fewer bytes on the connection than page bytes, and restore with every pattern intact. A server without
    /// --compress (as a CRIU server) does not take the offer: the same kind of dump goes plain and restores too.</summary>
    [RootFact]
    public void CompressedPagesTravelInFewerBytesAndRestoreIntact()
    {
        foreach (bool serverCompresses in new[] { true, false })
        {
            using var w = Crisp.Tests.Resources.Memory.MemWorkload.Start(16);
            string remote = Path.Combine(w.Dir, "remote"), local = Path.Combine(w.Dir, "local"), log = Path.Combine(w.Dir, "ps.log");
            using var server = new Server(remote, FreePort(), serverCompresses ? ["--compress", "-v4", "-o", log] : ["-v4", "-o", log]);
            Ok(CrispCli.Run(Slow, "dump", "-t", w.Pid.ToString(), "-D", local, "--page-server", "--address", "127.0.0.1", "--port", server.Port.ToString(), "--compress"), "dump");
            var (rc, err) = server.Wait();
            Assert.True(rc == 0, $"page-server failed: {err}");
            var m = System.Text.RegularExpressions.Regex.Match(File.ReadAllText(log), @"(\d+) pages received into .* \((\d+) bytes on the connection\)");
            Assert.True(m.Success, File.ReadAllText(log));
            long pageBytes = long.Parse(m.Groups[1].Value) * 4096, wire = long.Parse(m.Groups[2].Value);
            output.WriteLine($"server compresses: {serverCompresses}: {pageBytes} page bytes, {wire} on the connection");
            Assert.True(pageBytes >= 16L << 20, $"{pageBytes} page bytes");
            if (serverCompresses)
                Assert.True(wire < pageBytes / 4, $"{wire} bytes on the connection for {pageBytes} page bytes");
            else
                Assert.Equal(pageBytes, wire);
            foreach (var f in Directory.GetFiles(local, "*.img"))
                File.Copy(f, Path.Combine(remote, Path.GetFileName(f)));
            w.WaitGone();
            Ok(CrispCli.Run(Slow, "restore", "-d", "-D", remote, "--skip-image-verify"), "restore");
            w.WaitUntil(() => w.WaitingCount >= 2, "waiting again after restore");
            w.Signal(Crisp.Tests.Resources.Memory.MemWorkload.SIGUSR1);
            w.WaitUntil(() => w.Stderr.Length > 0, "the restored workload's verdict");
            Assert.Equal("PASS\n", w.Stderr);
        }
    }

    /// <summary>With --encrypt-key on both sides: the server encrypts the pages it receives on its disk, the dump
    /// the images it writes itself; together they restore with the key.</summary>
    [RootFact]
    public void PagesReceivedWithAKeyStayEncryptedOnTheServersDisk()
    {
        using var w = MigDirty.Start(16, 10);
        string remote = w.Images("remote"), local = w.Images("local"), key = w.Images("images.key");
        File.WriteAllBytes(key, System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
        using var server = new Server(remote, FreePort(), "--encrypt-key", key);
        var dump = CrispCli.Run(Slow, "dump", "-t", w.Pid.ToString(), "-D", local, "--page-server", "--address", "127.0.0.1", "--port", server.Port.ToString(), "--encrypt-key", key);
        Ok(dump, "dump");
        Assert.Contains("the pages travel to 127.0.0.1", dump.Stderr);
        Assert.Equal(0, server.Wait().ExitCode);
        Assert.NotEmpty(Directory.GetFiles(remote, "pages-*.img"));
        Assert.All(Directory.GetFiles(remote, "*.img").Concat(Directory.GetFiles(local, "*.img")),
            f => Assert.True(Crisp.Security.Encryption.StoredFile.Probe(f).Encrypted, f));
        foreach (var f in Directory.GetFiles(local, "*.img"))
            File.Copy(f, Path.Combine(remote, Path.GetFileName(f)));
        Live.WaitPidsFree([w.Pid], ourChild: w.Pid);
        Ok(CrispCli.Run(Slow, "restore", "-d", "-D", remote, "--skip-image-verify", "--encrypt-key", key), "restore");
        w.ExpectPass();
    }

    [RootFact]
    public void APreDumpSentToAPageServerKeepsTheTreeRunning()
    {
        using var w = MigDirty.Start(16, 10);
        using var server = new Server(w.Images("remote"), FreePort());
        Ok(CrispCli.Run(Slow, "pre-dump", "-t", w.Pid.ToString(), "-D", w.Images("local"), "--page-server", "--address", "127.0.0.1", "--port", server.Port.ToString()), "pre-dump");
        Assert.Equal(0, server.Wait().ExitCode);
        Assert.True(MigDirty.StoredPages(w.Images("remote")) >= 16 * 256);
        Assert.True(File.Exists(Path.Combine(w.Images("local"), "inventory.img")));
        w.Round();
        w.ExpectPass();
    }

    [RootFact]
    public void AConnectionClosedMidStreamFailsTheDumpInOneLineAndTheTreeRunsOn()
    {
        using var w = MigDirty.Start(64, 10);
        // A server that takes the first pagemap's opening and a little data, then hangs up.
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var fake = Task.Run(() =>
        {
            using var s = listener.AcceptSocket();
            var buf = new byte[PageServerIov.Size];
            int got = 0;
            while (got < buf.Length)
                got += s.Receive(buf, got, buf.Length - got, SocketFlags.None);
            s.Send([0]);   // no parent
            var data = new byte[1 << 20];
            s.Receive(data);
            s.Close();
        });
        var r = CrispCli.Run(Slow, "dump", "-t", w.Pid.ToString(), "-D", w.Images("local"), "--page-server", "--address", "127.0.0.1", "--port", port.ToString());
        fake.Wait();
        listener.Stop();
        output.WriteLine(r.Stderr);
        Assert.Equal(1, r.ExitCode);
        FailureSafetyTests.AssertOneLine(r.Stderr, $"page server 127.0.0.1:{port}");
        Assert.False(Directory.Exists(w.Images("local")), "the failed dump left its images directory");
        w.ExpectPass();
    }

    [RootFact]
    public void AnUnreachablePageServerFailsTheDumpBeforeTheTreeIsTouched()
    {
        using var w = MigDirty.Start(8, 10);
        var r = CrispCli.Run(Slow, "dump", "-t", w.Pid.ToString(), "-D", w.Images("local"), "--page-server", "--address", "127.0.0.1", "--port", FreePort().ToString());
        Assert.Equal(1, r.ExitCode);
        FailureSafetyTests.AssertOneLine(r.Stderr, "cannot connect");
        w.ExpectPass();
    }

    [RootFact]
    public void GarbageOnThePortFailsTheServerInOneLineAndLeavesNoFiles()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"crisp-ps-{Guid.NewGuid():N}");
        try
        {
            using var server = new Server(dir, FreePort());
            using (var c = new TcpClient("127.0.0.1", server.Port))
                c.GetStream().Write("GET / HTTP/1.1\r\nHost: x\r\n\r\n and then some more bytes"u8);
            var (rc, err) = server.Wait();
            Assert.Equal(1, rc);
            FailureSafetyTests.AssertOneLine(err, "page server: unknown command");
            Assert.Empty(Directory.GetFiles(dir));
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }

    [RootFact]
    public void AClientThatHangsUpInTheMiddleOfItsPagesLeavesNoFilesOnTheServer()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"crisp-ps-{Guid.NewGuid():N}");
        try
        {
            using var server = new Server(dir, FreePort());
            using (var c = new TcpClient("127.0.0.1", server.Port))
            {
                var s = c.GetStream();
                var iov = new byte[PageServerIov.Size];
                new PageServerIov(PageServerIov.Open2, 0, 0, PageServerIov.DstIdOf(Crisp.Images.ImageFile.Pagemap(42))).Write(iov);
                s.Write(iov);
                Assert.Equal(0, s.ReadByte());   // no parent
                new PageServerIov(PageServerIov.WithFlags(PageServerIov.AddF, Crisp.Images.PagemapFlags.Present), 16, 0x10000, PageServerIov.DstIdOf(Crisp.Images.ImageFile.Pagemap(42))).Write(iov);
                s.Write(iov);
                s.Write(new byte[4096 * 3]);   // 3 of the 16 pages, then the connection ends
            }
            var (rc, err) = server.Wait();
            Assert.Equal(1, rc);
            FailureSafetyTests.AssertOneLine(err, "connection ended in the middle of the pages");
            Assert.Empty(Directory.GetFiles(dir));
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }
}
