using System.Text;

namespace Crisp.Images.Show;

/// <summary>crit's "pretty" conversions of numbers and bytes (flag names, dict names, dev_t, IP addresses, base64,
/// quoted-printable) in current CRIU's tables, both ways: decode shows them, encode reads them back.</summary>
internal static class CritFormat
{
    private static readonly Dictionary<string, (string Name, ulong Bit)[]> FlagMaps = new()
    {
        ["mmap.prot"] = [("PROT_READ", 0x1), ("PROT_WRITE", 0x2), ("PROT_EXEC", 0x4)],
        ["mmap.flags"] = [("MAP_SHARED", 0x1), ("MAP_PRIVATE", 0x2), ("MAP_DROPPABLE", 0x8), ("MAP_ANON", 0x20), ("MAP_GROWSDOWN", 0x100)],
        ["mmap.status"] =
        [
            ("VMA_AREA_NONE", 0), ("VMA_AREA_REGULAR", 1 << 0), ("VMA_AREA_STACK", 1 << 1), ("VMA_AREA_VSYSCALL", 1 << 2),
            ("VMA_AREA_VDSO", 1 << 3), ("VMA_AREA_HEAP", 1 << 5), ("VMA_FILE_PRIVATE", 1 << 6), ("VMA_FILE_SHARED", 1 << 7),
            ("VMA_ANON_SHARED", 1 << 8), ("VMA_ANON_PRIVATE", 1 << 9), ("VMA_AREA_SYSVIPC", 1 << 10), ("VMA_AREA_SOCKET", 1 << 11),
            ("VMA_AREA_VVAR", 1 << 12), ("VMA_AREA_AIORING", 1 << 13), ("VMA_AREA_MEMFD", 1 << 14), ("VMA_AREA_SHSTK", 1 << 15),
            ("VMA_AREA_UPROBES", 1 << 17), ("VMA_UNSUPP", 1UL << 31),
        ],
        ["rfile.flags"] =
        [
            ("O_WRONLY", 0x1), ("O_RDWR", 0x2), ("O_CREAT", 0x40), ("O_EXCL", 0x80), ("O_NOCTTY", 0x100), ("O_TRUNC", 0x200),
            ("O_APPEND", 0x400), ("O_NONBLOCK", 0x800), ("O_DSYNC", 0x1000), ("FASYNC", 0x2000), ("O_DIRECT", 0x4000),
            ("O_LARGEFILE", 0x8000), ("O_DIRECTORY", 0x10000), ("O_NOFOLLOW", 0x20000), ("O_NOATIME", 0x40000), ("O_CLOEXEC", 0x80000),
        ],
        ["pmap.flags"] = [("PE_PARENT", 1), ("PE_LAZY", 2), ("PE_PRESENT", 4)],
        ["seals.flags"] = [("F_SEAL_SEAL", 1), ("F_SEAL_SHRINK", 2), ("F_SEAL_GROW", 4), ("F_SEAL_WRITE", 8), ("F_SEAL_FUTURE_WRITE", 0x10)],
    };

    private static readonly Dictionary<string, Dictionary<string, Dictionary<long, string>>> DictMaps = new()
    {
        ["gen"] = new() { ["task_state"] = new() { [1] = "Alive", [3] = "Zombie", [6] = "Stopped" } },
        ["sk"] = new()
        {
            ["family"] = new() { [1] = "UNIX", [2] = "INET", [10] = "INET6", [16] = "NETLINK", [17] = "PACKET" },
            ["type"] = new() { [1] = "STREAM", [2] = "DGRAM", [3] = "RAW", [5] = "SEQPACKET", [10] = "PACKET" },
            ["state"] = new()
            {
                [1] = "ESTABLISHED", [2] = "SYN_SENT", [3] = "SYN_RECV", [4] = "FIN_WAIT1", [5] = "FIN_WAIT2",
                [6] = "TIME_WAIT", [7] = "CLOSE", [8] = "CLOSE_WAIT", [9] = "LAST_ACK", [10] = "LISTEN",
            },
            ["proto"] = new() { [0] = "IP", [6] = "TCP", [17] = "UDP", [136] = "UDPLITE" },
        },
    };

    public static string Hex(Int128 v) => v < 0 ? "-0x" + Hex(-v)[2..] : "0x" + ((UInt128)v).ToString("x");

