using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux;
using static Crisp.Linux.SocketCalls;

namespace Crisp.Resources.Files.Sockets;

/// <summary>A socket's receive queue read without consuming it, CRIU's way (sk-queue.c): SO_PEEK_OFF
/// at 0, then MSG_PEEK reads that each move the peek offset on — one message per read for datagram
/// and seqpacket sockets (boundaries kept), runs of bytes for streams. The offset is put back after.</summary>
public static unsafe class SocketQueue
{
    private const int MaxMessage = 4 << 20;

    public static List<byte[]> Peek(int fd, string what)
    {
        int oldOff = GetInt(fd, SOL_SOCKET, SO_PEEK_OFF);
        SetInt(fd, SOL_SOCKET, SO_PEEK_OFF, 0);
        var messages = new List<byte[]>();
        var buf = new byte[MaxMessage];
        byte* control = stackalloc byte[256];
        try
        {
            while (true)
            {
                long n;
                int flags;
                fixed (byte* b = buf)
                {
                    var iov = new Iovec((nint)b, (nuint)buf.Length);
                    var msg = new MsgHdr { Iov = &iov, IovLength = 1, Control = control, ControlLength = 256 };
                    n = RawSyscall.TryCall(Sysno.recvmsg, fd, (long)&msg, MSG_PEEK | MSG_DONTWAIT | Crisp.Linux.Sockets.MSG_CMSG_CLOEXEC);
                    if (n == -Errnos.EAGAIN)
                        break;
                    if (n < 0)
                        throw new SyscallException($"{what}: recvmsg(MSG_PEEK)", (int)-n);
                    flags = msg.Flags;
                    RefuseFds(control, (int)msg.ControlLength, what);
                }
                if ((flags & Crisp.Linux.Sockets.MSG_TRUNC) != 0)
                    throw new CrispException($"{what}: a queued message is larger than {MaxMessage} bytes");
                messages.Add(buf.AsSpan(0, (int)n).ToArray());
                if (n == 0)
                    break;     // end of stream (peer shut down), or an empty datagram: nothing after it is reachable
            }
        }
        finally
        {
            SetInt(fd, SOL_SOCKET, SO_PEEK_OFF, oldOff);
        }
        if (messages.Count > 0 && messages[^1].Length == 0 && GetInt(fd, SOL_SOCKET, SO_TYPE) == Crisp.Linux.Sockets.SOCK_STREAM)
            messages.RemoveAt(messages.Count - 1);
        return messages;
    }

    /// <summary>Peeking a message that carries fds installs them in crisp: close them and refuse.</summary>
    private static void RefuseFds(byte* control, int length, string what)
    {
        bool any = false;
        for (byte* p = control; p + sizeof(CmsgHdr) <= control + length;)
        {
            var c = (CmsgHdr*)p;
            if (c->Length < (nuint)sizeof(CmsgHdr))
                break;
            if (c->Level == SOL_SOCKET && c->Type == Crisp.Linux.Sockets.SCM_RIGHTS)
            {
                int n = ((int)c->Length - sizeof(CmsgHdr)) / sizeof(int);
                for (int i = 0; i < n; i++)
                    FileIo.CloseRaw(((int*)(p + sizeof(CmsgHdr)))[i]);
                any = true;
            }
            p += ((int)c->Length + 7) & ~7;
        }
        if (any)
            throw new CrispException($"{what}: a queued message carries file descriptors (SCM_RIGHTS), which is not supported yet");
    }
}

/// <summary>Dump-wide: queued messages of every socket, written to sk-queues.img once at the end.</summary>
public sealed class SkQueuesDump
{
    public List<(uint IdFor, byte[] Data)> Packets { get; } = [];

    public void Write(ImageDirectory images)
    {
        if (Packets.Count == 0)
            return;
        using var w = images.CreateWriter(ImageFile.SkQueues);
        foreach (var (id, data) in Packets)
            w.Write(new sk_packet_entry { IdFor = id, Length = (uint)data.Length }, data);
    }

    /// <summary>Every queued message in the images, by the file id of the socket that queues it.</summary>
    public static Dictionary<uint, List<byte[]>> Read(ImageDirectory images)
    {
        var all = new Dictionary<uint, List<byte[]>>();
        if (!images.Exists(ImageFile.SkQueues))
            return all;
        using var r = images.OpenReader(ImageFile.SkQueues);
        while (r.Read<sk_packet_entry>() is { } e)
        {
            if (e.Scm.Count > 0)
                throw new CrispException($"sk-queues.img: message for socket {e.IdFor} carries control data, which is not supported");
            if (!all.TryGetValue(e.IdFor, out var list))
                all[e.IdFor] = list = [];
            list.Add(r.ReadExtra(e.Length));
        }
        return all;
    }
}
