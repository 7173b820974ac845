using System.Buffers.Binary;
using Crisp.Linux;

namespace Crisp.Check;

/// <summary>Base of the optional probes named as CRIU names them. A failing step (a syscall refused, a
/// file missing) is the answer "missing" with its message, never an exception out of the probe.</summary>
public abstract class CriuProbe(string name) : IFeatureProbe
{
    public string Name => name;
    public string? CriuFeature => name;
    public bool Required => false;

    public ProbeResult Probe()
    {
        try
        {
            return Check();
        }
        catch (Exception e) when (e is SyscallException or IOException or UnauthorizedAccessException or CrispException)
        {
            return ProbeResult.Missing(e.Message.ReplaceLineEndings(" "));
        }
    }

    protected abstract ProbeResult Check();
}

/// <summary>tun: /dev/net/tun opens and takes TUNSETIFINDEX (how a tun device's ifindex is restored).</summary>
public sealed unsafe class TunProbe() : CriuProbe("tun")
{
    private const long TUNSETIFINDEX = 0x400454da; // _IOW('T', 218, unsigned int)

    protected override ProbeResult Check()
    {
        if (!File.Exists("/dev/net/tun"))
            return ProbeResult.Missing("no /dev/net/tun");
        using var tun = FileIo.Open("/dev/net/tun", FileIo.O_RDWR | FileIo.O_CLOEXEC);
        // Not attached to a device yet, so this only records the index in the open file.
        int index = 13;
        long r = RawSyscall.TryCall(Sysno.ioctl, tun.Fd, TUNSETIFINDEX, (long)&index);
        return r < 0 ? ProbeResult.Missing($"ioctl(TUNSETIFINDEX): {ProbeSys.Err(r)}")
            : ProbeResult.Supported("/dev/net/tun takes TUNSETIFINDEX");
    }
}

/// <summary>SIOCGSKNS on a descriptor gives its network namespace (tun_ns: on a tun fd; sk_ns: on a socket).</summary>
public sealed class NetnsIoctlProbe(string criuName, string what, Func<UnixFd> open) : CriuProbe(criuName)
{
    public const long SIOCGSKNS = 0x894C;

    protected override ProbeResult Check()
    {
        using var fd = open();
        long ns = RawSyscall.TryCall(Sysno.ioctl, fd.Fd, SIOCGSKNS);
        if (ns < 0)
            return ProbeResult.Missing($"ioctl(SIOCGSKNS) on {what}: {ProbeSys.Err(ns)}");
        string target = new FileInfo($"/proc/self/fd/{ns}").LinkTarget ?? "?";
        FileIo.CloseRaw((int)ns);
        return ProbeResult.Supported($"SIOCGSKNS on {what} → {target}");
    }

    public static NetnsIoctlProbe Tun() => new("tun_ns", "a /dev/net/tun fd", () =>
        File.Exists("/dev/net/tun") ? FileIo.Open("/dev/net/tun", FileIo.O_RDONLY | FileIo.O_CLOEXEC)
            : throw new CrispException("no /dev/net/tun"));

    public static NetnsIoctlProbe Socket() => new("sk_ns", "a unix socket", () =>
        SocketCalls.Socket(SocketCalls.AF_UNIX, Sockets.SOCK_DGRAM));
}

/// <summary>sk_unix_file: SIOCUNIXFILE opens a unix socket's bound file (ENOENT for an unbound one is fine).</summary>
public sealed class SkUnixFileProbe() : CriuProbe("sk_unix_file")
{
    private const long SIOCUNIXFILE = 0x89E0; // SIOCPROTOPRIVATE + 0

    protected override ProbeResult Check()
    {
        using var sk = SocketCalls.Socket(SocketCalls.AF_UNIX, Sockets.SOCK_DGRAM);
        long r = RawSyscall.TryCall(Sysno.ioctl, sk.Fd, SIOCUNIXFILE);
        if (r >= 0)
            FileIo.CloseRaw((int)r);
        return r >= 0 || r == -Errnos.ENOENT
            ? ProbeResult.Supported($"ioctl(SIOCUNIXFILE) known ({(r >= 0 ? "opened" : "ENOENT for an unbound socket")})")
            : ProbeResult.Missing($"ioctl(SIOCUNIXFILE): {ProbeSys.Err(r)}");
    }
}

