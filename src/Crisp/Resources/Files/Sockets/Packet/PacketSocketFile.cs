using System.Buffers.Binary;
using Crisp.Dump;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Restore;
using static Crisp.Linux.SocketCalls;

namespace Crisp.Resources.Files.Sockets.Packet;

/// <summary>AF_PACKET sockets — CRIU's PACKETSK kind (sk-packet.c): type, protocol, the interface it is bound to,
/// TPACKET version, reserve, copy threshold, timestamp source, the aux-data/orig-dev/vnet-header/loss flags,
/// multicast and promiscuous memberships and fanout, from packet_diag in the socket's own network namespace.
/// Packets waiting in its queue are not kept: they are traffic in flight, which a link may lose too (CRIU keeps
/// none either); the dump says how many bytes went in one warning line. mmap'ed rx/tx rings come back with their
/// geometry, empty, mapped where they were (<see cref="PacketRings"/>, <see cref="PacketRingMappings"/>); the
/// obsolete SOCK_PACKET type is refused by name.</summary>
public sealed class PacketSocketFile : IFileKind
{
    private const int AF_PACKET = 17, SOL_PACKET = 263, SOCK_PACKET = 10;
    private const int PACKET_ADD_MEMBERSHIP = 1, PACKET_COPY_THRESH = 7, PACKET_AUXDATA = 8, PACKET_ORIGDEV = 9,
        PACKET_VERSION = 10, PACKET_RESERVE = 12, PACKET_LOSS = 14, PACKET_VNET_HDR = 15, PACKET_TIMESTAMP = 17,
        PACKET_FANOUT = 18;
    // packet_diag_info.pdi_flags
    private const uint PDI_AUXDATA = 2, PDI_ORIGDEV = 4, PDI_VNETHDR = 8, PDI_LOSS = 16;

    public fd_types Type => fd_types.Packetsk;

    /// <summary>Each task's ring mappings, once its fds are in: they map the task's own fd of the socket.</summary>
    public IRestoreStage? AfterInstall { get; } = new PacketRingMappings();

    public bool Claims(OpenFd fd) =>
        fd.Stat.Type == FileStat.S_IFSOCK && GetInt(fd.Copy.Fd, SOL_SOCKET, SO_DOMAIN) == AF_PACKET;

    public file_entry Dump(DumpContext ctx, uint id, OpenFd fd)
    {
        int s = fd.Copy.Fd;
        string what = $"task {fd.Pid} fd {fd.Fd}: packet socket";
        var d = SocketNamespace.Run(fd, what, () => SockDiag.Packet((uint)fd.Stat.Ino))
            ?? throw new CrispException($"{what}: packet_diag does not know it");
        if (d.Type == SOCK_PACKET)
            throw new CrispException($"{what}: SOCK_PACKET (the obsolete Linux 2.0 interface) is not supported");
        long queued = Queued(s);
        if (queued > 0)
            ctx.Log.Warn($"{what}: {queued} byte(s) of received packets left behind, as traffic a link loses");
        var entry = new packet_sock_entry
        {
            Id = id,
            Type = (uint)d.Type,
            // CRIU's form: the protocol as socket() takes it, in network order (htons of packet_diag's host-order value).
            Protocol = BinaryPrimitives.ReverseEndianness(d.Protocol),
            Flags = (uint)fd.Flags,
            Ifindex = d.IfIndex,
            Fown = Fown.Of(fd),
            Opts = SocketOptions.Dump(s, what),
            Version = d.Version,
            Reserve = d.Reserve,
            AuxData = (d.Flags & PDI_AUXDATA) != 0,
            OrigDev = (d.Flags & PDI_ORIGDEV) != 0,
            VnetHdr = (d.Flags & PDI_VNETHDR) != 0,
            Loss = (d.Flags & PDI_LOSS) != 0,
            Timestamp = d.Timestamp,
            CopyThresh = d.CopyThresh,
        };
        foreach (var (ifIndex, count, type, addr) in d.Memberships)
            for (uint i = 0; i < count; i++)
                entry.Mclist.Add(new packet_mclist { Index = ifIndex, Type = type, Addr = Google.Protobuf.ByteString.CopyFrom(addr) });
        if (d.Fanout is { } fanout)
            entry.Fanout = fanout;
        // The rings' geometry only, as CRIU: what they hold is traffic in flight, and a restored ring starts empty.
        entry.RxRing = PacketRings.Entry(d.RxRing);
        entry.TxRing = PacketRings.Entry(d.TxRing);
        return new file_entry { Type = fd_types.Packetsk, Id = id, Psk = entry };
    }