    /// <summary>Flag names joined by " | ", unknown bits as hex; an unknown map shows plain hex.</summary>
    public static string Flags(string map, Int128 value)
    {
        if (!FlagMaps.TryGetValue(map, out var bits))
            return Hex(value);
        var parts = new List<string>();
        ulong v = (ulong)value, all = 0;
        foreach (var (name, bit) in bits)
        {
            if ((v & bit) != 0)
                parts.Add(name);
            all |= bit;
        }
        if ((v & ~all) != 0)
            parts.Add(Hex(v & ~all));
        return string.Join(" | ", parts);
    }

    public static object Dict(string map, string field, Int128 value) =>
        DictMaps.TryGetValue(map, out var fields) && fields.TryGetValue(field, out var names)
            && value >= long.MinValue && value <= long.MaxValue && names.TryGetValue((long)value, out var n)
            ? n : value;

    /// <summary>dev_t as "major:minor": the kernel's 20-bit-minor form, or glibc's (odev) form.</summary>
    public static string Dev(Int128 value, bool odev)
    {
        ulong v = (ulong)value;
        if (odev)
        {
            ulong major = ((v >> 8) & 0xfff) | ((v >> 32) & ~0xfffUL);
            ulong minor = (v & 0xff) | ((v >> 12) & ~0xffUL);
            return $"{major}:{minor}";
        }
        return $"{v >> 20}:{v & ((1UL << 20) - 1)}";
    }

    /// <summary>Python's base64.encodebytes: 76-character lines, each ending in a newline.</summary>
    public static string Base64Lines(ReadOnlySpan<byte> data)
    {
        string all = Convert.ToBase64String(data);
        var sb = new StringBuilder(all.Length + all.Length / 76 + 1);
        for (int i = 0; i < all.Length; i += 76)
            sb.Append(all, i, Math.Min(76, all.Length - i)).Append('\n');
        return sb.ToString();
    }

    /// <summary>Quoted-printable like Python's quopri.encodestring (used for unix socket names).</summary>
    public static string QuotedPrintable(ReadOnlySpan<byte> data)
    {
        var sb = new StringBuilder();
        int line = 0;
        for (int i = 0; i < data.Length; i++)
        {
            byte b = data[i];
            if (b == (byte)'\n')
            {
                sb.Append('\n');
                line = 0;
                continue;
            }
            bool atEol = i + 1 == data.Length || data[i + 1] == (byte)'\n';
            bool encode = b > 126 || b == (byte)'=' || (b < 32 && b != (byte)'\t') || ((b == (byte)' ' || b == (byte)'\t') && atEol);
            string piece = encode ? $"={b:X2}" : ((char)b).ToString();
            if (line + piece.Length > 75 && !(atEol && line + piece.Length <= 76))
            {
                sb.Append("=\n");
                line = 0;
            }
            sb.Append(piece);
            line += piece.Length;
        }
        return sb.ToString();
    }

    // ---- the way back (crit encode): Python's int(s, 0), flag and dict names, "major:minor", addresses ----

    /// <summary>Python's int(s, 0): decimal, 0x/0o/0b prefixes, an optional sign, underscores between digits.</summary>
    public static Int128 ParseInt(string text)
    {
        string s = text.Trim().Replace("_", "", StringComparison.Ordinal);
        bool negative = s.StartsWith('-');
        if (s.StartsWith('-') || s.StartsWith('+'))
            s = s[1..];
        (int radix, string digits) = s.Length > 2 && s[0] == '0' ? char.ToLowerInvariant(s[1]) switch
        {
            'x' => (16, s[2..]),
            'o' => (8, s[2..]),
            'b' => (2, s[2..]),
            _ => (10, s),
        } : (10, s);
        if (digits.Length == 0 || text.Trim().Length == 0)
            throw new FormatException($"'{text}' is not a number");
        UInt128 value = 0;
        foreach (char c in digits)
        {
            int d = c is >= '0' and <= '9' ? c - '0' : c is >= 'a' and <= 'f' ? c - 'a' + 10 : c is >= 'A' and <= 'F' ? c - 'A' + 10 : 99;
            if (d >= radix)
                throw new FormatException($"'{text}' is not a number");
            value = checked(value * (UInt128)radix + (UInt128)d);
        }
        return negative ? -(Int128)value : (Int128)value;
    }