/// <summary>tcp_half_closed: TCP_REPAIR goes on for a connection whose write side is shut down.</summary>
public sealed class TcpHalfClosedProbe() : CriuProbe("tcp_half_closed")
{
    protected override ProbeResult Check()
    {
        var loopback = new byte[16];
        loopback[0] = SocketCalls.AF_INET;
        loopback[4] = 127;
        loopback[7] = 1;
        using var listener = SocketCalls.Socket(SocketCalls.AF_INET, Sockets.SOCK_STREAM);
        SocketCalls.Bind(listener.Fd, loopback);
        SocketCalls.Listen(listener.Fd, 1);
        var address = SocketCalls.SockName(listener.Fd);
        using var client = SocketCalls.Socket(SocketCalls.AF_INET, Sockets.SOCK_STREAM);
        SocketCalls.Connect(client.Fd, address);
        SocketCalls.Shutdown(client.Fd, 1 /* SHUT_WR */);
        try
        {
            SocketCalls.SetInt(client.Fd, SocketCalls.SOL_TCP, SocketCalls.TCP_REPAIR, 1);
        }
        catch (SyscallException e)
        {
            return ProbeResult.Missing($"TCP_REPAIR on a half-closed connection: {e.Message}");
        }
        // Closing a socket in repair mode sends nothing; the queued connection is dropped with the listener.
        return ProbeResult.Supported("TCP_REPAIR set on a connection after shutdown(SHUT_WR)");
    }
}

/// <summary>sockopt_buf_lock: SO_BUF_LOCK can be read (buffer sizes locked by the user are kept).</summary>
public sealed class SockoptBufLockProbe() : CriuProbe("sockopt_buf_lock")
{
    protected override ProbeResult Check()
    {
        using var sk = SocketCalls.Socket(SocketCalls.AF_INET, Sockets.SOCK_STREAM);
        try
        {
            return ProbeResult.Supported($"getsockopt(SO_BUF_LOCK) = {SocketCalls.GetInt(sk.Fd, SocketCalls.SOL_SOCKET, SocketCalls.SO_BUF_LOCK)}");
        }
        catch (SyscallException e)
        {
            return ProbeResult.Missing($"getsockopt(SO_BUF_LOCK): {e.Message}");
        }
    }
}

/// <summary>ipv6_freebind: IPV6_FREEBIND can be set on an IPv6 socket.</summary>
public sealed class Ipv6FreebindProbe() : CriuProbe("ipv6_freebind")
{
    private const int IPV6_FREEBIND = 78;

    protected override ProbeResult Check()
    {
        if (!Directory.Exists("/proc/sys/net/ipv6"))
            return ProbeResult.Missing("IPv6 is disabled (no /proc/sys/net/ipv6)");
        using var sk = SocketCalls.Socket(SocketCalls.AF_INET6, Sockets.SOCK_DGRAM);
        try
        {
            SocketCalls.SetInt(sk.Fd, SocketCalls.SOL_IPV6, IPV6_FREEBIND, 1);
            return ProbeResult.Supported("setsockopt(IPV6_FREEBIND) ok");
        }
        catch (SyscallException e)
        {
            return ProbeResult.Missing($"setsockopt(IPV6_FREEBIND): {e.Message}");
        }
    }
}

/// <summary>net_diag_raw: sock_diag dumps raw sockets for IPv4 and IPv6 (raw_diag).</summary>
public sealed class NetDiagRawProbe() : CriuProbe("net_diag_raw")
{
    private const ushort SOCK_DIAG_BY_FAMILY = 20;
    private const byte IPPROTO_RAW = 255;

    protected override ProbeResult Check()
    {
        using var nl = ProbeNetlink.Open(ProbeNetlink.NETLINK_SOCK_DIAG);
        foreach (int family in new[] { SocketCalls.AF_INET, SocketCalls.AF_INET6 })
        {
            // struct inet_diag_req_v2: family, protocol, ext, pad, states, id (all states, any socket).
            var req = new NetlinkMessage(SOCK_DIAG_BY_FAMILY, ProbeNetlink.NLM_F_REQUEST | ProbeNetlink.NLM_F_DUMP, 56)
                .Fixed(0, [(byte)family, IPPROTO_RAW]).Fixed(4, BitConverter.GetBytes(uint.MaxValue));
            var reply = ProbeNetlink.Request(nl, req);
            if (reply.Error < 0)
                return ProbeResult.Missing($"raw socket dump for {(family == SocketCalls.AF_INET ? "IPv4" : "IPv6")}: {ProbeSys.Err(reply.Error)}");
        }
        return ProbeResult.Supported("sock_diag dumps IPv4 and IPv6 raw sockets");
    }
}

