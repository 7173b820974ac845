using Crisp.Dump;
using Crisp.Tests.Images;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Resources.Sockets;

/// <summary>AF_PACKET sockets (CRIU's PACKETSK entries): raw and datagram, bound to lo for one ethertype, with
/// TPACKET_V2, a reserve, aux data, original device, promiscuous and multicast memberships, and a fanout group.
/// After two kill + restore cycles the workload reads every option and binding back and sees a frame one of its
/// sockets sends on lo arrive at the others.</summary>
public class PacketSocketTests(ITestOutputHelper output)
{
    [RootFact]
    public void PacketSocketsComeBackBoundWithTheirOptionsMembershipsAndFanout()
    {
        string exe = Support.Workloads.Build("packet_sock");
        using var dir = new Live.TempDir();
        var w = Workload.Start(exe, ["packet_sock"], dir.Path);
        w.WaitReady("packet_sock's ready line", p => p.Length >= 2);
        int pid = w.Pid;
        try
        {
            Live.Cycle(output, new DumpOptions { RootPid = pid, ImagesDir = Path.Combine(dir.Path, "c1") }, [pid], checkImages: AssertEntries);
            var tree = Live.Cycle(output, new DumpOptions { RootPid = pid, ImagesDir = Path.Combine(dir.Path, "c2") }, [pid]);
            Live.SignalAndExpectPass(pid, dir.Path, () => Live.ExitCodeWithin(tree));
        }
        finally
        {
            Live.KillAll([pid], pid);
        }
    }

    /// <summary>crit reads them as CRIU's: protocol 0x88b5 in network order as CRIU writes it (htons: 0xb588), lo's two memberships on fd 3, fanout
    /// on one socket only.</summary>
    private static void AssertEntries(string images)
    {
        var psk = Crit.Decode(Path.Combine(images, "files.img")).GetProperty("entries").EnumerateArray()
            .Where(e => e.GetProperty("type").GetString() == "PACKETSK").Select(e => e.GetProperty("psk")).ToArray();
        Assert.Equal(3, psk.Length);
        Assert.All(psk, p => Assert.Equal(0xb588u, p.GetProperty("protocol").GetUInt32()));
        Assert.Single(psk, p => p.TryGetProperty("mclist", out var m) && m.GetArrayLength() == 2);
        Assert.Single(psk, p => p.TryGetProperty("fanout", out _));
    }
}
