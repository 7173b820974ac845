using System.Buffers.Binary;
using Crisp.Dump;
using Crisp.Linux;
using Crisp.Linux.Proc;
using Crisp.Tests.Images;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Resources.Sockets;

/// <summary>NETLINK_ROUTE sockets (CRIU's NETLINKSK entries): bound by the kernel's choice and by the program's,
/// with multicast groups below and past 32, SOL_NETLINK flags, never bound, and connected to another socket's
/// port id. After two kill + restore cycles the workload finds the same port ids, groups, flags and peer, asks
/// the kernel for its links and gets answers addressed to its port, and receives a unicast between its own
/// sockets. Unread messages are refused by name, and the tree runs on.</summary>
public class NetlinkSocketTests(ITestOutputHelper output)
{
    private const int NETLINK_ROUTE = 0;

    [RootFact]
    public void NetlinkSocketsComeBackBoundConnectedAndInTheirGroups()
        => Run((dir, pid) =>
        {
            Live.Cycle(output, new DumpOptions { RootPid = pid, ImagesDir = Path.Combine(dir.Path, "c1") }, [pid], checkImages: AssertEntries);
            var tree = Live.Cycle(output, new DumpOptions { RootPid = pid, ImagesDir = Path.Combine(dir.Path, "c2") }, [pid]);
            Live.SignalAndExpectPass(pid, dir.Path, () => Live.ExitCodeWithin(tree));
        });

    [RootFact]
    public void UnreadMessagesAreRefusedByNameAndTheTreeRunsOn()
        => Run((dir, pid) =>
        {
            // A message for fd 3 (port id = the workload's pid, the kernel's first choice), left unread.
            using var nl = SocketCalls.Socket(SocketCalls.AF_NETLINK, Crisp.Linux.Sockets.SOCK_RAW, NETLINK_ROUTE);
            var msg = new byte[16];
            BinaryPrimitives.WriteUInt32LittleEndian(msg, 16);
            BinaryPrimitives.WriteUInt16LittleEndian(msg.AsSpan(4), 1);    // NLMSG_NOOP
            var to = new byte[12];
            BinaryPrimitives.WriteUInt16LittleEndian(to, SocketCalls.AF_NETLINK);
            BinaryPrimitives.WriteUInt32LittleEndian(to.AsSpan(4), (uint)pid);
            SocketCalls.Send(nl.Fd, msg, 0, to);
            var e = Assert.Throws<CrispException>(() => new Dumper(new DumpOptions { RootPid = pid, ImagesDir = dir.Images }, Log.Null).Run());
            Assert.Equal($"task {pid} fd 3: netlink socket (protocol 0) has unread messages: nothing can put them back into its queue (CRIU refuses them too)", e.Message);
            Assert.Contains(ProcStat.Read(pid).State, "SR");
            Assert.Equal("0", ProcStatus.Read(pid)["TracerPid"]);
        });

    /// <summary>crit reads the entries as CRIU's: the kernel-chosen port id is the pid, group 34 is bit 1 of
    /// the second word, the connected socket's peer is fd 3's port.</summary>
    private static void AssertEntries(string images)
    {
        var nlsk = Crit.Decode(Path.Combine(images, "files.img")).GetProperty("entries").EnumerateArray()
            .Where(e => e.GetProperty("type").GetString() == "NETLINKSK").Select(e => e.GetProperty("nlsk")).ToArray();
        Assert.Equal(4, nlsk.Length);
        Assert.All(nlsk, n => Assert.Equal(0u, n.GetProperty("protocol").GetUInt32()));
        var groups = nlsk.Select(n => n.TryGetProperty("groups", out var g) ? g.EnumerateArray().Select(x => x.GetUInt32()).ToArray() : []).ToArray();
        Assert.Contains(groups, g => g.SequenceEqual([(1u << 12) | (1u << 20), 1u << 1]));
        Assert.Single(nlsk, n => n.GetProperty("state").GetUInt32() == 1);
    }

    private static void Run(Action<Live.TempDir, int> body)
    {
        string exe = Support.Workloads.Build("netlink_sock");
        using var dir = new Live.TempDir();
        var w = Workload.Start(exe, ["netlink_sock"], dir.Path);
        w.WaitReady("netlink_sock's ready line", p => p.Length >= 2);
        try
        {
            body(dir, w.Pid);
        }
        finally
        {
            Live.KillAll([w.Pid], w.Pid);
        }
    }
}