/// <summary>nsid: RTM_GETNSID answers for a pid (peer network namespaces can be named).</summary>
public sealed class NsidProbe() : CriuProbe("nsid")
{
    private const ushort RTM_NEWNSID = 88, RTM_GETNSID = 90, NETNSA_NSID = 1, NETNSA_PID = 2;

    protected override ProbeResult Check()
    {
        using var nl = ProbeNetlink.Open(ProbeNetlink.NETLINK_ROUTE);
        var reply = ProbeNetlink.Request(nl, new NetlinkMessage(RTM_GETNSID, ProbeNetlink.NLM_F_REQUEST, 1)
            .Attr(NETNSA_PID, Environment.ProcessId));
        if (reply.Error < 0)
            return ProbeResult.Missing($"RTM_GETNSID: {ProbeSys.Err(reply.Error)}");
        var answer = reply.Messages.FirstOrDefault(m => m.Type == RTM_NEWNSID);
        if (answer.Payload is null)
            return ProbeResult.Missing("RTM_GETNSID got no RTM_NEWNSID answer");
        var nsid = ProbeNetlink.Attributes(answer.Payload, 1).FirstOrDefault(a => a.Type == NETNSA_NSID);
        return ProbeResult.Supported($"RTM_GETNSID answered (nsid {(nsid.Data is { Length: >= 4 } d ? BitConverter.ToInt32(d) : '?')})");
    }
}

/// <summary>newifindex: RTM_SETLINK knows IFLA_NEW_IFINDEX (a negative one is refused with ERANGE; a
/// kernel without it ignores it and reports the missing device, ENODEV). No device is touched.</summary>
public sealed class NewIfindexProbe() : CriuProbe("newifindex")
{
    private const ushort RTM_SETLINK = 19, IFLA_IFNAME = 3, IFLA_NEW_IFINDEX = 49;
    private const int ENODEV = 19, ERANGE = 34;

    protected override ProbeResult Check()
    {
        using var nl = ProbeNetlink.Open(ProbeNetlink.NETLINK_ROUTE);
        var reply = ProbeNetlink.Request(nl, new NetlinkMessage(RTM_SETLINK,
                ProbeNetlink.NLM_F_REQUEST | ProbeNetlink.NLM_F_ACK | ProbeNetlink.NLM_F_CREATE, 16)
            .Attr(IFLA_NEW_IFINDEX, -1).Attr(IFLA_IFNAME, "crisp-kdat"));
        return reply.Error switch
        {
            -ERANGE => ProbeResult.Supported("RTM_SETLINK validates IFLA_NEW_IFINDEX (ERANGE for -1)"),
            -ENODEV => ProbeResult.Missing("RTM_SETLINK ignores IFLA_NEW_IFINDEX (kernel older than 6.7)"),
            0 => ProbeResult.Missing("RTM_SETLINK accepted ifindex -1 for a device that should not exist"),
            var e => ProbeResult.Missing($"RTM_SETLINK with IFLA_NEW_IFINDEX: {ProbeSys.Err(e)}"),
        };
    }
}

/// <summary>link_nsid: a veth whose peer is in another network namespace is dumped with IFLA_LINK_NETNSID.
/// Both namespaces are made by a throwaway thread and die with it (the veth pair with them).</summary>
public sealed class LinkNsidProbe() : CriuProbe("link_nsid")
{
    private const ushort RTM_NEWLINK = 16, RTM_GETLINK = 18, IFLA_IFNAME = 3, IFLA_LINKINFO = 18,
        IFLA_NET_NS_FD = 28, IFLA_LINK_NETNSID = 37, IFLA_INFO_KIND = 1, IFLA_INFO_DATA = 2, VETH_INFO_PEER = 1;

    protected override ProbeResult Check() => ProbeSys.OnThrowawayThread(() =>
    {
        using var home = FileIo.Open("/proc/thread-self/ns/net", FileIo.O_RDONLY | FileIo.O_CLOEXEC);
        try
        {
            return InScratchNamespaces();
        }
        finally
        {
            RawSyscall.TryCall(Sysno.setns, home.Fd, ProbeSys.CLONE_NEWNET);
        }
    });

