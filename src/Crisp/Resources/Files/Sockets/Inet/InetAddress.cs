using System.Buffers.Binary;
using static Crisp.Linux.SocketCalls;

namespace Crisp.Resources.Files.Sockets.Inet;

/// <summary>An IPv4/IPv6 address and port as inet_sk_entry keeps it: the address as uint32 words holding
/// the raw network-order bytes (one word for v4, four for v6, as CRIU copies them), the port in host order.</summary>
public readonly record struct InetAddress(int Family, uint[] Words, uint Port)
{
    /// <summary>Parses a sockaddr_in/sockaddr_in6 from getsockname/getpeername; empty → null.</summary>
    public static InetAddress? FromSockaddr(ReadOnlySpan<byte> sa)
    {
        if (sa.Length < 2)
            return null;
        int family = BinaryPrimitives.ReadUInt16LittleEndian(sa);
        uint port = BinaryPrimitives.ReadUInt16BigEndian(sa[2..]);
        return family switch
        {
            AF_INET when sa.Length >= 8 => new InetAddress(family, [BinaryPrimitives.ReadUInt32LittleEndian(sa[4..])], port),
            AF_INET6 when sa.Length >= 24 => new InetAddress(family,
                [W(sa, 8), W(sa, 12), W(sa, 16), W(sa, 20)], port),
            _ => null,
        };
    }

    private static uint W(ReadOnlySpan<byte> s, int at) => BinaryPrimitives.ReadUInt32LittleEndian(s[at..]);

    /// <summary>The sockaddr for bind/connect.</summary>
    public byte[] ToSockaddr()
    {
        var sa = new byte[Family == AF_INET6 ? 28 : 16];
        BinaryPrimitives.WriteUInt16LittleEndian(sa, (ushort)Family);
        BinaryPrimitives.WriteUInt16BigEndian(sa.AsSpan(2), (ushort)Port);
        int at = Family == AF_INET6 ? 8 : 4;
        for (int i = 0; i < Words.Length; i++)
            BinaryPrimitives.WriteUInt32LittleEndian(sa.AsSpan(at + 4 * i), Words[i]);
        return sa;
    }

    /// <summary>The entry's address words for a family, checked: one for v4, four for v6 (all zero when absent).</summary>
    public static InetAddress FromEntry(int family, IReadOnlyList<uint> words, uint port, string what)
    {
        int want = family == AF_INET6 ? 4 : 1;
        if (words.Count != want && words.Count != 0)
            throw new CrispException($"{what}: address has {words.Count} word(s), family {family} needs {want}");
        return new InetAddress(family, words.Count == 0 ? new uint[want] : [.. words], port);
    }

    public override string ToString()
    {
        var sa = ToSockaddr();
        var ip = new System.Net.IPAddress(Family == AF_INET6 ? sa.AsSpan(8, 16) : sa.AsSpan(4, 4));
        return Family == AF_INET6 ? $"[{ip}]:{Port}" : $"{ip}:{Port}";
    }
}
