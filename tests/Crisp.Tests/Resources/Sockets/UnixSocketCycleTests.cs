using Crisp.Dump;
using Crisp.Linux;
using Crisp.Restore;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Resources.Sockets;

/// <summary>sockets_unix (pairs of every type with queued data, path and abstract listeners, a connection
/// across tasks, a bound datagram socket, shutdown, an orphaned peer, options) dumped and restored twice;
/// then the workload checks every socket's inner state itself. An external peer is refused by name.</summary>
public class UnixSocketCycleTests(ITestOutputHelper output)
{
    [RootFact]
    public void EveryKindOfUnixSocketPassesItsChecksAfterTwoCycles()
    {
        string exe = Support.Workloads.Build("sockets_unix");
        using var dir = new Live.TempDir();
        string sockDir = Path.Combine(dir.Path, "s");
        Directory.CreateDirectory(sockDir);
        var (pid, child) = Start(exe, dir.Path, sockDir);
        int[] pids = [pid, child];
        try
        {
            Cycle(Path.Combine(dir.Path, "c1"), pid, pids);
            var tree = Cycle(Path.Combine(dir.Path, "c2"), pid, pids);
            Live.SignalAndExpectPass(pid, dir.Path, () => Live.ExitCodeWithin(tree));
        }
        finally
        {
            Live.KillAll(pids, pid);
        }
    }

    [RootFact]
    public void ASocketConnectedOutsideTheTreeIsRefusedNamingFdKindAndPid()
    {
        using var dir = new Live.TempDir();
        var (mine, theirs) = Crisp.Linux.Sockets.SocketPair(Crisp.Linux.Sockets.SOCK_STREAM);
        using (mine)
        using (theirs)
        {
            int pid = Spawn.Start("/bin/sleep", ["sleep", "1000"], new SpawnOptions
            {
                NewSession = true,
                Fds = [(theirs.Fd, 3)],
                Opens = Live.DevNullStdio,
            });
            try
            {
                Thread.Sleep(200);
                var r = CrispCli.Run("dump", "-t", pid.ToString(), "-D", dir.Images);
                Assert.Equal(1, r.ExitCode);
                FailureSafetyTests.AssertOneLine(r.Stderr, $"task {pid} fd 3: unix socket");
                Assert.Contains("outside the dumped tree", r.Stderr);
                Assert.True(Directory.Exists($"/proc/{pid}"), "a refused dump must leave the task running");
            }
            finally
            {
                Live.KillAll([pid], pid);
            }
        }
    }

    private static (int Pid, int Child) Start(string exe, string dir, string sockDir)
    {
        var w = Workload.Start(exe, ["sockets_unix", sockDir], dir);
        var parts = w.WaitReady("sockets_unix's ready line", p => p.Length == 3);
        return (w.Pid, int.Parse(parts[2]));
    }

    private RestoredTree Cycle(string images, int pid, int[] pids) =>
        Live.Cycle(output, new DumpOptions { RootPid = pid, ImagesDir = images }, pids,
            written => Assert.True(File.Exists(Path.Combine(written, "sk-queues.img"))));
}
