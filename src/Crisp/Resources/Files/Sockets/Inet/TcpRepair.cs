using System.Buffers.Binary;
using Crisp.Images.Proto;
using Crisp.Linux;
using static Crisp.Linux.SocketCalls;

namespace Crisp.Resources.Files.Sockets.Inet;

/// <summary>An established TCP connection read out and put back through TCP_REPAIR, CRIU's way (soccr):
/// in repair mode the kernel lets us read both queues with their sequence numbers, set them on a fresh
/// socket, "connect" it without a handshake, and write the queues back without anything going on the wire.</summary>
public static unsafe class TcpRepair
{
    public const int TCP_QUICKACK = 12, TCP_TIMESTAMP = 24;
    private const int TCP_NO_QUEUE = 0, TCP_RECV_QUEUE = 1, TCP_SEND_QUEUE = 2;
    private const int TCPI_OPT_TIMESTAMPS = 1, TCPI_OPT_SACK = 2, TCPI_OPT_WSCALE = 4;
    private const int TCPOPT_MAXSEG = 2, TCPOPT_WINDOW = 3, TCPOPT_SACK_PERM = 4, TCPOPT_TIMESTAMP = 8;

    public static void On(int fd) => SetInt(fd, SOL_TCP, TCP_REPAIR, 1);

    /// <summary>Leaves repair mode; the kernel sends a window probe so the peer learns our window again.</summary>
    public static void Off(int fd) => SetInt(fd, SOL_TCP, TCP_REPAIR, 0);

    /// <summary>The tcp_info fields repair needs: state, negotiated options, window scales.</summary>
    public static (int State, int Options, uint SndWscale, uint RcvWscale) Info(int fd)
    {
        Span<byte> info = stackalloc byte[104];
        Get(fd, SOL_TCP, TCP_INFO, info);
        return (info[0], info[5], (uint)(info[6] & 0xf), (uint)(info[6] >> 4));
    }

