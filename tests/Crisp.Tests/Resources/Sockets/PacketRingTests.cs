using Crisp.Dump;
using Crisp.Tests.Images;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Resources.Sockets;

/// <summary>An AF_PACKET socket with mmap'ed TPACKET_V2 rx and tx rings (tests/workloads/packet_ring.c), in CRIU's
/// form: the rings' geometry in packet_sock_entry.rx_ring/tx_ring and their mapping a SOCKET vma_entry naming the
/// socket's file id. After two kill + restore cycles the workload finds its version, its mapping at the same address
/// and size, a fresh rx ring that a frame sent on lo then lands in, and a tx ring that sends.</summary>
public class PacketRingTests(ITestOutputHelper output)
{
    private const uint VmaAreaSocket = 1u << 11;
    private const int RingBytes = (4 + 2) * 16 << 10;

    [RootFact]
    public void RingsComeBackMappedWhereTheyWereAndCarryTraffic()
    {
        string exe = Support.Workloads.Build("packet_ring");
        using var dir = new Live.TempDir();
        var w = Workload.Start(exe, ["packet_ring"], dir.Path);
        var ready = w.WaitReady("packet_ring's ready line", p => p.Length >= 3);
        int pid = w.Pid;
        ulong ring = Convert.ToUInt64(ready[2], 16);
        try
        {
            Live.Cycle(output, new DumpOptions { RootPid = pid, ImagesDir = Path.Combine(dir.Path, "c1") }, [pid],
                checkImages: images => AssertEntries(images, pid, ring));
            var tree = Live.Cycle(output, new DumpOptions { RootPid = pid, ImagesDir = Path.Combine(dir.Path, "c2") }, [pid],
                checkImages: images => AssertEntries(images, pid, ring));
            Live.SignalAndExpectPass(pid, dir.Path, () => Live.ExitCodeWithin(tree));
        }
        finally
        {
            Live.KillAll([pid], pid);
        }
    }

    /// <summary>Rings whose socket the task has no fd of (only the mapping holds it) are refused in one line, as CRIU
    /// refuses them, and the task runs on.</summary>
    [RootFact]
    public void RingsOfASocketWithoutAnFdAreRefused()
    {
        string exe = Support.Workloads.Build("packet_ring");
        using var dir = new Live.TempDir();
        var w = Workload.Start(exe, ["packet_ring", "closed"], dir.Path);
        w.WaitReady("packet_ring's ready line", p => p.Length >= 3);
        int pid = w.Pid;
        try
        {
            var refused = Assert.Throws<CrispException>(() =>
                new Dumper(new DumpOptions { RootPid = pid, ImagesDir = Path.Combine(dir.Path, "no") }, Log.Null).Run());
            Assert.Contains("socket the task has no fd of", refused.Message);
            Assert.DoesNotContain('\n', refused.Message);
            Assert.True(Directory.Exists($"/proc/{pid}"), "a refused dump leaves the workload running");
        }
        finally
        {
            Live.KillAll([pid], pid);
        }
    }

    /// <summary>crit reads the socket's rings (4 rx blocks and 2 tx blocks of 16 KiB, 2 KiB frames) and one SOCKET
    /// VMA at the ring's address whose shmid is that socket's id.</summary>
    private static void AssertEntries(string images, int pid, ulong ring)
    {
        var psk = Crit.Decode(Path.Combine(images, "files.img")).GetProperty("entries").EnumerateArray()
            .Where(e => e.GetProperty("type").GetString() == "PACKETSK").Select(e => e.GetProperty("psk"))
            .Single(p => p.TryGetProperty("rx_ring", out _));
        var rx = psk.GetProperty("rx_ring");
        var tx = psk.GetProperty("tx_ring");
        Assert.Equal((16384u, 4u, 2048u, 32u), (rx.GetProperty("block_size").GetUInt32(), rx.GetProperty("block_nr").GetUInt32(),
            rx.GetProperty("frame_size").GetUInt32(), rx.GetProperty("frame_nr").GetUInt32()));
        Assert.Equal((2u, 16u), (tx.GetProperty("block_nr").GetUInt32(), tx.GetProperty("frame_nr").GetUInt32()));

        using var dir = global::Crisp.Images.ImageDirectory.Open(images);
        var mm = dir.ReadAll<global::Crisp.Images.Proto.mm_entry>(global::Crisp.Images.ImageFile.Mm(pid)).Single();
        var vma = mm.Vmas.Single(v => (v.Status & VmaAreaSocket) != 0);
        Assert.Equal((ring, ring + RingBytes), (vma.Start, vma.End));
        Assert.Equal(psk.GetProperty("id").GetUInt32(), (uint)vma.Shmid);
    }
}
