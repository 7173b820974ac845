using System.Buffers.Binary;

namespace Crisp.Linux;

/// <summary>What unix_diag says about one AF_UNIX socket (facts fdinfo and getsockopt lack).</summary>
public sealed record UnixDiag(uint Ino, int Type, int State, byte[] Name, uint PeerIno, uint[] Icons,
    uint RqLen, uint WqLen, int Shutdown, (uint Ino, uint Dev)? Vfs);

/// <summary>What inet_diag says about one TCP/UDP socket (the listen backlog is only here).</summary>
public sealed record InetDiag(uint Ino, int State, uint RQueue, uint WQueue);

/// <summary>What netlink_diag says about one bound AF_NETLINK socket: its port id, the multicast groups it
/// listens on (as 32-bit words, group 1 = bit 0 of the first), and where it is connected.</summary>
public sealed record NetlinkDiag(uint Ino, int Protocol, int State, uint PortId, uint DstPortId, uint DstGroup, uint[] Groups);

/// <summary>What packet_diag says about one AF_PACKET socket: its protocol (host order), the packet_diag_info
/// fields, each multicast membership (interface, type, count, address), fanout (id | type &lt;&lt; 16, or null) and
/// whether it has an rx or tx ring.</summary>
public sealed record PacketDiag(uint Ino, int Type, ushort Protocol, uint IfIndex, uint Version, uint Reserve, uint CopyThresh,
    uint Timestamp, uint Flags, (uint IfIndex, uint Count, ushort Type, byte[] Addr)[] Memberships, uint? Fanout,
    PacketRingDiag? RxRing, PacketRingDiag? TxRing);

/// <summary>struct packet_diag_ring: an mmap'ed ring's geometry (tpacket_req3's fields).</summary>
public sealed record PacketRingDiag(uint BlockSize, uint BlockNr, uint FrameSize, uint FrameNr, uint RetireTmo, uint SizeofPriv, uint Features);

/// <summary>NETLINK_SOCK_DIAG queries (sock_diag(7)): unix_diag by inode, inet_diag by dump.</summary>
public static class SockDiag
{
    private const int NETLINK_SOCK_DIAG = 4, SOCK_DIAG_BY_FAMILY = 20, NLMSG_ERROR = 2, NLMSG_DONE = 3;
    private const int NLM_F_REQUEST = 1, NLM_F_DUMP = 0x300;
    private const uint UDIAG_SHOW_NAME = 1, UDIAG_SHOW_VFS = 2, UDIAG_SHOW_PEER = 4, UDIAG_SHOW_ICONS = 8,
        UDIAG_SHOW_RQLEN = 0x10;
    private const int UNIX_DIAG_NAME = 0, UNIX_DIAG_VFS = 1, UNIX_DIAG_PEER = 2, UNIX_DIAG_ICONS = 3,
        UNIX_DIAG_RQLEN = 4, UNIX_DIAG_SHUTDOWN = 6;

    /// <summary>unix_diag for the socket of inode <paramref name="ino"/>; null if the kernel knows none.</summary>
    public static UnixDiag? Unix(uint ino)
    {
        var req = new byte[24];
        req[0] = SocketCalls.AF_UNIX;
        BinaryPrimitives.WriteUInt32LittleEndian(req.AsSpan(4), uint.MaxValue);      // all states
        BinaryPrimitives.WriteUInt32LittleEndian(req.AsSpan(8), ino);
        BinaryPrimitives.WriteUInt32LittleEndian(req.AsSpan(12),
            UDIAG_SHOW_NAME | UDIAG_SHOW_VFS | UDIAG_SHOW_PEER | UDIAG_SHOW_ICONS | UDIAG_SHOW_RQLEN);
        BinaryPrimitives.WriteUInt32LittleEndian(req.AsSpan(16), uint.MaxValue);     // no cookie
        BinaryPrimitives.WriteUInt32LittleEndian(req.AsSpan(20), uint.MaxValue);
        var replies = Query(req, NLM_F_REQUEST, allowMissing: true);
        if (replies.Count == 0)
            return null;
        var m = replies[0];
        byte[] name = [];
        uint peer = 0, rq = 0, wq = 0;
        int shutdown = 0;
        uint[] icons = [];
        (uint, uint)? vfs = null;
        foreach (var (type, data) in Attributes(m, 16))
        {
            switch (type)
            {
                case UNIX_DIAG_NAME: name = data.ToArray(); break;
                case UNIX_DIAG_VFS: vfs = (U32(data, 0), U32(data, 4)); break;
                case UNIX_DIAG_PEER: peer = U32(data, 0); break;
                case UNIX_DIAG_ICONS:
                    icons = new uint[data.Length / 4];
                    for (int i = 0; i < icons.Length; i++)
                        icons[i] = U32(data, i * 4);
                    break;
                case UNIX_DIAG_RQLEN: rq = U32(data, 0); wq = U32(data, 4); break;
                case UNIX_DIAG_SHUTDOWN: shutdown = data[0]; break;
            }
        }
        return new UnixDiag(U32(m, 4), m[1], m[2], name, peer, icons, rq, wq, shutdown, vfs);
    }

