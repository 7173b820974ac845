using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux;
using static Crisp.Linux.SocketCalls;

namespace Crisp.Resources.Files.Sockets;

/// <summary>A socket's receive queue read without consuming it, CRIU's way (sk-queue.c): SO_PEEK_OFF
/// at 0, then MSG_PEEK reads that each move the peek offset on — one message per read for datagram
/// and seqpacket sockets (boundaries kept), runs of bytes for streams (the kernel ends a run at a
/// message that carries fds). The offset is put back after. Fds a message carries (SCM_RIGHTS) arrive
/// in crisp as new fds: the caller owns them.</summary>
public static unsafe class SocketQueue
{
    private const int MaxMessage = 4 << 20, ControlSpace = 4096;

    public static List<QueuedMessage> Peek(int fd, string what)
    {
        int oldOff = GetInt(fd, SOL_SOCKET, SO_PEEK_OFF);
        SetInt(fd, SOL_SOCKET, SO_PEEK_OFF, 0);
        var messages = new List<QueuedMessage>();
        var buf = new byte[MaxMessage];
        byte* control = stackalloc byte[ControlSpace];
        try
        {
            while (true)
            {
                long n;
                int flags;
                List<UnixFd> fds;
                fixed (byte* b = buf)
                {
                    var iov = new Iovec((nint)b, (nuint)buf.Length);
                    var msg = new MsgHdr { Iov = &iov, IovLength = 1, Control = control, ControlLength = ControlSpace };
                    n = RawSyscall.TryCall(Sysno.recvmsg, fd, (long)&msg, MSG_PEEK | MSG_DONTWAIT | Crisp.Linux.Sockets.MSG_CMSG_CLOEXEC);
                    if (n == -Errnos.EAGAIN)
                        break;
                    if (n < 0)
                        throw new SyscallException($"{what}: recvmsg(MSG_PEEK)", (int)-n);
                    flags = msg.Flags;
                    fds = Rights(control, (int)msg.ControlLength);
                }
                var m = new QueuedMessage(buf.AsSpan(0, (int)n).ToArray(), fds);
                messages.Add(m);
                if ((flags & Crisp.Linux.Sockets.MSG_TRUNC) != 0)
                    throw new CrispException($"{what}: a queued message is larger than {MaxMessage} bytes");
                if ((flags & Crisp.Linux.Sockets.MSG_CTRUNC) != 0)
                    throw new CrispException($"{what}: a queued message carries more control data than {ControlSpace} bytes");
                if (n == 0 && fds.Count == 0)
                    break;     // end of stream (peer shut down), or an empty datagram: nothing after it is reachable
            }
        }
        catch
        {
            foreach (var m in messages)
                m.Dispose();
            throw;
        }
        finally
        {
            SetInt(fd, SOL_SOCKET, SO_PEEK_OFF, oldOff);
        }
        if (messages.Count > 0 && messages[^1].Data.Length == 0 && messages[^1].Fds.Count == 0
            && GetInt(fd, SOL_SOCKET, SO_TYPE) == Crisp.Linux.Sockets.SOCK_STREAM)
            messages.RemoveAt(messages.Count - 1);
        return messages;
    }

    /// <summary>The fds of the SCM_RIGHTS in a control buffer (SCM_CREDENTIALS are the receiver's view, not queued state).</summary>
    private static List<UnixFd> Rights(byte* control, int length)
    {
        var fds = new List<UnixFd>();
        for (byte* p = control; p + sizeof(CmsgHdr) <= control + length;)
        {
            var c = (CmsgHdr*)p;
            if (c->Length < (nuint)sizeof(CmsgHdr))
                break;
            if (c->Level == SOL_SOCKET && c->Type == Crisp.Linux.Sockets.SCM_RIGHTS)
            {
                int n = ((int)c->Length - sizeof(CmsgHdr)) / sizeof(int);
                for (int i = 0; i < n; i++)
                    fds.Add(new UnixFd(((int*)(p + sizeof(CmsgHdr)))[i]));
            }
            p += ((int)c->Length + 7) & ~7;
        }
        return fds;
    }

