using System.Globalization;
using System.Text.Json.Nodes;
using Crisp.Images.Show;

namespace Crisp.Tests.Images;

/// <summary>
/// crisp prints current crit's shape; Debian's crit is 3.17. Comparisons with it drop, by name, what 3.17 does
/// not know and compare the rest as text: fields newer than its .proto files, and flag names newer than its
/// tables (3.17 shows those bits as hex).
/// </summary>
internal static class Crit317
{
    /// <summary>Fields crisp's schemas have that crit 3.17's lack: creds_entry.no_new_privs and cap_amb (in
    /// creds-*.img and core thread_core.creds), inventory_entry.plugins_entry; crisp's own thread_core fields
    /// (timer_slack_ns, cpu_affinity, ioprio) and mm coredump_filter, which no crit knows.</summary>
    public static readonly IReadOnlySet<string> NewerFields = new HashSet<string> { "no_new_privs", "cap_amb", "plugins_entry", "timer_slack_ns", "cpu_affinity", "ioprio", "coredump_filter" };

    /// <summary>Flag names added after 3.17, with their bits.</summary>
    public static readonly IReadOnlyDictionary<string, ulong> NewerFlags = new Dictionary<string, ulong>
    {
        ["MAP_DROPPABLE"] = 0x8, ["VMA_AREA_MEMFD"] = 1 << 14, ["VMA_AREA_SHSTK"] = 1 << 15, ["VMA_AREA_UPROBES"] = 1 << 17,
    };

    /// <summary>Asserts `crit show PATH` (3.17) equals crisp's show output once the newer parts are left out.</summary>
    public static void AssertShowEqual(string path, string crispShow) =>
        Assert.Equal(Crit.Show(path), PyJson.Serialize(AsCrit317(JsonNode.Parse(crispShow)!)) + "\n");

    private static object AsCrit317(JsonNode node) => node switch
    {
        JsonObject o => Strip(o),
        JsonArray a => a.Select(n => AsCrit317(n!)).ToList(),
        JsonValue v when v.TryGetValue(out bool b) => b,
        JsonValue v when v.TryGetValue(out string? s) => OldFlags(s!),
        JsonValue v => Int128.Parse(v.ToJsonString(), CultureInfo.InvariantCulture),
        _ => throw new ArgumentException(node.ToJsonString()),
    };

    private static PyJson.Obj Strip(JsonObject o)
    {
        var obj = new PyJson.Obj();
        // pagemap_entry: current CRIU names field 2 compat_nr_pages and adds nr_pages as field 5; 3.17 knows
        // field 2 only, as nr_pages.
        bool pagemap = o.ContainsKey("compat_nr_pages");
        foreach (var (key, value) in o)
        {
            if (NewerFields.Contains(key) || pagemap && key == "nr_pages")
                continue;
            obj.Add(pagemap && key == "compat_nr_pages" ? "nr_pages" : key, AsCrit317(value!));
        }
        return obj;
    }

    /// <summary>"A | VMA_AREA_MEMFD" → "A | 0x4000", merged with any hex part as crit's map_flags would.</summary>
    private static string OldFlags(string s)
    {
        var parts = s.Split(" | ");
        if (!parts.Any(NewerFlags.ContainsKey))
            return s;
        ulong extra = 0;
        var kept = new List<string>();
        foreach (var p in parts)
        {
            if (NewerFlags.TryGetValue(p, out ulong bit))
                extra |= bit;
            else if (p.StartsWith("0x", StringComparison.Ordinal))
                extra |= ulong.Parse(p[2..], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            else
                kept.Add(p);
        }
        kept.Add($"0x{extra:x}");
        return string.Join(" | ", kept);
    }
}
