using System.Buffers.Binary;
using Crisp.Images.Proto;
using Crisp.Linux;

namespace Crisp.Resources.Net;

/// <summary>Restore of a namespace's links other than lo, checked in full before anything is made. A veth whose
/// peer was in the namespace too is made with it in one request (both indexes and names as they were); one whose
/// peer was outside gets its peer in crisp's own namespace under the name --veth-pair IN=OUT / --external veth[IN]:OUT
/// gives (CRIU's veth_link_info), then, with @BRIDGE, enslaved to that bridge and brought up (CRIU's
/// move_veth_to_bridge). Each link gets its index, name, MTU, MAC and flags (IFF_UP included) as CRIU's
/// populate_newlink_req sends them.</summary>
public sealed class NetLinksPlan
{
    private const int IFLA_NET_NS_FD = 28, IFLA_INFO_DATA = 2, VETH_INFO_PEER = 1, IFF_UP = 1;
    private const ushort RTM_SETLINK = 19;

    private readonly List<(net_device_entry Link, net_device_entry? PeerInside, VethPair? Outside)> _veths = [];

    public int Count => _veths.Sum(v => v.PeerInside is null ? 1 : 2);

    public static NetLinksPlan Make(string netdevFile, uint nsId, IReadOnlyList<net_device_entry> devices, IReadOnlyList<VethPair> pairs)
    {
        var plan = new NetLinksPlan();
        var made = new HashSet<uint>();
        foreach (var pair in pairs)
            if (!devices.Any(d => d.Type == nd_type.Veth && d.Name == pair.Inside && !(d.HasPeerNsid && d.PeerNsid == nsId)))
                throw new CrispException($"--veth-pair {pair.Inside}={pair.Outside}: {netdevFile} has no veth {pair.Inside} with its peer outside the namespace");
        foreach (var d in devices)
        {
            if (d.Type == nd_type.Loopback || made.Contains(d.Ifindex))
                continue;
            if (d.Type != nd_type.Veth)
                throw new CrispException($"{netdevFile}: link {d.Name} of type {d.Type}: crisp restores lo and veth links only (or restore with --empty-ns net)");
            if (d.Ifindex == 0)
                throw new CrispException($"{netdevFile}: veth {d.Name} has no ifindex");
            made.Add(d.Ifindex);
            if (d.HasPeerNsid)
            {
                if (d.PeerNsid != nsId)
                    throw new CrispException($"{netdevFile}: the peer of veth {d.Name} is in network namespace {d.PeerNsid}, which crisp does not restore");
                var peer = devices.FirstOrDefault(p => p.Type == nd_type.Veth && p.Ifindex == d.PeerIfindex && p != d)
                    ?? throw new CrispException($"{netdevFile}: veth {d.Name}'s peer (ifindex {d.PeerIfindex}) is not in the image");
                made.Add(peer.Ifindex);
                plan._veths.Add((d, peer, null));
                continue;
            }
            var outside = pairs.LastOrDefault(p => p.Inside == d.Name)
                ?? throw new CrispException($"{netdevFile}: veth {d.Name} had its peer outside the namespace: name the peer to make here with --veth-pair {d.Name}=OUTNAME (or --external veth[{d.Name}]:OUTNAME)");
            plan._veths.Add((d, null, outside));
        }
        return plan;
    }

    /// <summary>Makes the links through <paramref name="nl"/>, a socket in the new namespace.</summary>
    public void Create(RtNetlink nl, Log log)
    {
        if (_veths.Count == 0)
            return;
        using var host = FileIo.Open(Linux.Proc.Procfs.Host.Path(Environment.ProcessId, "ns/net"), FileIo.O_RDONLY | FileIo.O_CLOEXEC);
        using var hostNl = RtNetlink.Open();
        foreach (var (_, _, outside) in _veths)
            if (outside?.Bridge is { } br && IndexOf(hostNl, br) is null)
                throw new CrispException($"--veth-pair {outside.Inside}={outside.Outside}@{br}: no link {br} here");
        foreach (var (link, peerInside, outside) in _veths)
        {
            var w = Ifinfo(link);
            w.Begin(RtNetlink.IFLA_LINKINFO).Attr(RtNetlink.IFLA_INFO_KIND, "veth"u8).Begin(IFLA_INFO_DATA).Begin(VETH_INFO_PEER);
            if (peerInside is not null)
                w.Raw(Ifinfo(peerInside).U32At(8, 0).ToArray());   // up only once paired (veth_open: ENOTCONN before)
            else
                w.Raw(new byte[16]).String(RtNetlink.IFLA_IFNAME, outside!.Outside).U32(IFLA_NET_NS_FD, (uint)host.Fd);
            w.End().End().End();
            int r = nl.TryRequest(RtNetlink.RTM_NEWLINK, RtNetlink.NLM_F_CREATE | RtNetlink.NLM_F_EXCL, w.ToArray());
            if (r == -Errnos.EEXIST && outside is not null)
                throw new CrispException($"--veth-pair {outside.Inside}={outside.Outside}: a link named {outside.Outside} exists here already");
            if (r < 0)
                throw new SyscallException($"creating veth {link.Name} (ifindex {link.Ifindex}) with peer {peerInside?.Name ?? outside!.Outside}", -r);
            if (peerInside is not null && (r = nl.TryRequest(RTM_SETLINK, 0, Ifinfo(peerInside).ToArray())) < 0)
                throw new SyscallException($"setting veth {peerInside.Name}'s flags 0x{peerInside.Flags:x}", -r);
            log.Info($"network namespace: veth {link.Name} (ifindex {link.Ifindex}, mtu {link.Mtu}, flags 0x{link.Flags:x}), peer " +
                (peerInside is not null ? $"{peerInside.Name} (ifindex {peerInside.Ifindex}) inside" : $"{outside!.Outside} here"));
            if (outside?.Bridge is { } bridge)
                Enslave(hostNl, outside.Outside, bridge);
        }
    }

    /// <summary>ifinfomsg with the link's index and flags (ifi_change 0: all flags as given, as CRIU sends them),
    /// then its name, MTU and MAC.</summary>
    private static RtAttrWriter Ifinfo(net_device_entry d)
    {
        var w = new RtAttrWriter(16).U32At(4, d.Ifindex).U32At(8, d.Flags).String(RtNetlink.IFLA_IFNAME, d.Name).U32(RtNetlink.IFLA_MTU, d.Mtu);
        if (d.HasAddress && d.Address.Length > 0)
            w.Attr(RtNetlink.IFLA_ADDRESS, d.Address.Span);
        return w;
    }

    /// <summary>`ip link set OUT master BRIDGE up` in crisp's namespace.</summary>
    private static void Enslave(RtNetlink hostNl, string link, string bridge)
    {
        uint index = IndexOf(hostNl, bridge) ?? throw new CrispException($"--veth-pair …={link}@{bridge}: no link {bridge} here");
        var w = new RtAttrWriter(16).U32At(8, IFF_UP).U32At(12, IFF_UP).String(RtNetlink.IFLA_IFNAME, link).U32(RtNetlink.IFLA_MASTER, index);
        int r = hostNl.TryRequest(RTM_SETLINK, 0, w.ToArray());
        if (r < 0)
            throw new SyscallException($"adding {link} to bridge {bridge}", -r);
    }

    private static uint? IndexOf(RtNetlink nl, string name) =>
        nl.Dump(RtNetlink.RTM_GETLINK, 0, 16).Select(NetLink.Parse).Where(l => l.Name == name).Select(l => (uint?)l.Index).FirstOrDefault();
}
