namespace Crisp.Linux;

/// <summary>Socket system calls on crisp's own fds (raw syscalls; addresses are raw sockaddr bytes).</summary>
public static unsafe class SocketCalls
{
    public const int AF_UNIX = 1, AF_INET = 2, AF_INET6 = 10, AF_NETLINK = 16;
    public const int SOL_SOCKET = 1, SOL_IP = 0, SOL_TCP = 6, SOL_IPV6 = 41;
    public const int SO_DEBUG = 1, SO_REUSEADDR = 2, SO_TYPE = 3, SO_DONTROUTE = 5, SO_BROADCAST = 6,
        SO_SNDBUF = 7, SO_RCVBUF = 8, SO_KEEPALIVE = 9, SO_OOBINLINE = 10, SO_NO_CHECK = 11,
        SO_PRIORITY = 12, SO_LINGER = 13, SO_REUSEPORT = 15, SO_PASSCRED = 16, SO_RCVLOWAT = 18,
        SO_RCVTIMEO = 20, SO_SNDTIMEO = 21, SO_BINDTODEVICE = 25, SO_ATTACH_FILTER = 26, SO_GET_FILTER = 26,
        SO_ACCEPTCONN = 30,
        SO_SNDBUFFORCE = 32, SO_RCVBUFFORCE = 33, SO_PASSSEC = 34, SO_MARK = 36, SO_PROTOCOL = 38,
        SO_DOMAIN = 39, SO_PEEK_OFF = 42, SO_LOCK_FILTER = 44, SO_BUF_LOCK = 72;
    public const int IP_FREEBIND = 15, IPV6_V6ONLY = 26;
    public const int TCP_NODELAY = 1, TCP_MAXSEG = 2, TCP_CORK = 3, TCP_KEEPIDLE = 4, TCP_KEEPINTVL = 5,
        TCP_KEEPCNT = 6, TCP_INFO = 11, TCP_REPAIR = 19, TCP_REPAIR_QUEUE = 20, TCP_QUEUE_SEQ = 21,
        TCP_REPAIR_OPTIONS = 22, TCP_REPAIR_WINDOW = 29;
    public const int MSG_PEEK = 2, MSG_DONTWAIT = 0x40, MSG_NOSIGNAL = 0x4000;
    public const int SIOCINQ = 0x541B, SIOCOUTQ = 0x5411, SIOCOUTQNSD = 0x894B;
    private const int ENOTCONN = 107;

    public static UnixFd Socket(int domain, int type, int protocol = 0)
        => new((int)RawSyscall.Call("socket", Sysno.socket, domain, type | Sockets.SOCK_CLOEXEC, protocol));

    public static void Bind(int fd, ReadOnlySpan<byte> addr)
    {
        fixed (byte* a = addr)
            RawSyscall.Call("bind", Sysno.bind, fd, (long)a, addr.Length);
    }

    public static void Connect(int fd, ReadOnlySpan<byte> addr)
    {
        fixed (byte* a = addr)
            RawSyscall.Call("connect", Sysno.connect, fd, (long)a, addr.Length);
    }

    public static void Listen(int fd, int backlog) => RawSyscall.Call("listen", Sysno.listen, fd, backlog);

    public static UnixFd Accept(int fd) => new((int)RawSyscall.Call("accept4", Sysno.accept4, fd, 0, 0, Sockets.SOCK_CLOEXEC));

    public static void Shutdown(int fd, int how) => RawSyscall.Call("shutdown", Sysno.shutdown, fd, how);

    public static byte[] SockName(int fd) => Name(fd, Sysno.getsockname, "getsockname");

    /// <summary>The peer's address, or empty when not connected.</summary>
    public static byte[] PeerName(int fd)
    {
        try { return Name(fd, Sysno.getpeername, "getpeername"); }
        catch (SyscallException e) when (e.Errno == ENOTCONN) { return []; }
    }

    private static byte[] Name(int fd, long sysno, string call)
    {
        byte* buf = stackalloc byte[128];
        int len = 128;
        RawSyscall.Call(call, sysno, fd, (long)buf, (long)&len);
        return new ReadOnlySpan<byte>(buf, Math.Min(len, 128)).ToArray();
    }

    public static int GetInt(int fd, int level, int opt)
    {
        int v = 0, len = sizeof(int);
        RawSyscall.Call($"getsockopt({level},{opt})", Sysno.getsockopt, fd, level, opt, (long)&v, (long)&len);
        return v;
    }

    public static void SetInt(int fd, int level, int opt, int value)
        => RawSyscall.Call($"setsockopt({level},{opt})", Sysno.setsockopt, fd, level, opt, (long)&value, sizeof(int));

    /// <summary>getsockopt into a buffer; returns the length the kernel filled.</summary>
    public static int Get(int fd, int level, int opt, Span<byte> value)
    {
        int len = value.Length;
        fixed (byte* v = value)
            RawSyscall.Call($"getsockopt({level},{opt})", Sysno.getsockopt, fd, level, opt, (long)v, (long)&len);
        return len;
    }

    public static void Set(int fd, int level, int opt, ReadOnlySpan<byte> value)
    {
        fixed (byte* v = value)
            RawSyscall.Call($"setsockopt({level},{opt})", Sysno.setsockopt, fd, level, opt, (long)v, value.Length);
    }

    public static int Ioctl(int fd, long request)
    {
        int v = 0;
        RawSyscall.Call($"ioctl({request:x})", Sysno.ioctl, fd, request, (long)&v);
        return v;
    }

    /// <summary>recvfrom; -errno on failure (EAGAIN for an empty queue).</summary>
    public static long TryRecv(int fd, Span<byte> buffer, int flags)
    {
        fixed (byte* b = buffer)
            return RawSyscall.TryCall(Sysno.recvfrom, fd, (long)b, buffer.Length, flags, 0, 0);
    }

    /// <summary>sendto (to <paramref name="addr"/> when given); returns the bytes sent.</summary>
    public static long Send(int fd, ReadOnlySpan<byte> data, int flags, ReadOnlySpan<byte> addr = default)
    {
        fixed (byte* d = data)
        fixed (byte* a = addr)
            return RawSyscall.Call("sendto", Sysno.sendto, fd, (long)d, data.Length, flags | MSG_NOSIGNAL,
                addr.IsEmpty ? 0 : (long)a, addr.Length);
    }

    /// <summary>sockaddr_un for a name as the kernel reports it (abstract names start with a zero byte).</summary>
    public static byte[] UnixAddress(ReadOnlySpan<byte> name)
    {
        var a = new byte[2 + name.Length];
        a[0] = AF_UNIX;
        name.CopyTo(a.AsSpan(2));
        return a;
    }
}