    /// <summary>Reads the connection of a socket already in repair mode: the entry plus the receive queue
    /// (bytes not yet read by the task) and the send queue (bytes not yet acknowledged by the peer).</summary>
    public static (tcp_stream_entry Entry, byte[] InQ, byte[] OutQ) Dump(int fd, string what)
    {
        var (state, options, sndWscale, rcvWscale) = Info(fd);
        var e = new tcp_stream_entry
        {
            InqLen = (uint)Ioctl(fd, SIOCINQ),
            OutqLen = (uint)Ioctl(fd, SIOCOUTQ),
            UnsqLen = (uint)Ioctl(fd, SIOCOUTQNSD),
            OptMask = (uint)options,
            SndWscale = sndWscale,
            RcvWscale = rcvWscale,
            MssClamp = (uint)GetInt(fd, SOL_TCP, TCP_MAXSEG),
            Nodelay = GetInt(fd, SOL_TCP, TCP_NODELAY) != 0,
            Cork = GetInt(fd, SOL_TCP, TCP_CORK) != 0,
        };
        // Our FIN, not yet acknowledged, counts in both send-queue sizes; it is no data (CRIU drops it too).
        if (TcpHalfClose.SentFin(state))
        {
            e.OutqLen = e.OutqLen > 0 ? e.OutqLen - 1 : 0;
            e.UnsqLen = e.UnsqLen > 0 ? e.UnsqLen - 1 : 0;
        }
        if ((options & TCPI_OPT_TIMESTAMPS) != 0)
            e.Timestamp = (uint)GetInt(fd, SOL_TCP, TCP_TIMESTAMP);
        Span<byte> w = stackalloc byte[20];
        if (Get(fd, SOL_TCP, TCP_REPAIR_WINDOW, w) == 20)
        {
            e.SndWl1 = U32(w, 0);
            e.SndWnd = U32(w, 4);
            e.MaxWindow = U32(w, 8);
            e.RcvWnd = U32(w, 12);
            e.RcvWup = U32(w, 16);
        }
        var (inSeq, inQ) = ReadQueue(fd, TCP_RECV_QUEUE, e.InqLen, what);
        var (outSeq, outQ) = ReadQueue(fd, TCP_SEND_QUEUE, e.OutqLen, what);
        // ACKs are still processed in repair mode: the sent part may have shrunk since SIOCOUTQ. The send
        // queue's seq is its tail (write_seq), so the bytes peeked now are exactly the queue that is left.
        e.OutqLen = (uint)outQ.Length;
        e.UnsqLen = Math.Min(e.UnsqLen, e.OutqLen);
        SetInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE);
        e.InqSeq = inSeq;
        e.OutqSeq = outSeq;
        return (e, inQ, outQ);
    }

    /// <summary>The next sequence number of a queue (TCP_QUEUE_SEQ) and its bytes, peeked.</summary>
    private static (uint Seq, byte[] Data) ReadQueue(int fd, int queue, uint length, string what)
    {
        SetInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, queue);
        uint seq = (uint)GetInt(fd, SOL_TCP, TCP_QUEUE_SEQ);
        var data = new byte[length];
        if (length > 0)
        {
            long n = TryRecv(fd, data, MSG_PEEK | MSG_DONTWAIT);
            bool acked = queue == TCP_SEND_QUEUE && n >= 0 && n < length;
            if (n != length && !acked)
                throw new CrispException($"{what}: peeking the {(queue == TCP_RECV_QUEUE ? "receive" : "send")} queue gave {n} of {length} bytes");
            if (acked)
                data = data[..(int)n];
        }
        return (seq, data);
    }

    /// <summary>Puts a connection back on a fresh socket in repair mode: sequence numbers, bind and a
    /// handshake-less connect, options, both queues, the window, then the FINs of a half-closed
    /// <paramref name="state"/> (forged in <paramref name="netns"/>). The socket stays in repair mode.</summary>
    public static void Restore(int fd, int state, UnixFd? netns, tcp_stream_entry e, InetAddress src, InetAddress dst, byte[] inQ, byte[] outQ)
    {
        // The image's seqs count the FINs (CRIU's too); the connection is rebuilt without them.
        bool peerFin = TcpHalfClose.ReceivedFin(state);
        uint inSeq = e.InqSeq - (peerFin ? 1u : 0), outSeq = e.OutqSeq - (TcpHalfClose.SentFin(state) ? 1u : 0);
        Bind(fd, src.ToSockaddr());
        SetInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE);
        SetInt(fd, SOL_TCP, TCP_QUEUE_SEQ, (int)(inSeq - e.InqLen));
        SetInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE);
        SetInt(fd, SOL_TCP, TCP_QUEUE_SEQ, (int)(outSeq - e.OutqLen));
        Connect(fd, dst.ToSockaddr());

        var opts = new List<(int Code, uint Value)>();
        if ((e.OptMask & TCPI_OPT_WSCALE) != 0)
            opts.Add((TCPOPT_WINDOW, e.SndWscale + (e.RcvWscale << 16)));
        if ((e.OptMask & TCPI_OPT_SACK) != 0)
            opts.Add((TCPOPT_SACK_PERM, 0));
        if ((e.OptMask & TCPI_OPT_TIMESTAMPS) != 0)
            opts.Add((TCPOPT_TIMESTAMP, 0));
        opts.Add((TCPOPT_MAXSEG, e.MssClamp));
        var raw = new byte[opts.Count * 8];
        for (int i = 0; i < opts.Count; i++)
        {
            BinaryPrimitives.WriteInt32LittleEndian(raw.AsSpan(8 * i), opts[i].Code);
            BinaryPrimitives.WriteUInt32LittleEndian(raw.AsSpan(8 * i + 4), opts[i].Value);
        }
        Set(fd, SOL_TCP, TCP_REPAIR_OPTIONS, raw);
        if ((e.OptMask & TCPI_OPT_TIMESTAMPS) != 0)
            SetInt(fd, SOL_TCP, TCP_TIMESTAMP, (int)e.Timestamp);
        if (inQ.Length > 0)
        {
            SetInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE);
            SendAll(fd, inQ);
        }
        // The send queue has a part the peer may already have seen (sent, not acknowledged): it goes back
        // in repair mode, so it counts as sent. The unsent rest is written normally, outside repair mode.
        uint unsent = Math.Min(e.UnsqLen, (uint)outQ.Length);
        int sent = outQ.Length - (int)unsent;
        SetInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE);
        if (sent > 0)
            SendAll(fd, outQ.AsSpan(0, sent));
        // The window after the receive queue (the kernel checks rcv_wup against rcv_nxt, which that
        // queue moved on) but before the unsent part goes out, so the stack sends into the peer's real window.
        if (e.HasSndWl1)
        {
            Span<byte> w = stackalloc byte[20];
            BinaryPrimitives.WriteUInt32LittleEndian(w, e.SndWl1);
            BinaryPrimitives.WriteUInt32LittleEndian(w[4..], e.SndWnd);
            BinaryPrimitives.WriteUInt32LittleEndian(w[8..], e.MaxWindow);
            // rcv_wup was taken past the peer's FIN, which is not back yet.
            BinaryPrimitives.WriteUInt32LittleEndian(w[12..], e.RcvWnd + (peerFin ? 1u : 0));
            BinaryPrimitives.WriteUInt32LittleEndian(w[16..], e.RcvWup - (peerFin ? 1u : 0));
            Set(fd, SOL_TCP, TCP_REPAIR_WINDOW, w);
        }
        if (unsent > 0)
        {
            SetInt(fd, SOL_TCP, TCP_REPAIR, 0);
            SendAll(fd, outQ.AsSpan(sent));
            On(fd);
        }
        SetInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE);
        if (state != InetSocketFile.TCP_ESTABLISHED)
            TcpHalfClose.Restore(fd, state, netns, src, dst, inSeq, outSeq - (uint)outQ.Length,
                e.HasSndWl1 ? e.SndWnd >> (int)e.SndWscale : 0xffff);
        SetInt(fd, SOL_TCP, TCP_NODELAY, e.Nodelay ? 1 : 0);
        if (e.Cork)
            SetInt(fd, SOL_TCP, TCP_CORK, 1);
    }

    /// <summary>send() until all is queued; the kernel may refuse a big chunk in repair mode, so halve it. A send
    /// buffer that fills first (small chunks cost more per byte, and a loaded machine's TCP memory is tighter) is
    /// raised once, past the queue's size; the dumped size is set again with the other options afterwards.</summary>
    private static void SendAll(int fd, ReadOnlySpan<byte> data)
    {
        int chunk = data.Length;
        bool raised = false;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (!data.IsEmpty)
        {
            var part = data[..Math.Min(chunk, data.Length)];
            long n;
            fixed (byte* p = part)
                n = RawSyscall.TryCall(Sysno.sendto, fd, (long)p, part.Length, MSG_NOSIGNAL | MSG_DONTWAIT, 0, 0);
            if (n <= 0)
            {
                // Only a lack of memory is worth a smaller chunk or more room; anything else is the connection's error.
                bool memory = n is 0 or -Errnos.ENOMEM or -Errnos.EAGAIN or -105;
                if (memory && chunk > 1024)
                {
                    chunk /= 2;
                    continue;
                }
                if (memory && !raised)
                {
                    raised = true;
                    long room = Math.Min((long)GetInt(fd, SOL_SOCKET, SO_SNDBUF) + 4L * data.Length, 64L << 20);
                    SetInt(fd, SOL_SOCKET, SO_SNDBUFFORCE, (int)(room / 2));   // the kernel doubles it
                    chunk = data.Length;
                    continue;
                }
                if (memory && clock.ElapsedMilliseconds < 2000)
                {
                    Thread.Sleep(2);   // TCP memory under pressure: it comes back as other sockets drain
                    continue;
                }
                throw new SyscallException("send (tcp repair queue)", n < 0 ? (int)-n : Errnos.EAGAIN);
            }
            data = data[(int)n..];
        }
    }

    private static uint U32(ReadOnlySpan<byte> s, int at) => BinaryPrimitives.ReadUInt32LittleEndian(s[at..]);
}