    /// <summary>inet_diag of the socket of inode <paramref name="ino"/> (family AF_INET/AF_INET6, protocol
    /// IPPROTO_TCP/UDP); null if not found.</summary>
    public static InetDiag? Inet(int family, int protocol, uint ino)
    {
        var req = new byte[56];
        req[0] = (byte)family;
        req[1] = (byte)protocol;
        BinaryPrimitives.WriteUInt32LittleEndian(req.AsSpan(4), uint.MaxValue);
        foreach (var m in Query(req, NLM_F_REQUEST | NLM_F_DUMP, allowMissing: false))
            if (U32(m, 68) == ino)
                return new InetDiag(ino, m[1], U32(m, 56), U32(m, 60));
        return null;
    }

    /// <summary>netlink_diag of the socket of inode <paramref name="ino"/> in the caller's network namespace; null
    /// when the kernel lists none (a socket that was never bound, explicitly or by sending, is in no table).
    /// netlink_diag only dumps, so every protocol's sockets are listed and the one asked for is picked.</summary>
    public static NetlinkDiag? Netlink(uint ino)
    {
        const byte NDIAG_PROTO_ALL = 255;
        const uint NDIAG_SHOW_GROUPS = 2;
        const int NETLINK_DIAG_GROUPS = 1;
        var req = new byte[20];
        req[0] = SocketCalls.AF_NETLINK;
        req[1] = NDIAG_PROTO_ALL;
        BinaryPrimitives.WriteUInt32LittleEndian(req.AsSpan(4), ino);
        BinaryPrimitives.WriteUInt32LittleEndian(req.AsSpan(8), NDIAG_SHOW_GROUPS);
        BinaryPrimitives.WriteUInt32LittleEndian(req.AsSpan(12), uint.MaxValue);
        BinaryPrimitives.WriteUInt32LittleEndian(req.AsSpan(16), uint.MaxValue);
        foreach (var m in Query(req, NLM_F_REQUEST | NLM_F_DUMP, allowMissing: false))
        {
            if (U32(m, 16) != ino)
                continue;
            uint[] groups = [];
            foreach (var (type, data) in Attributes(m, 28))
            {
                if (type != NETLINK_DIAG_GROUPS)
                    continue;
                groups = new uint[data.Length / 4];
                for (int i = 0; i < groups.Length; i++)
                    groups[i] = U32(data, i * 4);
            }
            return new NetlinkDiag(ino, m[2], m[3], U32(m, 4), U32(m, 8), U32(m, 12), groups);
        }
        return null;
    }

