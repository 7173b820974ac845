using System.Buffers.Binary;
using Crisp.Linux;

namespace Crisp.Resources.Net;

/// <summary>Policy routing rules (`ip rule`): crisp carries none, so a namespace must have only the rules the kernel
/// makes in every new one (fib_default_rules_init: 0 lookup local, 32766 lookup main, and for IPv4 32767 lookup
/// default). Anything else is refused at dump by its priority and table.</summary>
public static class NetRules
{
    private const ushort RTM_GETRULE = 34;
    private const int FRA_PRIORITY = 6, FRA_TABLE = 15, FRA_SUPPRESS_PREFIXLEN = 14, FRA_PROTOCOL = 21, FR_ACT_TO_TBL = 1;

    public static void RefuseOthersThanKernels(RtNetlink nl, int pid)
    {
        foreach (var (family, name, defaults) in new[] { ((byte)2, "IPv4", new[] { (0u, 255u), (32766u, 254u), (32767u, 253u) }), ((byte)10, "IPv6", new[] { (0u, 255u), (32766u, 254u) }) })
        {
            var seen = new List<(uint, uint)>();
            foreach (var m in nl.Dump(RTM_GETRULE, family, 12))
            {
                var h = m.Payload;
                uint priority = 0, table = h[4];
                bool selectors = h[1] != 0 || h[2] != 0 || h[3] != 0 || h[7] != FR_ACT_TO_TBL || BinaryPrimitives.ReadUInt32LittleEndian(h.AsSpan(8)) != 0;
                foreach (var (type, data) in m.Attributes(12))
                {
                    if (type == FRA_PRIORITY && data.Length >= 4)
                        priority = BinaryPrimitives.ReadUInt32LittleEndian(data);
                    else if (type == FRA_TABLE && data.Length >= 4)
                        table = BinaryPrimitives.ReadUInt32LittleEndian(data);
                    else if (type != FRA_PROTOCOL && !(type == FRA_SUPPRESS_PREFIXLEN && data.Length >= 4 && BinaryPrimitives.ReadInt32LittleEndian(data) == -1))
                        selectors = true;   // a selector, or suppress_prefixlength set (-1 is none)
                }
                if (selectors || !defaults.Contains((priority, table)) || seen.Contains((priority, table)))
                    throw new CrispException($"task {pid}'s network namespace has an {name} rule (priority {priority}, table {table}) other than the kernel's: crisp carries no policy routing rules");
                seen.Add((priority, table));
            }
        }
    }
}

/// <summary>Legacy iptables (x_tables) of a namespace: CRIU saves them with iptables-save; crisp does not (rules
/// made with iptables-nft are nftables and come with the ruleset). A namespace where a legacy table exists is refused.</summary>
public static class LegacyIptables
{
    public static void Refuse(int pid)
    {
        foreach (var file in new[] { "ip_tables_names", "ip6_tables_names" })
        {
            string path = Linux.Proc.Procfs.Host.Path(pid, $"net/{file}");
            string tables = File.Exists(path) ? string.Join(", ", File.ReadAllLines(path).Where(l => l.Length > 0)) : "";
            if (tables.Length > 0)
                throw new CrispException($"task {pid}'s network namespace has legacy {(file.StartsWith("ip6") ? "ip6tables" : "iptables")} tables ({tables}): crisp carries nftables only");
        }
    }
}