    private static ProbeResult InScratchNamespaces()
    {
        long r = RawSyscall.TryCall(Sysno.unshare, ProbeSys.CLONE_NEWNET);
        if (r < 0)
            return ProbeResult.Missing($"unshare(CLONE_NEWNET): {ProbeSys.Err(r)}");
        using var peerNs = FileIo.Open("/proc/thread-self/ns/net", FileIo.O_RDONLY | FileIo.O_CLOEXEC);
        r = RawSyscall.TryCall(Sysno.unshare, ProbeSys.CLONE_NEWNET);
        if (r < 0)
            return ProbeResult.Missing($"unshare(CLONE_NEWNET): {ProbeSys.Err(r)}");
        using var nl = ProbeNetlink.Open(ProbeNetlink.NETLINK_ROUTE);

        var create = new NetlinkMessage(RTM_NEWLINK, ProbeNetlink.NLM_F_REQUEST | ProbeNetlink.NLM_F_ACK
            | ProbeNetlink.NLM_F_CREATE | ProbeNetlink.NLM_F_EXCL, 16).Attr(IFLA_IFNAME, "crisp-veth0");
        int info = create.Begin(IFLA_LINKINFO);
        create.Attr(IFLA_INFO_KIND, "veth"u8);
        int data = create.Begin(IFLA_INFO_DATA);
        int peer = create.Begin(VETH_INFO_PEER);
        create.Pad(16).Attr(IFLA_IFNAME, "crisp-veth1").Attr(IFLA_NET_NS_FD, peerNs.Fd);
        create.End(peer);
        create.End(data);
        create.End(info);
        var made = ProbeNetlink.Request(nl, create);
        if (made.Error < 0)
            return ProbeResult.Missing($"creating a veth pair across namespaces: {ProbeSys.Err(made.Error)}");

        var links = ProbeNetlink.Request(nl, new NetlinkMessage(RTM_GETLINK, ProbeNetlink.NLM_F_REQUEST | ProbeNetlink.NLM_F_DUMP, 16));
        if (links.Error < 0)
            return ProbeResult.Missing($"RTM_GETLINK dump: {ProbeSys.Err(links.Error)}");
        bool has = links.Messages.Where(m => m.Type == RTM_NEWLINK)
            .Any(m => ProbeNetlink.Attributes(m.Payload, 16).Any(a => a.Type == IFLA_LINK_NETNSID));
        return has ? ProbeResult.Supported("a veth with its peer in another netns is dumped with IFLA_LINK_NETNSID")
            : ProbeResult.Missing("links dumped without IFLA_LINK_NETNSID");
    }
}

/// <summary>nftables: the nft tool works against this kernel (`nft list tables`), which is how crisp
/// drives nftables (CRIU's name asks whether it was built with libnftables).</summary>
public sealed class NftablesProbe() : CriuProbe("nftables")
{
    protected override ProbeResult Check()
    {
        string? nft = ProbeSys.Which("nft");
        if (nft is null)
            return ProbeResult.Missing("no nft program (install nftables)");
        var (code, output) = ProbeSys.RunQuiet(nft, "list", "tables");
        return code == 0 ? ProbeResult.Supported($"{nft} list tables ok")
            : ProbeResult.Missing($"{nft} list tables exited {code}: {ProbeSys.FirstLine(output)}");
    }
}

/// <summary>has_ipt_legacy: an iptables-save (and ip6tables-save when IPv6 is on) using the legacy
/// x_tables API, not nf_tables: `-V` of iptables-save, else of iptables-legacy-save.</summary>
public sealed class IptLegacyProbe() : CriuProbe("has_ipt_legacy")
{
    protected override ProbeResult Check()
    {
        var found = new List<string>();
        var families = Directory.Exists("/proc/sys/net/ipv6") ? new[] { "iptables", "ip6tables" } : ["iptables"];
        foreach (string family in families)
        {
            string? legacy = null;
            foreach (string name in new[] { $"{family}-save", $"{family}-legacy-save" })
            {
                string? path = ProbeSys.Which(name);
                if (path is null)
                    continue;
                var (code, output) = ProbeSys.RunQuiet(path, "-V");
                if (code == 0 && !output.Contains("nf_tables", StringComparison.Ordinal))
                {
                    legacy = path;
                    break;
                }
            }
            if (legacy is null)
                return ProbeResult.Missing($"no {family}-save using the legacy API ({family}-save / {family}-legacy-save missing or nf_tables)");
            found.Add(legacy);
        }
        return ProbeResult.Supported($"legacy: {string.Join(", ", found)}");
    }
}

/// <summary>external_net_ns: whether `--external net[INODE]:KEY` is accepted. CRIU answers by version;
/// crisp does not checkpoint network namespaces and refuses --external, so it says so.</summary>
public sealed class ExternalNetNsProbe() : CriuProbe("external_net_ns")
{
    protected override ProbeResult Check() => ProbeResult.Missing(
        "crisp refuses --external: it does not checkpoint network namespaces (tasks stay in the restorer's)");
}