    /// <summary>packet_diag of the socket of inode <paramref name="ino"/> in the caller's network namespace (dump only:
    /// every packet socket is listed and the one asked for picked); null if not found.</summary>
    public static PacketDiag? Packet(uint ino)
    {
        const uint SHOW_INFO = 1, SHOW_MCLIST = 2, SHOW_RING_CFG = 4, SHOW_FANOUT = 8;
        const int DIAG_INFO = 0, DIAG_MCLIST = 1, DIAG_RX_RING = 2, DIAG_TX_RING = 3, DIAG_FANOUT = 4;
        var req = new byte[20];
        req[0] = 17;    // AF_PACKET
        BinaryPrimitives.WriteUInt32LittleEndian(req.AsSpan(4), ino);
        BinaryPrimitives.WriteUInt32LittleEndian(req.AsSpan(8), SHOW_INFO | SHOW_MCLIST | SHOW_RING_CFG | SHOW_FANOUT);
        BinaryPrimitives.WriteUInt32LittleEndian(req.AsSpan(12), uint.MaxValue);
        BinaryPrimitives.WriteUInt32LittleEndian(req.AsSpan(16), uint.MaxValue);
        foreach (var m in Query(req, NLM_F_REQUEST | NLM_F_DUMP, allowMissing: false))
        {
            if (U32(m, 4) != ino)
                continue;
            uint index = 0, version = 0, reserve = 0, thresh = 0, tstamp = 0, flags = 0;
            uint? fanout = null;
            PacketRingDiag? rx = null, tx = null;
            var members = new List<(uint, uint, ushort, byte[])>();
            foreach (var (type, data) in Attributes(m, 16))
            {
                switch (type)
                {
                    case DIAG_INFO:
                        (index, version, reserve, thresh, tstamp, flags) =
                            (U32(data, 0), U32(data, 4), U32(data, 8), U32(data, 12), U32(data, 16), U32(data, 20));
                        break;
                    case DIAG_MCLIST:
                        for (int at = 0; at + 44 <= data.Length; at += 44)
                        {
                            int alen = BinaryPrimitives.ReadUInt16LittleEndian(data.AsSpan(at + 10));
                            members.Add((U32(data, at), U32(data, at + 4), BinaryPrimitives.ReadUInt16LittleEndian(data.AsSpan(at + 8)),
                                data.AsSpan(at + 12, Math.Min(alen, 32)).ToArray()));
                        }
                        break;
                    case DIAG_RX_RING: rx = Ring(data); break;
                    case DIAG_TX_RING: tx = Ring(data); break;
                    case DIAG_FANOUT: fanout = U32(data, 0); break;
                }
            }
            ushort protocol = BinaryPrimitives.ReadUInt16LittleEndian(m.AsSpan(2));   // host order (ntohs in the kernel)
            return new PacketDiag(ino, m[1], protocol, index, version, reserve, thresh, tstamp, flags, [.. members], fanout, rx, tx);
        }
        return null;
    }

    private static PacketRingDiag Ring(byte[] d) =>
        new(U32(d, 0), U32(d, 4), U32(d, 8), U32(d, 12), U32(d, 16), U32(d, 20), U32(d, 24));

    private static uint U32(ReadOnlySpan<byte> s, int at) => BinaryPrimitives.ReadUInt32LittleEndian(s[at..]);

    private static IEnumerable<(int Type, byte[] Data)> Attributes(byte[] msg, int headerLength)
    {
        int at = headerLength;
        while (at + 4 <= msg.Length)
        {
            int len = BinaryPrimitives.ReadUInt16LittleEndian(msg.AsSpan(at));
            int type = BinaryPrimitives.ReadUInt16LittleEndian(msg.AsSpan(at + 2));
            if (len < 4 || at + len > msg.Length)
                yield break;
            yield return (type, msg.AsSpan(at + 4, len - 4).ToArray());
            at += (len + 3) & ~3;
        }
    }

    /// <summary>Sends one SOCK_DIAG_BY_FAMILY request; returns each reply's payload (after nlmsghdr).</summary>
    private static List<byte[]> Query(byte[] request, int flags, bool allowMissing)
    {
        using var nl = SocketCalls.Socket(SocketCalls.AF_NETLINK, Sockets.SOCK_DGRAM, NETLINK_SOCK_DIAG);
        var msg = new byte[16 + request.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(msg, (uint)msg.Length);
        BinaryPrimitives.WriteUInt16LittleEndian(msg.AsSpan(4), SOCK_DIAG_BY_FAMILY);
        BinaryPrimitives.WriteUInt16LittleEndian(msg.AsSpan(6), (ushort)flags);
        BinaryPrimitives.WriteUInt32LittleEndian(msg.AsSpan(8), 1);
        request.CopyTo(msg, 16);
        var kernel = new byte[12];
        kernel[0] = SocketCalls.AF_NETLINK;
        SocketCalls.Send(nl.Fd, msg, 0, kernel);

        var replies = new List<byte[]>();
        var buf = new byte[64 * 1024];
        while (true)
        {
            long n = SocketCalls.TryRecv(nl.Fd, buf, 0);
            if (n < 0)
                throw new SyscallException("recv(sock_diag)", (int)-n);
            for (int at = 0; at + 16 <= n;)
            {
                int len = (int)U32(buf, at);
                int type = BinaryPrimitives.ReadUInt16LittleEndian(buf.AsSpan(at + 4));
                if (len < 16 || at + len > n)
                    return replies;
                if (type == NLMSG_DONE)
                    return replies;
                if (type == NLMSG_ERROR)
                {
                    int err = -(int)U32(buf, at + 16);
                    if (err == 0 || (allowMissing && err == Errnos.ENOENT))
                        return replies;
                    throw new SyscallException("sock_diag", err);
                }
                replies.Add(buf.AsSpan(at + 16, len - 16).ToArray());
                at += (len + 3) & ~3;
            }
            if ((flags & NLM_F_DUMP) == 0)
                return replies;
        }
    }
}
