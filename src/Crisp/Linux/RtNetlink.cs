using System.Buffers.Binary;
using System.Runtime.ExceptionServices;
using System.Text;

namespace Crisp.Linux;

/// <summary>One rtnetlink message as the kernel sent it: type, flags and the bytes after nlmsghdr.</summary>
public sealed record NetlinkMessage(ushort Type, ushort Flags, byte[] Payload)
{
    /// <summary>The whole message (nlmsghdr included, seq and pid zeroed) as iproute2's save commands write it.</summary>
    public byte[] ToBytes()
    {
        var b = new byte[16 + Payload.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(b, (uint)b.Length);
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(4), Type);
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(6), Flags);
        Payload.CopyTo(b, 16);
        return b;
    }

    /// <summary>Attributes (rtattr) after a fixed header of <paramref name="headerLength"/> bytes.</summary>
    public IEnumerable<(int Type, byte[] Data)> Attributes(int headerLength) => RtNetlink.Attributes(Payload, headerLength);
}

/// <summary>A NETLINK_ROUTE socket of crisp (links, addresses, routes): dumps and acknowledged requests. The
/// socket answers for the network namespace it was created in, so it is made by a thread inside the tree's
/// (<see cref="NetNamespaces"/>) and then used from anywhere.</summary>
public sealed class RtNetlink : IDisposable
{
    public const ushort RTM_NEWLINK = 16, RTM_GETLINK = 18, RTM_NEWADDR = 20, RTM_GETADDR = 22,
        RTM_NEWROUTE = 24, RTM_GETROUTE = 26;
    public const ushort NLM_F_REQUEST = 1, NLM_F_ACK = 4, NLM_F_DUMP = 0x300, NLM_F_EXCL = 0x200, NLM_F_CREATE = 0x400;
    public const int IFLA_ADDRESS = 1, IFLA_IFNAME = 3, IFLA_MTU = 4, IFLA_LINK = 5, IFLA_MASTER = 10, IFLA_LINKINFO = 18,
        IFLA_INFO_KIND = 1;
    private const int NETLINK_ROUTE = 0, SOCK_RAW = 3, NLMSG_ERROR = 2, NLMSG_DONE = 3;

    private readonly UnixFd _socket;
    private uint _seq;

    private RtNetlink(UnixFd socket) => _socket = socket;

    /// <summary>A socket for the namespace the calling thread is in.</summary>
    public static RtNetlink Open() => new(SocketCalls.Socket(SocketCalls.AF_NETLINK, SOCK_RAW, NETLINK_ROUTE));

    /// <summary>A socket for the network namespace <paramref name="netns"/> (null: crisp's own).</summary>
    public static RtNetlink Open(UnixFd? netns) => netns is null ? Open() : NetNamespaces.Run(netns, Open);

    /// <summary>Every object of a kind (RTM_GETLINK, RTM_GETADDR, RTM_GETROUTE) for address family <paramref name="family"/>
    /// (0: all); <paramref name="headerLength"/> is the kind's fixed header (ifinfomsg 16, ifaddrmsg 8, rtmsg 12).</summary>
    public List<NetlinkMessage> Dump(ushort type, byte family, int headerLength)
    {
        var body = new byte[headerLength];
        body[0] = family;
        uint seq = Send(type, NLM_F_REQUEST | NLM_F_DUMP, body);
        var replies = new List<NetlinkMessage>();
        Receive(seq, m => replies.Add(m), $"rtnetlink dump {type}");
        return replies;
    }

    /// <summary>Sends one request (with NLM_F_REQUEST|NLM_F_ACK added) and waits for its acknowledgement;
    /// returns 0 or the kernel's -errno.</summary>
    public int TryRequest(ushort type, ushort flags, ReadOnlySpan<byte> payload)
    {
        uint seq = Send(type, (ushort)(flags | NLM_F_REQUEST | NLM_F_ACK), payload);
        int error = 0;
        try { Receive(seq, _ => { }, "rtnetlink"); }
        catch (SyscallException e) { error = -e.Errno; }
        return error;
    }

