using Crisp.Linux;
using static Crisp.Linux.SocketCalls;

namespace Crisp.Resources.Files.Sockets.Inet;

/// <summary>Connections where a FIN has gone one way or both (FIN_WAIT1, FIN_WAIT2, CLOSE_WAIT, LAST_ACK,
/// CLOSING), CRIU's way (soccr): the image holds the queues' sequence numbers as the kernel reports them,
/// each FIN counted in; the restore re-creates the connection as established without the FINs, then puts
/// them back: ours by shutdown(SHUT_WR) in repair mode (as already sent when the peer acknowledged it),
/// the peer's by a FIN segment crisp forges from the peer's address, which the socket takes in as if it
/// had come over the wire. States the kernel cannot be brought to (SYN_SENT) are refused by name.</summary>
public static class TcpHalfClose
{
    public const int FIN_WAIT1 = 4, FIN_WAIT2 = 5, CLOSE_WAIT = 8, LAST_ACK = 9, CLOSING = 11;

    // Our FIN goes back before the peer's (we sent ours first), after it (LAST_ACK), or acknowledged.
    private const int OurFinFirst = 1 << FIN_WAIT1 | 1 << FIN_WAIT2 | 1 << CLOSING;
    private const int OurFinSecond = 1 << LAST_ACK;
    private const int OurFinAcked = 1 << FIN_WAIT2;
    private const int PeerFin = 1 << CLOSE_WAIT | 1 << LAST_ACK | 1 << CLOSING;

    /// <summary>CRIU's mark (SOCCR_MARK): the network lock lets forged segments carrying it through.</summary>
    public const int Mark = 0xC114;

    private const int IPPROTO_RAW = 255, SOCK_RAW = 3;
    private const byte FIN = 0x01, ACK = 0x10;

    /// <summary>Whether a connection in <paramref name="state"/> can be dumped and restored.</summary>
    public static bool Restorable(int state) => state == InetSocketFile.TCP_ESTABLISHED || (state < 32 && ((1 << state) & (OurFinFirst | OurFinSecond | PeerFin)) != 0);

    /// <summary>Our FIN is in the send queue (counted by SIOCOUTQ and in write_seq, though it is no data).</summary>
    public static bool SentFin(int state) => state < 32 && ((1 << state) & (OurFinFirst | OurFinSecond)) != 0;

    /// <summary>The peer's FIN was received (counted in rcv_nxt, the receive queue's seq).</summary>
    public static bool ReceivedFin(int state) => state < 32 && ((1 << state) & PeerFin) != 0;

    public static string Name(int state) => state switch
    {
        1 => "ESTABLISHED", 2 => "SYN_SENT", 3 => "SYN_RECV", 4 => "FIN_WAIT1", 5 => "FIN_WAIT2", 6 => "TIME_WAIT",
        7 => "CLOSE", 8 => "CLOSE_WAIT", 9 => "LAST_ACK", 10 => "LISTEN", 11 => "CLOSING", _ => $"state {state}",
    };

    /// <summary>Puts the FINs back on a connection restored as established (still in repair mode). The
    /// sequence numbers are the ones the connection was rebuilt with: <paramref name="rcvNxt"/> is where
    /// the peer's FIN sits, <paramref name="sndUna"/> the first byte the peer has not acknowledged.</summary>
    public static void Restore(int fd, int state, UnixFd? netns, InetAddress local, InetAddress peer, uint rcvNxt, uint sndUna, uint peerWindow)
    {
        int bit = 1 << state;
        if ((bit & OurFinFirst) != 0)
            ShutdownInRepair(fd, acked: (bit & OurFinAcked) != 0);
        if ((bit & PeerFin) != 0)
            Forge(netns, local, peer, rcvNxt, sndUna, FIN | ACK, peerWindow);
        if ((bit & OurFinSecond) != 0)
            ShutdownInRepair(fd, acked: false);
        if ((bit & OurFinAcked) != 0)
            Forge(netns, local, peer, rcvNxt, sndUna + 1, ACK, peerWindow);
        int now = TcpRepair.Info(fd).State;
        if (now != state && !Later(now, state))
            throw new CrispException($"{local} -> {peer}: restored as {Name(now)}, not {Name(state)} (a forged segment was not taken in?)");
    }

    /// <summary>A state the peer's own packets could have moved the connection on to meanwhile (no network lock):
    /// our FIN acknowledged, its FIN arrived, or the connection over.</summary>
    private static bool Later(int now, int state) => now is 6 or 7 || state == FIN_WAIT1 && now is FIN_WAIT2 or CLOSING;