    /// <summary>Sends one queued message back (restore), with its fds as SCM_RIGHTS when it had any.</summary>
    public static long Send(int sender, ReadOnlySpan<byte> data, ReadOnlySpan<int> fds, ReadOnlySpan<byte> to)
    {
        if (fds.IsEmpty)
            return SocketCalls.Send(sender, data, MSG_DONTWAIT, to);
        int space = sizeof(CmsgHdr) + ((fds.Length * sizeof(int) + 7) & ~7);
        byte* control = stackalloc byte[space];
        new Span<byte>(control, space).Clear();
        var cmsg = (CmsgHdr*)control;
        cmsg->Length = (nuint)(sizeof(CmsgHdr) + fds.Length * sizeof(int));
        cmsg->Level = SOL_SOCKET;
        cmsg->Type = Crisp.Linux.Sockets.SCM_RIGHTS;
        fds.CopyTo(new Span<int>(control + sizeof(CmsgHdr), fds.Length));
        fixed (byte* d = data)
        fixed (byte* a = to)
        {
            var iov = new Iovec((nint)d, (nuint)data.Length);
            var msg = new MsgHdr { Name = to.IsEmpty ? null : a, NameLength = (uint)to.Length, Iov = &iov, IovLength = 1, Control = control, ControlLength = (nuint)space };
            return Crisp.Linux.Sockets.SendMsg(sender, &msg, MSG_DONTWAIT | Crisp.Linux.Sockets.MSG_NOSIGNAL);
        }
    }
}

/// <summary>One queued message as peeked: its bytes and the fds it carries (now crisp's).</summary>
public sealed record QueuedMessage(byte[] Data, List<UnixFd> Fds) : IDisposable
{
    public void Dispose()
    {
        foreach (var fd in Fds)
            fd.Dispose();
    }
}

/// <summary>One queued message of sk-queues.img: its bytes and the file ids of the fds it carries.</summary>
public sealed record QueuedPacket(byte[] Data, uint[] Rights);

/// <summary>Dump-wide: queued messages of every socket, written to sk-queues.img once at the end.</summary>
public sealed class SkQueuesDump
{
    public List<(uint IdFor, QueuedPacket Packet)> Packets { get; } = [];

    public void Write(ImageDirectory images)
    {
        if (Packets.Count == 0)
            return;
        using var w = images.CreateWriter(ImageFile.SkQueues);
        foreach (var (id, p) in Packets)
        {
            var e = new sk_packet_entry { IdFor = id, Length = (uint)p.Data.Length };
            if (p.Rights.Length > 0)
                e.Scm.Add(new scm_entry { Type = (uint)Crisp.Linux.Sockets.SCM_RIGHTS, Rights = { p.Rights } });
            w.Write(e, p.Data);
        }
    }

    /// <summary>Every queued message in the images, by the file id of the socket that queues it.</summary>
    public static Dictionary<uint, List<QueuedPacket>> Read(ImageDirectory images)
    {
        var all = new Dictionary<uint, List<QueuedPacket>>();
        if (!images.Exists(ImageFile.SkQueues))
            return all;
        using var r = images.OpenReader(ImageFile.SkQueues);
        while (r.Read<sk_packet_entry>() is { } e)
        {
            if (e.Scm.Any(s => s.Type != Crisp.Linux.Sockets.SCM_RIGHTS) || e.Scm.Count > 1)
                throw new CrispException($"sk-queues.img: message for socket {e.IdFor} carries control data other than one SCM_RIGHTS");
            if (!all.TryGetValue(e.IdFor, out var list))
                all[e.IdFor] = list = [];
            list.Add(new QueuedPacket(r.ReadExtra(e.Length), e.Scm.SelectMany(s => s.Rights).ToArray()));
        }
        return all;
    }
}
