using System.Buffers.Binary;
using Crisp.Dump;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Restore;
using static Crisp.Linux.SocketCalls;

namespace Crisp.Resources.Files.Sockets.Netlink;

/// <summary>AF_NETLINK sockets — CRIU's NETLINKSK kind (sk-netlink.c): the protocol, the port id it is bound to,
/// its multicast groups and where it is connected (netlink_diag, asked in the socket's own network namespace),
/// SOL_SOCKET options, and the SOL_NETLINK flags (crisp's own field: CRIU keeps none). Unread messages are
/// refused, as CRIU does: nothing can put a netlink message back into a socket's queue.</summary>
public sealed class NetlinkSocketFile : IFileKind
{
    private const int SOL_NETLINK = 270, NETLINK_ADD_MEMBERSHIP = 1, NETLINK_CONNECTED = 1;

    /// <summary>The SOL_NETLINK options that are flags (0/1), read and set back by number.</summary>
    private static readonly int[] FlagOptions =
    [
        3,  // NETLINK_PKTINFO
        4,  // NETLINK_BROADCAST_ERROR
        5,  // NETLINK_NO_ENOBUFS
        8,  // NETLINK_LISTEN_ALL_NSID
        10, // NETLINK_CAP_ACK
        11, // NETLINK_EXT_ACK
        12, // NETLINK_GET_STRICT_CHK
    ];

    public fd_types Type => fd_types.Netlinksk;

    public bool Claims(OpenFd fd) =>
        fd.Stat.Type == FileStat.S_IFSOCK && GetInt(fd.Copy.Fd, SOL_SOCKET, SO_DOMAIN) == AF_NETLINK;

    public file_entry Dump(DumpContext ctx, uint id, OpenFd fd)
    {
        int s = fd.Copy.Fd;
        int protocol = GetInt(s, SOL_SOCKET, SO_PROTOCOL);
        string what = $"task {fd.Pid} fd {fd.Fd}: netlink socket (protocol {protocol})";
        Span<byte> one = stackalloc byte[1];
        if (TryRecv(s, one, MSG_PEEK | MSG_DONTWAIT) >= 0)
            throw new CrispException($"{what} has unread messages: nothing can put them back into its queue (CRIU refuses them too)");
        var diag = SocketNamespace.Run(fd, what, () => SockDiag.Netlink((uint)fd.Stat.Ino));
        var entry = new netlink_sk_entry
        {
            Id = id,
            Ino = (uint)fd.Stat.Ino,
            Protocol = (uint)protocol,
            State = (uint)(diag?.State ?? 0),
            Flags = (uint)fd.Flags,
            Portid = diag?.PortId ?? 0,
            DstPortid = diag?.DstPortId ?? 0,
            DstGroup = diag?.DstGroup ?? 0,
            Fown = Fown.Of(fd),
            Opts = SocketOptions.Dump(s, what),
        };
        if (diag is not null)
        {
            int used = diag.Groups.Length;
            while (used > 0 && diag.Groups[used - 1] == 0)
                used--;
            entry.Groups.AddRange(diag.Groups.Take(used));
        }
        foreach (int opt in FlagOptions)
            if (GetInt(s, SOL_NETLINK, opt) != 0)
                entry.NlOptions.Add((uint)opt);
        return new file_entry { Type = fd_types.Netlinksk, Id = id, Nlsk = entry };
    }

    public UnixFd Open(RestoreContext ctx, file_entry entry)
    {
        var e = entry.Nlsk ?? throw new CrispException($"files.img: NETLINKSK entry {entry.Id} has no nlsk part");
        string what = $"netlink socket {e.Ino} (protocol {e.Protocol})";
        // SOCK_RAW and SOCK_DGRAM are the same to netlink; CRIU records neither.
        var sock = NetNamespaces.Socket(Namespaces.NetNamespace.Of(ctx), AF_NETLINK, Crisp.Linux.Sockets.SOCK_RAW, (int)e.Protocol);
        return NewSocket.Shape(ctx, sock, what, e.Flags, e.Fown, s =>
        {
            if (e.Portid != 0)
                BindPort(ctx, s, e, what);
            // Groups past the first 32 can only be joined one by one.
            for (int word = 1; word < e.Groups.Count; word++)
                for (int bit = 0; bit < 32; bit++)
                    if ((e.Groups[word] & (1u << bit)) != 0)
                        SetInt(s, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, word * 32 + bit + 1);
            if (e.State == NETLINK_CONNECTED)
                Connect(s, Address(e.DstPortid, e.DstGroup == 0 ? 0 : 1u << (int)(e.DstGroup - 1)));
            foreach (uint opt in e.NlOptions)
                SetInt(s, SOL_NETLINK, (int)opt, 1);
            SocketOptions.Restore(s, e.Opts);
        });
    }

    /// <summary>Bound to its port id again, with its first 32 groups. A port id is usually the pid of the
    /// task that first bound it; if another socket holds it now, the kernel picks one and the restore says so
    /// (as CRIU does: programs rarely depend on their port id).</summary>
    private static void BindPort(RestoreContext ctx, int s, netlink_sk_entry e, string what)
    {
        uint groups = e.Groups.Count > 0 ? e.Groups[0] : 0;
        try
        {
            Bind(s, Address(e.Portid, groups));
        }
        catch (SyscallException x) when (x.Errno == Errnos.EADDRINUSE)
        {
            Bind(s, Address(0, groups));
            ctx.Log.Warn($"{what}: port id {e.Portid} is taken; bound to another");
        }
    }

    /// <summary>struct sockaddr_nl: family, pad, port id, groups.</summary>
    private static byte[] Address(uint portId, uint groups)
    {
        var a = new byte[12];
        BinaryPrimitives.WriteUInt16LittleEndian(a, AF_NETLINK);
        BinaryPrimitives.WriteUInt32LittleEndian(a.AsSpan(4), portId);
        BinaryPrimitives.WriteUInt32LittleEndian(a.AsSpan(8), groups);
        return a;
    }
}