    /// <summary>shutdown(SHUT_WR) queues our FIN; with the send queue selected, repair mode counts it as
    /// sent (the peer had it), else it goes out (or waits behind unsent data) like any FIN.</summary>
    private static void ShutdownInRepair(int fd, bool acked)
    {
        const int TCP_NO_QUEUE = 0, TCP_SEND_QUEUE = 2, SHUT_WR = 1;
        if (acked)
            SetInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE);
        Shutdown(fd, SHUT_WR);
        if (acked)
            SetInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE);
    }

    /// <summary>Sends the socket a segment from its peer through a raw socket in its network namespace: a
    /// bare TCP header (no options, no data) with the given numbers and the peer's window, checksummed.</summary>
    private static void Forge(UnixFd? netns, InetAddress local, InetAddress peer, uint seq, uint ack, byte flags, uint window)
    {
        var (family, from, to) = Raw(peer, local);
        var tcp = new byte[20];
        W16(tcp, 0, (ushort)peer.Port);
        W16(tcp, 2, (ushort)local.Port);
        W32(tcp, 4, seq);
        W32(tcp, 8, ack);
        tcp[12] = 5 << 4;
        tcp[13] = flags;
        W16(tcp, 14, (ushort)Math.Min(window, 0xffff));
        W16(tcp, 16, Checksum(family, from, to, tcp));

        byte[] packet, dest;
        if (family == AF_INET)
        {
            packet = new byte[20 + tcp.Length];
            packet[0] = 0x45;
            W16(packet, 2, (ushort)packet.Length);
            packet[8] = 64;
            packet[9] = (byte)InetSocketFile.IPPROTO_TCP;
            from.CopyTo(packet, 12);
            to.CopyTo(packet, 16);
            dest = new byte[16];
            dest[0] = AF_INET;
            to.CopyTo(dest, 4);
        }
        else
        {
            packet = new byte[40 + tcp.Length];
            packet[0] = 0x60;
            W16(packet, 4, (ushort)tcp.Length);
            packet[6] = (byte)InetSocketFile.IPPROTO_TCP;
            packet[7] = 64;
            from.CopyTo(packet, 8);
            to.CopyTo(packet, 24);
            dest = new byte[28];
            dest[0] = AF_INET6;
            to.CopyTo(dest, 8);
        }
        tcp.CopyTo(packet, packet.Length - tcp.Length);
        // IPPROTO_RAW: the header is ours (any source address); the kernel fills the IPv4 checksum.
        using var raw = NetNamespaces.Socket(netns, family, SOCK_RAW, IPPROTO_RAW);
        SetInt(raw.Fd, SOL_SOCKET, SO_MARK, Mark);
        Send(raw.Fd, packet, 0, dest);
    }

    /// <summary>The family and raw address bytes a segment from <paramref name="from"/> to <paramref name="to"/>
    /// travels with: a v4-mapped IPv6 connection carries IPv4 packets.</summary>
    private static (int Family, byte[] From, byte[] To) Raw(InetAddress from, InetAddress to)
    {
        byte[] f = Bytes(from), t = Bytes(to);
        if (from.Family == AF_INET6 && Mapped(f) && Mapped(t))
            return (AF_INET, f[12..], t[12..]);
        return (from.Family, f, t);
    }

    private static bool Mapped(byte[] a) => a.Length == 16 && a.AsSpan(0, 10).IndexOfAnyExcept((byte)0) < 0 && a[10] == 0xff && a[11] == 0xff;

    private static byte[] Bytes(InetAddress a)
    {
        var sa = a.ToSockaddr();
        return a.Family == AF_INET6 ? sa[8..24] : sa[4..8];
    }

    /// <summary>The TCP checksum: ones' complement sum over the pseudo-header (addresses, protocol, length) and the segment.</summary>
    private static ushort Checksum(int family, byte[] from, byte[] to, byte[] segment)
    {
        var pseudo = new List<byte>();
        pseudo.AddRange(from);
        pseudo.AddRange(to);
        if (family == AF_INET)
            pseudo.AddRange([0, (byte)InetSocketFile.IPPROTO_TCP, (byte)(segment.Length >> 8), (byte)segment.Length]);
        else
            pseudo.AddRange([0, 0, (byte)(segment.Length >> 8), (byte)segment.Length, 0, 0, 0, (byte)InetSocketFile.IPPROTO_TCP]);
        pseudo.AddRange(segment);
        if (pseudo.Count % 2 != 0)
            pseudo.Add(0);
        uint sum = 0;
        for (int i = 0; i < pseudo.Count; i += 2)
            sum += (uint)(pseudo[i] << 8 | pseudo[i + 1]);
        while (sum >> 16 != 0)
            sum = (sum & 0xffff) + (sum >> 16);
        return (ushort)~sum;
    }

    private static void W16(byte[] b, int at, ushort v) => System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(at), v);
    private static void W32(byte[] b, int at, uint v) => System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(at), v);
}
