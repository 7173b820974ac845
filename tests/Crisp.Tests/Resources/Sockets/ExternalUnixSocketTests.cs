using System.Net.Sockets;
using System.Text;
using Crisp.Dump;
using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Restore;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;

namespace Crisp.Tests.Resources.Sockets;

/// <summary>--ext-unix-sk: a workload's datagram socket connected to a socket the test holds (a stand-in
/// for syslog's /dev/log) is refused without the flag (the workload runs on), dumped with it (an extra
/// USK_EXTERN entry naming the peer), refused at restore without it (nothing left behind), and restored
/// with it: the same fd is connected to the same path and its next datagram reaches the test's socket.
/// A stream connection to an outside listener is refused even with the flag.</summary>
public class ExternalUnixSocketTests
{
    private const int SIGKILL = 9;

    [RootFact]
    public void ADatagramSocketConnectedOutsideIsReconnectedToItsPath()
    {
        using var dir = new Live.TempDir();
        string path = Path.Combine(dir.Path, "log");
        using var log = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified) { ReceiveTimeout = 30_000 };
        log.Bind(new UnixDomainSocketEndPoint(path));
        int pid = Start(dir.Path, path, stream: false);
        try
        {
            Assert.Equal("before", Receive(log));

            var refused = Assert.Throws<CrispException>(() =>
                new Dumper(new DumpOptions { RootPid = pid, ImagesDir = Path.Combine(dir.Path, "no") }, Log.Null).Run());
            Assert.Contains("outside the dumped tree", refused.Message);
            Assert.Contains("--ext-unix-sk", refused.Message);
            Assert.DoesNotContain('\n', refused.Message);
            Assert.True(Directory.Exists($"/proc/{pid}"), "a refused dump leaves the workload running");

            var state = TaskStateSnapshot.OfQuietTree(pid);
            new Dumper(new DumpOptions { RootPid = pid, ImagesDir = dir.Images, ExtUnixSk = true }, Log.Null).Run();
            Live.WaitPidsFree([pid], pid);
            Live.AssertCritDecodesAll(dir.Images);
            var external = ImageDirectory.Open(dir.Images).ReadAll<file_entry>(ImageFile.Files)
                .Where(e => e.Usk is { } u && (u.Uflags & 1) != 0).Select(e => e.Usk).ToList();
            Assert.Single(external);
            Assert.Equal(path, Encoding.UTF8.GetString(external[0].Name.Span).TrimEnd((char)0));

            string hashes = string.Join(",", Live.Hashes(dir.Images).Select(kv => kv.Key + kv.Value).Order());
            var noFlag = Assert.Throws<CrispException>(() =>
                new Restorer(new RestoreOptions { ImagesDir = dir.Images, Detached = true }, Log.Null).Run());
            Assert.Contains("--ext-unix-sk", noFlag.Message);
            Assert.False(Directory.Exists($"/proc/{pid}"), "a refused restore leaves nothing behind");
            Assert.Equal(hashes, string.Join(",", Live.Hashes(dir.Images).Select(kv => kv.Key + kv.Value).Order()));

            var tree = new Restorer(new RestoreOptions { ImagesDir = dir.Images, Detached = true, ExtUnixSk = true }, Log.Null).Run();
            Assert.Equal(pid, tree.RootPid);
            StateDiff.AssertRestored(state);
            Crisp.Linux.Signals.Kill(pid, Live.SIGUSR1);
            Assert.Equal("after", Receive(log));
            int rc = Live.ExitCodeWithin(tree);
            string verdict = File.ReadAllText(Path.Combine(dir.Path, "verdict"));
            Assert.True(rc == 0, $"exit {rc}: {verdict}");
            Assert.Equal("PASS", verdict.Trim());
        }
        finally
        {
            Live.KillAll([pid], pid);
        }
    }

    [RootFact]
    public void AStreamConnectionToAnOutsideListenerIsRefusedEvenWithTheFlag()
    {
        using var dir = new Live.TempDir();
        string path = Path.Combine(dir.Path, "listener");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(1);
        int pid = Start(dir.Path, path, stream: true);
        try
        {
            using var accepted = listener.Accept();
            var e = Assert.Throws<CrispException>(() =>
                new Dumper(new DumpOptions { RootPid = pid, ImagesDir = dir.Images, ExtUnixSk = true }, Log.Null).Run());
            Assert.Contains("external stream connection cannot be restored", e.Message);
            Assert.True(Directory.Exists($"/proc/{pid}"), "a refused dump leaves the workload running");
            var buffer = new byte[16];
            Assert.Equal("before", Encoding.ASCII.GetString(buffer, 0, accepted.Receive(buffer)));
        }
        finally
        {
            Live.KillAll([pid], pid);
        }
    }

    private static int Start(string dir, string path, bool stream)
    {
        string exe = Support.Workloads.Build("ext_unix");
        int pid = Spawn.Start(exe, stream ? [exe, path, dir, "stream"] : [exe, path, dir], new SpawnOptions
        {
            NewSession = true,
            Opens = [(0, "/dev/null", FileIo.O_RDONLY, 0), (1, "/dev/null", FileIo.O_WRONLY, 0), (2, "/dev/null", FileIo.O_WRONLY, 0)],
        });
        string ready = Path.Combine(dir, "ready");
        Live.WaitFor(() => File.Exists(ready) && File.ReadAllText(ready).EndsWith('\n') || Spawn.TryReap(pid) is not null, "ext_unix ready");
        Assert.True(File.Exists(ready), "ext_unix ended before it was ready");
        return pid;
    }

    private static string Receive(Socket s)
    {
        var buffer = new byte[64];
        return Encoding.ASCII.GetString(buffer, 0, s.Receive(buffer));
    }
}
