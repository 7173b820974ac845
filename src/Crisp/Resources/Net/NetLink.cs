using System.Buffers.Binary;
using Crisp.Images.Proto;
using Crisp.Linux;

namespace Crisp.Resources.Net;

/// <summary>One link of RTM_GETLINK: ifinfomsg (type at 2, index at 4, flags at 8), then the attributes crisp reads.
/// <paramref name="Link"/> is IFLA_LINK (a veth's peer index), <paramref name="LinkNetnsid"/> IFLA_LINK_NETNSID
/// (present when the peer is in another namespace), <paramref name="Master"/> IFLA_MASTER.</summary>
public sealed record NetLink(int ArpType, int Index, uint Flags, string Name, uint Mtu, byte[]? Address, string? InfoKind,
    int? Link, int? LinkNetnsid, uint Master)
{
    public const int IFLA_LINK_NETNSID = 37;

    public string KindName => InfoKind ?? $"link type {ArpType}";

    public static NetLink Parse(NetlinkMessage m)
    {
        var p = m.Payload;
        string name = "?";
        uint mtu = 0, master = 0;
        byte[]? address = null;
        string? kind = null;
        int? link = null, netnsid = null;
        foreach (var (type, data) in m.Attributes(16))
        {
            switch (type)
            {
                case RtNetlink.IFLA_IFNAME: name = RtNetlink.String(data); break;
                case RtNetlink.IFLA_MTU when data.Length >= 4: mtu = BinaryPrimitives.ReadUInt32LittleEndian(data); break;
                case RtNetlink.IFLA_ADDRESS: address = data; break;
                case RtNetlink.IFLA_LINK when data.Length >= 4: link = BinaryPrimitives.ReadInt32LittleEndian(data); break;
                case IFLA_LINK_NETNSID when data.Length >= 4: netnsid = BinaryPrimitives.ReadInt32LittleEndian(data); break;
                case RtNetlink.IFLA_MASTER when data.Length >= 4: master = BinaryPrimitives.ReadUInt32LittleEndian(data); break;
                case RtNetlink.IFLA_LINKINFO:
                    foreach (var (t, d) in RtNetlink.Attributes(data, 0))
                        if (t == RtNetlink.IFLA_INFO_KIND)
                            kind = RtNetlink.String(d);
                    break;
            }
        }
        return new NetLink(BinaryPrimitives.ReadUInt16LittleEndian(p.AsSpan(2)), BinaryPrimitives.ReadInt32LittleEndian(p.AsSpan(4)),
            BinaryPrimitives.ReadUInt32LittleEndian(p.AsSpan(8)), name, mtu, address, kind, link, netnsid, master);
    }

    public net_device_entry Entry(nd_type type)
    {
        var e = new net_device_entry { Type = type, Ifindex = (uint)Index, Mtu = Mtu, Flags = Flags, Name = Name };
        if (Address is { } a)
            e.Address = Google.Protobuf.ByteString.CopyFrom(a);
        return e;
    }

    /// <summary>A veth end as CRIU's dump_one_netdev records it: peer_ifindex is the peer's index (in the peer's
    /// namespace); peer_nsid is this namespace's id when the peer is here too, and absent when the kernel names
    /// another namespace (IFLA_LINK_NETNSID): crisp dumps one network namespace, so that one is outside.</summary>
    public net_device_entry VethEntry(uint nsId)
    {
        var e = Entry(nd_type.Veth);
        e.PeerIfindex = (uint)(Link ?? Index);
        if (LinkNetnsid is null)
            e.PeerNsid = nsId;
        return e;
    }
}