    private uint Send(ushort type, ushort flags, ReadOnlySpan<byte> payload)
    {
        uint seq = ++_seq;
        var msg = new byte[16 + payload.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(msg, (uint)msg.Length);
        BinaryPrimitives.WriteUInt16LittleEndian(msg.AsSpan(4), type);
        BinaryPrimitives.WriteUInt16LittleEndian(msg.AsSpan(6), flags);
        BinaryPrimitives.WriteUInt32LittleEndian(msg.AsSpan(8), seq);
        payload.CopyTo(msg.AsSpan(16));
        var kernel = new byte[12];
        kernel[0] = SocketCalls.AF_NETLINK;
        SocketCalls.Send(_socket.Fd, msg, 0, kernel);
        return seq;
    }

    /// <summary>Reads replies to <paramref name="seq"/> until NLMSG_DONE or the acknowledgement; an error reply throws.</summary>
    private void Receive(uint seq, Action<NetlinkMessage> onMessage, string what)
    {
        var buf = new byte[64 * 1024];
        while (true)
        {
            long n = SocketCalls.TryRecv(_socket.Fd, buf, 0);
            if (n < 0)
                throw new SyscallException($"recv({what})", (int)-n);
            for (int at = 0; at + 16 <= n;)
            {
                int len = (int)BinaryPrimitives.ReadUInt32LittleEndian(buf.AsSpan(at));
                ushort type = BinaryPrimitives.ReadUInt16LittleEndian(buf.AsSpan(at + 4));
                ushort flags = BinaryPrimitives.ReadUInt16LittleEndian(buf.AsSpan(at + 6));
                uint got = BinaryPrimitives.ReadUInt32LittleEndian(buf.AsSpan(at + 8));
                if (len < 16 || at + len > n)
                    throw new CrispException($"{what}: truncated netlink reply");
                if (got == seq)
                {
                    if (type == NLMSG_DONE)
                        return;
                    if (type == NLMSG_ERROR)
                    {
                        int err = -BinaryPrimitives.ReadInt32LittleEndian(buf.AsSpan(at + 16));
                        if (err == 0)
                            return;
                        throw new SyscallException(what, err);
                    }
                    onMessage(new NetlinkMessage(type, flags, buf.AsSpan(at + 16, len - 16).ToArray()));
                }
                at += (len + 3) & ~3;
            }
        }
    }

    public static IEnumerable<(int Type, byte[] Data)> Attributes(byte[] payload, int headerLength)
    {
        int at = headerLength;
        while (at + 4 <= payload.Length)
        {
            int len = BinaryPrimitives.ReadUInt16LittleEndian(payload.AsSpan(at));
            int type = BinaryPrimitives.ReadUInt16LittleEndian(payload.AsSpan(at + 2)) & 0x3fff;   // without NLA_F_NESTED
            if (len < 4 || at + len > payload.Length)
                yield break;
            yield return (type, payload.AsSpan(at + 4, len - 4).ToArray());
            at += (len + 3) & ~3;
        }
    }

    /// <summary>A NUL-terminated attribute string.</summary>
    public static string String(byte[] data) => Encoding.UTF8.GetString(data.AsSpan(0, Array.IndexOf(data, (byte)0) is var z and >= 0 ? z : data.Length));

    public void Dispose() => _socket.Dispose();
}

/// <summary>Work in a network namespace other than crisp's: a throwaway thread joins it by setns (the kernel lets one
/// thread of a multithreaded process do that for a net namespace) and ends afterwards. What it creates there
/// (sockets) keeps its namespace when used from other threads.</summary>
public static class NetNamespaces
{
    private const long CLONE_NEWNET = 0x40000000;

    public static T Run<T>(UnixFd netns, Func<T> work) => Compel.ThrowawayThread.Run("crisp-netns", 256 * 1024, () =>
    {
        RawSyscall.Call("setns(CLONE_NEWNET)", Sysno.setns, netns.Fd, CLONE_NEWNET);
        return work();
    });

    /// <summary>socket() in <paramref name="netns"/> (null: crisp's own namespace).</summary>
    public static UnixFd Socket(UnixFd? netns, int domain, int type, int protocol = 0) =>
        netns is null ? SocketCalls.Socket(domain, type, protocol) : Run(netns, () => SocketCalls.Socket(domain, type, protocol));

    /// <summary>A new, empty network namespace, held by the returned fd (made by a thread that unshares and ends).</summary>
    public static UnixFd CreateEmpty() => Compel.ThrowawayThread.Run("crisp-netns-new", 256 * 1024, () =>
    {
        RawSyscall.Call("unshare(CLONE_NEWNET)", Sysno.unshare, CLONE_NEWNET);
        return FileIo.Open("/proc/thread-self/ns/net", FileIo.O_RDONLY | FileIo.O_CLOEXEC);
    });

    /// <summary>Whether <paramref name="fd"/> is a network namespace (NS_GET_NSTYPE).</summary>
    public static bool IsNetNamespace(int fd)
    {
        const long NS_GET_NSTYPE = 0xb703;
        return RawSyscall.TryCall(Sysno.ioctl, fd, NS_GET_NSTYPE) == CLONE_NEWNET;
    }
}
