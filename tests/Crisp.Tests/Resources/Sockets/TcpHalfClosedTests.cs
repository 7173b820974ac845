using System.Net;
using System.Net.Sockets;
using Crisp.Dump;
using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Restore;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Resources.Sockets;

/// <summary>Half-closed TCP connections (tcp_halfclosed: loopback pairs in FIN_WAIT1, FIN_WAIT2, CLOSE_WAIT,
/// LAST_ACK, CLOSING, and the established peer of one) are dumped with --tcp-established and restored in
/// their states, twice; the workload then checks the states by TCP_INFO, that each reader gets the data
/// queued before the dump and then EOF, and that the sides still open write on. Without the flag they are
/// refused by state; a connection still in SYN_SENT is refused by name. The tree runs on after both.</summary>
public class TcpHalfClosedTests(ITestOutputHelper output)
{
    private const string Name = "tcp_halfclosed";

    // fd → state, as the workload sets them up (CRIU's numbers: inet_sk_entry.state).
    private static readonly Dictionary<int, uint> States = new()
    {
        [3] = 5, [4] = 8, [5] = 4, [6] = 1, [7] = 11, [8] = 5, [9] = 5, [10] = 9,
    };

    [RootFact]
    public void HalfClosedConnectionsComeBackInTheirStatesAfterTwoKillRestoreCycles()
    {
        using var dir = new Live.TempDir();
        var w = Workload.Start(Support.Workloads.Build(Name), [Name], dir.Path);
        int pid = int.Parse(w.WaitReady($"{Name}'s ready line", p => p.Length == 2)[1]);
        try
        {
            var refused = CrispCli.Run("dump", "-t", pid.ToString(), "-D", dir.Images);
            Assert.Equal(1, refused.ExitCode);
            FailureSafetyTests.AssertOneLine(refused.Stderr, "half-closed (FIN_WAIT2) TCP connection");
            Assert.Contains("--tcp-established", refused.Stderr);
            Assert.True(Directory.Exists($"/proc/{pid}"), "a refused dump must leave the tree running");

            RestoredTree? tree = null;
            for (int cycle = 1; cycle <= 2; cycle++)
            {
                string images = Path.Combine(dir.Path, $"c{cycle}");
                var inodes = States.Keys.ToDictionary(fd => fd, fd => SocketInode(pid, fd));
                tree = Live.Logged(output, log =>
                {
                    new Dumper(new DumpOptions { RootPid = pid, ImagesDir = images, TcpEstablished = true }, log).Run();
                    Live.WaitPidsFree([pid], pid);
                    Live.AssertCritDecodesAll(images);
                    AssertImages(images, inodes);
                    return new Restorer(new RestoreOptions { ImagesDir = images, Detached = true, TcpEstablished = true }, log).Run();
                });
                Assert.Equal(pid, tree.RootPid);
            }
            Live.SignalAndExpectPass(pid, dir.Path, () => Live.ExitCodeWithin(tree!));
        }
        finally
        {
            Live.KillAll([pid], pid);
        }
    }

    [RootFact]
    public void AConnectionInSynSentIsRefusedByNameAndTheTreeRunsOn()
    {
        // Backlog 0 with one connection waiting: the listener drops the next SYN, so it stays unanswered.
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(0);
        int port = ((IPEndPoint)listener.LocalEndPoint!).Port;
        using var first = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        first.Connect(IPAddress.Loopback, port);

        using var dir = new Live.TempDir();
        var w = Workload.Start(Support.Workloads.Build(Name), [Name, "synsent", port.ToString()], dir.Path);
        int pid = int.Parse(w.WaitReady($"{Name}'s ready line", p => p.Length == 2)[1]);
        try
        {
            var r = CrispCli.Run("dump", "-t", pid.ToString(), "-D", dir.Images, "--tcp-established");
            Assert.Equal(1, r.ExitCode);
            FailureSafetyTests.AssertOneLine(r.Stderr, $"task {pid} fd 3: TCP socket");
            Assert.Contains("TCP state SYN_SENT is not supported", r.Stderr);
            Live.SignalAndExpectPass(pid, dir.Path, () => Live.ExitCodeWithin(new RestoredTree(pid)));
        }
        finally
        {
            Live.KillAll([pid], pid);
        }
    }

    /// <summary>files.img has every connection in its state, each with its tcp-stream-INO.img; the readers'
    /// queues hold what the workload left unread.</summary>
    private void AssertImages(string images, Dictionary<int, uint> inodes)
    {
        var img = ImageDirectory.Open(images);
        var byIno = img.ReadAll<file_entry>(ImageFile.Files).Where(f => f.Isk is not null).ToDictionary(f => f.Isk!.Ino, f => f.Isk!);
        foreach (var (fd, state) in States)
        {
            uint ino = inodes[fd];
            Assert.True(byIno.TryGetValue(ino, out var isk), $"fd {fd} (socket {ino}) not in files.img");
            Assert.Equal(state, isk!.State);
            using var r = ImageReader.Open(Path.Combine(images, $"tcp-stream-{ino:x}.img"), ImageKind.TcpStream);
            var e = r.Read<tcp_stream_entry>()!;
            output.WriteLine($"fd {fd} state {state}: in {e.InqLen} (seq {e.InqSeq}) out {e.OutqLen} (unsent {e.UnsqLen}, seq {e.OutqSeq})");
            if (fd == 4)
                Assert.Equal("a-before", System.Text.Encoding.ASCII.GetString(r.ReadExtra(e.InqLen)));
            if (fd is 6 or 8 or 9)
                Assert.True(e.InqLen > 0, $"fd {fd}: the data its peer filled it with should be in its receive queue");
        }
    }

    /// <summary>The inode of the socket on the task's fd (from /proc, while it runs).</summary>
    private static uint SocketInode(int pid, int fd)
    {
        string link = new FileInfo($"/proc/{pid}/fd/{fd}").LinkTarget ?? "";
        Assert.StartsWith("socket:[", link);
        return uint.Parse(link["socket:[".Length..^1]);
    }
}
