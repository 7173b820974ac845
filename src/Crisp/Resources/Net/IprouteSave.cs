using System.Buffers.Binary;
using Crisp.Linux;

namespace Crisp.Resources.Net;

/// <summary>The format of `ip addr save` and `ip route save`, which CRIU stores as ifaddr-ID.img and route[6]-ID.img:
/// a 32-bit magic in host order, then the kernel's netlink messages as they came (nlmsghdr included). `ip addr
/// restore` / `ip route restore` (and `ip addr showdump`) read it.</summary>
public static class IprouteSave
{
    /// <summary>iproute2's ipadd_dump_magic and route_dump_magic.</summary>
    public const uint AddrMagic = 0x47361222, RouteMagic = 0x45311224;

    public static byte[] Write(uint magic, IEnumerable<NetlinkMessage> messages)
    {
        using var stream = new MemoryStream();
        Span<byte> head = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(head, magic);
        stream.Write(head);
        foreach (var m in messages)
            stream.Write(m.ToBytes());
        return stream.ToArray();
    }

    /// <summary>The messages of a saved dump; <paramref name="what"/> names the file in errors.</summary>
    public static List<NetlinkMessage> Read(byte[] bytes, uint magic, string what)
    {
        if (bytes.Length < 4 || BinaryPrimitives.ReadUInt32LittleEndian(bytes) != magic)
            throw new CrispException($"{what}: not an `ip {(magic == AddrMagic ? "addr" : "route")} save` dump (magic 0x{magic:x8} expected)");
        var list = new List<NetlinkMessage>();
        for (int at = 4; at < bytes.Length;)
        {
            if (at + 16 > bytes.Length)
                throw new CrispException($"{what}: truncated message at byte {at}");
            int len = (int)BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at));
            if (len < 16 || at + len > bytes.Length)
                throw new CrispException($"{what}: message of {len} bytes at byte {at} does not fit");
            list.Add(new NetlinkMessage(BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(at + 4)),
                BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(at + 6)), bytes.AsSpan(at + 16, len - 16).ToArray()));
            at += (len + 3) & ~3;
        }
        return list;
    }
}