    /// <summary>"A | B | 0x40" back to a number; names crisp does not know are an error, hex parts are taken as they are.</summary>
    public static Int128 Unflags(string map, string text)
    {
        if (!FlagMaps.TryGetValue(map, out var bits))
            return ParseInt(text);
        if (text.Length == 0)
            return 0;
        Int128 value = 0;
        foreach (string part in text.Split('|').Select(p => p.Trim()))
        {
            var named = bits.FirstOrDefault(b => b.Name == part);
            value |= named.Name is not null ? (Int128)named.Bit : ParseInt(part);
        }
        return value;
    }

    public static Int128 Undict(string map, string field, string text)
    {
        if (DictMaps.TryGetValue(map, out var fields) && fields.TryGetValue(field, out var names))
            foreach (var (number, name) in names)
                if (name == text)
                    return number;
        return ParseInt(text);
    }

    public static Int128 Undev(string text, bool odev)
    {
        var parts = text.Split(':');
        if (parts.Length != 2)
            throw new FormatException($"'{text}' is not a device number major:minor");
        ulong major = (ulong)ParseInt(parts[0]), minor = (ulong)ParseInt(parts[1]);
        if (!odev)
            return (Int128)((major << 20) | minor);
        // glibc's makedev.
        return (Int128)(((major & 0xfff) << 8) | ((major & ~0xfffUL) << 32) | (minor & 0xff) | ((minor & ~0xffUL) << 12));
    }

    /// <summary>crit shows an address field (network-order words) as one string: IPv4 for one word, else IPv6.</summary>
    public static string Address(IReadOnlyList<uint> words)
    {
        var bytes = new byte[words.Count == 1 ? 4 : 16];
        for (int i = 0; i < bytes.Length / 4 && i < words.Count; i++)
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(4 * i), words[i]);
        if (bytes.Length == 4)
            return new System.Net.IPAddress(bytes).ToString();
        // Python's IPv6Address.compressed: hex groups, the longest run (2 or more) of zero groups as "::".
        var groups = Enumerable.Range(0, 8).Select(i => (bytes[2 * i] << 8) | bytes[2 * i + 1]).ToArray();
        int bestAt = -1, bestLen = 1;
        for (int i = 0; i < 8;)
        {
            int j = i;
            while (j < 8 && groups[j] == 0)
                j++;
            if (j - i > bestLen)
                (bestAt, bestLen) = (i, j - i);
            i = j == i ? i + 1 : j;
        }
        var hex = groups.Select(g => g.ToString("x", System.Globalization.CultureInfo.InvariantCulture)).ToList();
        if (bestAt < 0)
            return string.Join(':', hex);
        string head = string.Join(':', hex.Take(bestAt)), tail = string.Join(':', hex.Skip(bestAt + bestLen));
        return $"{head}::{tail}";
    }

    public static uint[] Unaddress(string text)
    {
        if (!System.Net.IPAddress.TryParse(text, out var ip))
            throw new FormatException($"'{text}' is not an IP address");
        byte[] bytes = ip.GetAddressBytes();
        var words = new uint[bytes.Length / 4];
        for (int i = 0; i < words.Length; i++)
            words[i] = System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(4 * i));
        return words;
    }

    /// <summary>Python's base64.decodebytes: line breaks ignored.</summary>
    public static byte[] FromBase64Lines(string text) =>
        Convert.FromBase64String(string.Concat(text.Where(c => !char.IsWhiteSpace(c))));

    /// <summary>Python's quopri.decodestring: "=XX" is a byte, "=" at a line end joins lines.</summary>
    public static byte[] FromQuotedPrintable(string text)
    {
        var bytes = new List<byte>(text.Length);
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (c == '=' && i + 1 < text.Length && text[i + 1] == '\n')
                i++;
            else if (c == '=' && i + 2 < text.Length && Uri.IsHexDigit(text[i + 1]) && Uri.IsHexDigit(text[i + 2]))
            {
                bytes.Add(Convert.ToByte(text.Substring(i + 1, 2), 16));
                i += 2;
            }
            else
                bytes.Add((byte)c);
        }
        return [.. bytes];
    }
}
