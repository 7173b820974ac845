using System.Runtime.InteropServices;

namespace Crisp.Linux;

/// <summary>socketpair(2), sendmsg(2)/recvmsg(2) and passing fds with SCM_RIGHTS.</summary>
public static unsafe partial class Sockets
{
    public const int AF_UNIX = 1, SOCK_STREAM = 1, SOCK_DGRAM = 2, SOCK_RAW = 3, SOCK_SEQPACKET = 5,
        SOCK_NONBLOCK = 0x800, SOCK_CLOEXEC = 0x80000;
    public const int SOL_SOCKET = 1, SCM_RIGHTS = 1, SCM_CREDENTIALS = 2;
    public const int MSG_CTRUNC = 0x8, MSG_TRUNC = 0x20, MSG_DONTWAIT = 0x40, MSG_NOSIGNAL = 0x4000,
        MSG_CMSG_CLOEXEC = 0x40000000;

    /// <summary>SCM_MAX_FD: the most fds one SCM_RIGHTS message carries.</summary>
    public const int MaxFdsPerMessage = 253;

    [LibraryImport("libc", EntryPoint = "socketpair", SetLastError = true)]
    private static partial int socketpair(int domain, int type, int protocol, int* sv);

    [LibraryImport("libc", EntryPoint = "sendmsg", SetLastError = true)]
    private static partial nint sendmsg(int fd, MsgHdr* msg, int flags);

    [LibraryImport("libc", EntryPoint = "recvmsg", SetLastError = true)]
    private static partial nint recvmsg(int fd, MsgHdr* msg, int flags);

    /// <summary>A connected pair of AF_UNIX sockets (close-on-exec).</summary>
    public static (UnixFd, UnixFd) SocketPair(int type = SOCK_SEQPACKET)
    {
        int* sv = stackalloc int[2];
        SyscallException.Check(socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv), "socketpair");
        return (new UnixFd(sv[0]), new UnixFd(sv[1]));
    }

    public static long SendMsg(int sock, MsgHdr* msg, int flags)
        => SyscallException.Check((long)sendmsg(sock, msg, flags), "sendmsg");

    public static long RecvMsg(int sock, MsgHdr* msg, int flags)
        => SyscallException.Check((long)recvmsg(sock, msg, flags), "recvmsg");

    private static int CmsgAlign(int n) => (n + 7) & ~7;
    private static int CmsgSpace(int dataLength) => sizeof(CmsgHdr) + CmsgAlign(dataLength);

    /// <summary>Sends <paramref name="fds"/> (at most 253) in one SCM_RIGHTS message with a one-byte
    /// payload (or <paramref name="payload"/>; stream sockets need at least one byte of data).</summary>
    public static void SendFds(int sock, ReadOnlySpan<int> fds, ReadOnlySpan<byte> payload = default)
    {
        if (fds.Length is 0 or > MaxFdsPerMessage)
            throw new ArgumentOutOfRangeException(nameof(fds), $"{fds.Length} fds; 1..{MaxFdsPerMessage} per message");
        byte dummy = 0;
        int space = CmsgSpace(fds.Length * sizeof(int));
        byte* control = stackalloc byte[space];
        new Span<byte>(control, space).Clear();
        var cmsg = (CmsgHdr*)control;
        cmsg->Length = (nuint)(sizeof(CmsgHdr) + fds.Length * sizeof(int));
        cmsg->Level = SOL_SOCKET;
        cmsg->Type = SCM_RIGHTS;
        fds.CopyTo(new Span<int>(control + sizeof(CmsgHdr), fds.Length));

        fixed (byte* data = payload)
        {
            var iov = payload.IsEmpty ? new Iovec((nint)(&dummy), 1) : new Iovec((nint)data, (nuint)payload.Length);
            var msg = new MsgHdr { Iov = &iov, IovLength = 1, Control = control, ControlLength = (nuint)space };
            SendMsg(sock, &msg, MSG_NOSIGNAL);
        }
    }

    /// <summary>Receives one message carrying up to <paramref name="max"/> fds (close-on-exec).
    /// Returns the fds in order (empty when the message had none). Throws when the control data
    /// was truncated, after closing whatever did arrive.</summary>
    public static int[] ReceiveFds(int sock, int max, Span<byte> payload = default)
    {
        byte dummy = 0;
        int space = CmsgSpace(max * sizeof(int));
        byte* control = stackalloc byte[space];
        new Span<byte>(control, space).Clear();
        fixed (byte* data = payload)
        {
            var iov = payload.IsEmpty ? new Iovec((nint)(&dummy), 1) : new Iovec((nint)data, (nuint)payload.Length);
            var msg = new MsgHdr { Iov = &iov, IovLength = 1, Control = control, ControlLength = (nuint)space };
            RecvMsg(sock, &msg, MSG_CMSG_CLOEXEC);

            var fds = new List<int>();
            for (byte* p = control; p + sizeof(CmsgHdr) <= control + msg.ControlLength;)
            {
                var cmsg = (CmsgHdr*)p;
                if (cmsg->Length < (nuint)sizeof(CmsgHdr))
                    break;
                if (cmsg->Level == SOL_SOCKET && cmsg->Type == SCM_RIGHTS)
                {
                    int n = ((int)cmsg->Length - sizeof(CmsgHdr)) / sizeof(int);
                    fds.AddRange(new ReadOnlySpan<int>(p + sizeof(CmsgHdr), n));
                }
                p += CmsgAlign((int)cmsg->Length);
            }
            if ((msg.Flags & MSG_CTRUNC) != 0)
            {
                foreach (int fd in fds)
                    FileIo.CloseRaw(fd);
                throw new SyscallException($"recvmsg(SCM_RIGHTS, max {max}): control data truncated", Errnos.EINVAL);
            }
            return fds.ToArray();
        }
    }
}

/// <summary>struct msghdr (56 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct MsgHdr
{
    public void* Name;
    public uint NameLength;
    public Iovec* Iov;
    public nuint IovLength;
    public void* Control;
    public nuint ControlLength;
    public int Flags;
}

/// <summary>struct cmsghdr header (16 bytes); data follows, 8-byte aligned.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct CmsgHdr
{
    public nuint Length;
    public int Level;
    public int Type;
}
