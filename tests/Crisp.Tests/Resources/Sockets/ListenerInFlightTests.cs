using System.Net;
using System.Net.Sockets;
using Crisp.Dump;
using Crisp.Linux;
using Crisp.Restore;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Resources.Sockets;

/// <summary>listen_inflight: a TCP (IPv4) and a unix stream listener, each with a connection not yet accepted from a
/// client outside the tree (this test's own sockets). Without --skip-in-flight the dump is refused in one line and the
/// task runs on; with it (CRIU's tcp_skip_in_flight) the listeners are dumped alone, twice: the pending connections die
/// with the tree (their clients see the connection reset or closed), and the restored workload finds both listeners on
/// the same address with nothing queued, accepting a new connection each.</summary>
public class ListenerInFlightTests(ITestOutputHelper output)
{
    private const string Skipping = "Skipping in-flight connection (l)";

    private sealed class Clients : IDisposable
    {
        public List<Socket> All { get; } = [];

        /// <summary>Connects (unaccepted: the workload is waiting for a signal) to the listeners <paramref name="which"/> names.</summary>
        public void Connect(DirWorkload w, int port, string which)
        {
            if (which is "tcp" or "both")
            {
                var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                s.Connect(new IPEndPoint(IPAddress.Loopback, port));
                All.Add(s);
            }
            if (which is "unix" or "both")
            {
                var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                s.Connect(new UnixDomainSocketEndPoint(Path.Combine(w.Dir, "l.sock")));
                All.Add(s);
            }
        }

        /// <summary>Each client's connection is gone: a read ends (EOF) or fails with a reset instead of waiting.</summary>
        public void AssertDropped()
        {
            foreach (var s in All)
            {
                s.ReceiveTimeout = 10_000;
                try
                {
                    Assert.Equal(0, s.Receive(new byte[16]));
                }
                catch (SocketException e)
                {
                    Assert.True(e.SocketErrorCode == SocketError.ConnectionReset, $"{s.AddressFamily} client: {e.SocketErrorCode}");
                }
                s.Dispose();
            }
            All.Clear();
        }

        public void Dispose()
        {
            foreach (var s in All)
                s.Dispose();
        }
    }

    private static (DirWorkload W, int Port) Start()
    {
        var w = new DirWorkload("crisp-inflight-");
        w.Start(Support.Workloads.Build("listen_inflight"), [], newSession: true);
        var words = w.WaitReady("listen_inflight", f => f.Length >= 3);
        return (w, int.Parse(words[2]));
    }

    [RootTheory]
    [InlineData("tcp", "connection(s) not yet accepted")]
    [InlineData("unix", "has a connection not yet accepted from unix socket")]
    public void WithoutSkipInFlightTheDumpIsRefusedAndTheTaskRunsOn(string which, string expected)
    {
        var (w, port) = Start();
        using var _ = w;
        using var clients = new Clients();
        clients.Connect(w, port, which);
        var r = CrispCli.Run("dump", "-t", w.Pid.ToString(), "-D", w.NewImagesDir("img"));
        Assert.Equal(1, r.ExitCode);
        FailureSafetyTests.AssertOneLine(r.Stderr, $"task {w.Pid} fd {(which == "tcp" ? 3 : 4)}: ");
        Assert.Contains(expected, r.Stderr);
        Assert.Contains("--skip-in-flight", r.Stderr);
        Assert.Null(Spawn.TryReap(w.Pid));
        Assert.NotEqual('T', File.ReadAllText($"/proc/{w.Pid}/stat").Split(") ")[1][0]);
    }

    [RootFact]
    public void SkipInFlightDumpsTheListenersAndDropsWhatWasNotAccepted()
    {
        var (w, port) = Start();
        using var _ = w;
        using var clients = new Clients();
        RestoredTree? tree = null;

        // Cycle 1 through the CLI (the option as users spell it), its log saying what was skipped.
        clients.Connect(w, port, "both");
        string images = w.NewImagesDir("img0"), logFile = Path.Combine(w.Dir, "dump0.log");
        var r = CrispCli.Run("dump", "-t", w.Pid.ToString(), "-D", images, "--skip-in-flight", "-v4", "-o", logFile);
        Assert.True(r.ExitCode == 0, r.Stderr);
        try { Spawn.Reap(w.Pid); } catch (SyscallException) { }
        w.Alive = false;
        Assert.Equal(2, File.ReadAllLines(logFile).Count(l => l.Contains(Skipping)));
        clients.AssertDropped();
        Live.AssertCritDecodesAll(images);
        tree = Live.Logged(output, log => new Restorer(new RestoreOptions { ImagesDir = images, Detached = true }, log).Run());
        w.Alive = true;
        Assert.Equal(w.Pid, tree.RootPid);

        // Cycle 2 in-process, from the restored listeners, with new connections left unaccepted.
        clients.Connect(w, port, "both");
        images = w.NewImagesDir("img1");
        var text = new StringWriter();
        w.Dump(new DumpOptions { RootPid = w.Pid, ImagesDir = images, SkipInFlight = true }, new Log(text, 4));
        Assert.Equal(2, text.ToString().Split('\n').Count(l => l.Contains(Skipping)));
        clients.AssertDropped();
        Live.AssertCritDecodesAll(images);
        tree = w.Restore(new RestoreOptions { ImagesDir = images, Detached = true });

        w.SignalAndExpectPass(tree);
    }
}