    /// <summary>Bytes waiting to be read (SIOCINQ gives the next packet's length only; the receive queue's
    /// allocation from SO_MEMINFO would over-count), so peeked: 0 or the first packet's size is what matters.</summary>
    private static long Queued(int s)
    {
        Span<byte> one = stackalloc byte[1];
        long n = TryRecv(s, one, MSG_PEEK | MSG_DONTWAIT | 0x20 /* MSG_TRUNC: the real length */);
        return n < 0 ? 0 : n;
    }

    public UnixFd Open(RestoreContext ctx, file_entry entry)
    {
        var e = entry.Psk ?? throw new CrispException($"files.img: PACKETSK entry {entry.Id} has no psk part");
        string what = $"packet socket {entry.Id}";
        ushort wire = (ushort)e.Protocol;   // network order already (CRIU's: passed to socket() as it is)
        var sock = NetNamespaces.Socket(Namespaces.NetNamespace.Of(ctx), AF_PACKET, (int)e.Type, wire);
        return NewSocket.Shape(ctx, sock, what, e.Flags, e.Fown, s =>
        {
            // The version and reserve must be set before the socket is bound (and before any ring).
            if (e.Version != 0)
                SetInt(s, SOL_PACKET, PACKET_VERSION, (int)e.Version);
            if (e.Reserve != 0)
                SetInt(s, SOL_PACKET, PACKET_RESERVE, (int)e.Reserve);
            PacketRings.Set(s, e, what);   // after the version, which a ring fixes
            if (e.Ifindex != 0)
                Bind(s, LinkAddress(wire, e.Ifindex));
            SetIfOn(s, PACKET_AUXDATA, e.AuxData);
            SetIfOn(s, PACKET_ORIGDEV, e.OrigDev);
            SetIfOn(s, PACKET_VNET_HDR, e.VnetHdr);
            SetIfOn(s, PACKET_LOSS, e.Loss);
            if (e.Timestamp != 0)
                SetInt(s, SOL_PACKET, PACKET_TIMESTAMP, (int)e.Timestamp);
            if (e.CopyThresh != 0)
                SetInt(s, SOL_PACKET, PACKET_COPY_THRESH, (int)e.CopyThresh);
            foreach (var m in e.Mclist)
                Set(s, SOL_PACKET, PACKET_ADD_MEMBERSHIP, Membership(m));
            if (e.HasFanout)
                SetInt(s, SOL_PACKET, PACKET_FANOUT, (int)e.Fanout);
            SocketOptions.Restore(s, e.Opts);
        });
    }

    private static void SetIfOn(int s, int opt, bool on)
    {
        if (on)
            SetInt(s, SOL_PACKET, opt, 1);
    }

    /// <summary>struct sockaddr_ll for bind: family, protocol (network order), ifindex; the rest zero.</summary>
    private static byte[] LinkAddress(ushort wireProtocol, uint ifIndex)
    {
        var a = new byte[20];
        BinaryPrimitives.WriteUInt16LittleEndian(a, AF_PACKET);
        BinaryPrimitives.WriteUInt16LittleEndian(a.AsSpan(2), wireProtocol);
        BinaryPrimitives.WriteUInt32LittleEndian(a.AsSpan(4), ifIndex);
        return a;
    }

    /// <summary>struct packet_mreq: ifindex, type, address length, 8 address bytes.</summary>
    private static byte[] Membership(packet_mclist m)
    {
        if (m.Addr.Length > 8)
            throw new CrispException($"packet membership of interface {m.Index}: a {m.Addr.Length}-byte address does not fit packet_mreq");
        var r = new byte[16];
        BinaryPrimitives.WriteInt32LittleEndian(r, (int)m.Index);
        BinaryPrimitives.WriteUInt16LittleEndian(r.AsSpan(4), (ushort)m.Type);
        BinaryPrimitives.WriteUInt16LittleEndian(r.AsSpan(6), (ushort)m.Addr.Length);
        m.Addr.Span.CopyTo(r.AsSpan(8));
        return r;
    }
}
