using System.Net;
using System.Net.Sockets;
using Crisp.Dump;
using Crisp.Linux;
using Crisp.Restore;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Resources.Files;

/// <summary>Issue #8's done-when: one workload — a tree whose root (allfds) starts every fd-kind workload
/// as its child — holds all kinds at once: eventfd, epoll, signalfd, timerfd, inotify, ghost file, FIFO,
/// O_PATH, directory, flock/POSIX/OFD locks (fdkinds), memfd with its mappings (memfd_state), unix
/// sockets across two tasks (sockets_unix), TCP/UDP listeners and bound sockets over v4 and v6
/// (sockets_inet) and a pty pair (pty_state). It is dumped and restored twice with one dump each time;
/// then every part checks its kinds from the inside and the root reports each verdict.</summary>
public class AllFdKindsTests(ITestOutputHelper output)
{
    /// <summary>fdkinds' and pty_state's known differences (see FdKindsRestoreTests and PtyRestoreTests).</summary>
    private static readonly StateAllowList AllStateAllow = FdKinds.FdKindsRestoreTests.FdKindsStateAllow.With([.. Tty.PtyRestoreTests.PtyBugs]);

    [RootFact]
    public void OneTreeHoldingEveryKindPassesItsChecksAfterTwoCycles()
    {
        using var dir = new Live.TempDir();
        string root = Support.Workloads.Build("allfds");
        List<string[]> parts =
        [
            ["fdkinds", Support.Workloads.Build("fdkinds"), Sub(dir, "fdkinds"), "all"],
            ["memfd", Support.Workloads.Build("memfd_state"), Sub(dir, "memfd")],
            ["unix", Support.Workloads.Build("sockets_unix"), Sub(dir, "unix")],
            ["inet", Support.Workloads.Build("sockets_inet")],
        ];
        if (File.Exists(Path.Combine(Support.Workloads.SourceDir, "pty_state.c")))
            parts.Add(["pty", Support.Workloads.Build("pty_state"), Sub(dir, "pty")]);
        string[] argv = ["allfds", dir.Path, .. parts.SelectMany(p => (string[])["--", .. p])];
        string outFile = Path.Combine(dir.Path, "root.out");
        int pid = Spawn.Start(root, argv, new SpawnOptions
        {
            NewSession = true,
            Opens =
            [
                (0, "/dev/null", Live.O_RDONLY, 0),
                (1, outFile, Live.O_WRONLY | Live.O_CREAT | Live.O_TRUNC, 0x1a4),
                (2, Path.Combine(dir.Path, "root.err"), Live.O_WRONLY | Live.O_CREAT | Live.O_TRUNC, 0x1a4),
            ],
        });
        var pids = new List<int> { pid };
        try
        {
            Live.WaitFor(() => File.ReadAllText(outFile).StartsWith("ready ") || File.ReadAllText(outFile).Contains("FAIL"),
                "every part to be ready", TimeSpan.FromSeconds(40));
            Assert.StartsWith($"ready {pid}", File.ReadAllText(outFile));
            int[] ports = File.ReadAllText(Path.Combine(dir.Path, "inet.out")).Split('\n')[0].Split(' ')[2..].Select(int.Parse).ToArray();

            RestoredTree? tree = null;
            for (int cycle = 1; cycle <= 2; cycle++)
            {
                string images = Path.Combine(dir.Path, $"images{cycle}");
                tree = Live.Logged(output, log =>
                {
                    var before = TaskStateSnapshot.OfQuietTree(pid);
                    var stats = new Dumper(new DumpOptions { RootPid = pid, ImagesDir = images, FileLocks = true }, log).Run();
                    pids = Live.CheckpointPids(images);
                    output.WriteLine($"cycle {cycle}: {stats.Tasks} tasks dumped in {stats.Total.TotalMilliseconds:F0} ms, images {Live.Bytes(images) / 1024} KiB");
                    Live.WaitPidsFree(pids, cycle == 1 ? pid : 0);
                    if (tree is not null)
                        Wait.TryWaitPid(pid, out _, Wait.WALL);
                    Live.AssertCritDecodesAll(images);
                    var restored = new Restorer(new RestoreOptions { ImagesDir = images, Detached = true, FileLocks = true }, log).Run();
                    Assert.Equal(pid, restored.RootPid);
                    StateDiff.AssertRestored(before, AllStateAllow);
                    return restored;
                });
            }

            // What sockets_inet's listeners and bound sockets expect from outside once restored.
            using (var t4 = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
            using (var t6 = new Socket(AddressFamily.InterNetworkV6, SocketType.Stream, ProtocolType.Tcp))
            using (var u4 = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp))
            using (var u6 = new Socket(AddressFamily.InterNetworkV6, SocketType.Dgram, ProtocolType.Udp))
            {
                t4.Connect(IPAddress.Loopback, ports[0]);
                t6.Connect(IPAddress.IPv6Loopback, ports[1]);
                t4.Send("hi4"u8);
                t6.Send("hi6"u8);
                u4.SendTo("d4"u8, new IPEndPoint(IPAddress.Loopback, ports[2]));
                u6.SendTo("d6"u8, new IPEndPoint(IPAddress.IPv6Loopback, ports[3]));
                Crisp.Linux.Signals.Kill(pid, Live.SIGUSR1);
                int rc = Live.ExitCodeWithin(tree!);
                string verdict = File.ReadAllText(outFile);
                output.WriteLine(verdict);
                foreach (var p in parts)
                    foreach (var ext in new[] { "err" })
                        if (File.Exists(Path.Combine(dir.Path, $"{p[0]}.{ext}")) && File.ReadAllText(Path.Combine(dir.Path, $"{p[0]}.{ext}")) is { Length: > 0 } text)
                            output.WriteLine($"{p[0]}.{ext}: {text}");
                Assert.True(rc == 0 && verdict.Contains("PASS\n"), verdict);
                Assert.Equal(parts.Count, verdict.Split('\n').Count(l => l.StartsWith("part ") && l.Contains(": exit 0x0")));
            }
        }
        finally
        {
            Live.KillAll(pids, pid);
        }
    }

    private static string Sub(Live.TempDir dir, string name) => Directory.CreateDirectory(Path.Combine(dir.Path, name)).FullName;
}
