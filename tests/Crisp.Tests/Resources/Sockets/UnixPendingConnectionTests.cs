using Crisp.Dump;
using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Resources.Sockets;

/// <summary>unix_pending: stream and seqpacket listeners holding connections not yet accepted, from the
/// task itself and from its child. After restore the workload accepts them: same order, each carrying
/// its client's data, replies reaching the right client. What cannot come back (data already sent into
/// a pending connection, a pending connection whose client closed) is refused by name.</summary>
public class UnixPendingConnectionTests(ITestOutputHelper output)
{
    [RootFact]
    public void ConnectionsNotYetAcceptedAreAcceptedAfterRestoreInOrder()
    {
        string exe = Support.Workloads.Build("unix_pending");
        using var dir = new Live.TempDir();
        var w = Workload.Start(exe, ["unix_pending", dir.Path, "ok"], dir.Path);
        var parts = w.WaitReady("unix_pending's ready line", p => p.Length == 3);
        int[] pids = [w.Pid, int.Parse(parts[2])];
        try
        {
            string images = Path.Combine(dir.Path, "img");
            var tree = Live.Cycle(output, new DumpOptions { RootPid = w.Pid, ImagesDir = images }, pids, written =>
            {
                // As CRIU writes them: a pending client's peer is its listener, which has none.
                var usk = ImageDirectory.Open(written).ReadAll<file_entry>(ImageFile.Files).Where(f => f.Usk is not null).Select(f => f.Usk).ToList();
                var listeners = usk.Where(u => u.State == 10).ToDictionary(u => u.Ino);
                Assert.Equal(2, listeners.Count);
                Assert.Equal(4, usk.Count(u => u.State == 1 && listeners.ContainsKey(u.Peer)));
            });
            Live.SignalAndExpectPass(w.Pid, dir.Path, () => Live.ExitCodeWithin(tree));
        }
        finally
        {
            Live.KillAll(pids, w.Pid);
        }
    }

    [RootTheory]
    [InlineData("sent", "has sent data on a connection unix socket")]
    [InlineData("closed", "has a connection not yet accepted whose client has closed")]
    public void APendingConnectionThatCannotComeBackIsRefused(string mode, string expected)
    {
        string exe = Support.Workloads.Build("unix_pending");
        using var dir = new Live.TempDir();
        var w = Workload.Start(exe, ["unix_pending", dir.Path, mode], dir.Path);
        var parts = w.WaitReady("unix_pending's ready line", p => p.Length == 3);
        int[] pids = [w.Pid, int.Parse(parts[2])];
        try
        {
            var r = CrispCli.Run("dump", "-t", w.Pid.ToString(), "-D", dir.Images);
            Assert.Equal(1, r.ExitCode);
            FailureSafetyTests.AssertOneLine(r.Stderr, $"task {w.Pid} fd ");
            Assert.Contains(expected, r.Stderr);
            Assert.True(Directory.Exists($"/proc/{w.Pid}"), "a refused dump must leave the task running");
        }
        finally
        {
            Live.KillAll(pids, w.Pid);
        }
    }
}
