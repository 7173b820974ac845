namespace Crisp.Linux.Proc;

/// <summary>One VMA of /proc/PID/smaps: its maps line plus the counters and VmFlags.</summary>
public sealed class SmapsEntry(MapsEntry vma)
{
    public MapsEntry Vma { get; } = vma;

    /// <summary>Every "Key: N [kB]" counter; kB values converted to bytes.</summary>
    public Dictionary<string, ulong> Fields { get; } = new(StringComparer.Ordinal);

    /// <summary>The two-letter VmFlags (rd, wr, ex, mr, mw, me, sh, gd, ac, dc, sd, …).</summary>
    public HashSet<string> VmFlags { get; } = new(StringComparer.Ordinal);

    public ulong Get(string key) => Fields.TryGetValue(key, out var v) ? v : 0;

    public ulong Size => Get("Size");
    public ulong Rss => Get("Rss");
    public ulong Pss => Get("Pss");
    public ulong SharedClean => Get("Shared_Clean");
    public ulong SharedDirty => Get("Shared_Dirty");
    public ulong PrivateClean => Get("Private_Clean");
    public ulong PrivateDirty => Get("Private_Dirty");
    public ulong Referenced => Get("Referenced");
    public ulong Anonymous => Get("Anonymous");
    public ulong AnonHugePages => Get("AnonHugePages");
    public ulong Swap => Get("Swap");
    public ulong SwapPss => Get("SwapPss");
    public ulong Locked => Get("Locked");

    public bool HasFlag(string flag) => VmFlags.Contains(flag);
}

/// <summary>/proc/PID/smaps.</summary>
public static class ProcSmaps
{
    public static List<SmapsEntry> Read(int pid) => Enumerate(pid).ToList();

    /// <summary>The VMAs one at a time, as the file is read (a task with many VMAs has megabytes of smaps).</summary>
    public static IEnumerable<SmapsEntry> Enumerate(int pid) => Parse(Procfs.Host.ReadLines(pid, "smaps"));

    public static List<SmapsEntry> Parse(string text) => Parse(ProcFiles.Lines(text)).ToList();

    private static IEnumerable<SmapsEntry> Parse(IEnumerable<string> lines)
    {
        SmapsEntry? current = null;
        foreach (var line in lines)
        {
            int colon = line.IndexOf(':');
            int space = line.IndexOf(' ');
            // Counter lines are "Key:" first; a maps header has a space before any colon ("maj:min").
            bool isField = colon > 0 && (space < 0 || colon < space);
            if (!isField)
            {
                if (current is not null)
                    yield return current;
                current = new SmapsEntry(ProcMaps.ParseLine(line));
                continue;
            }
            if (current is null)
                throw new FormatException($"smaps field before any VMA: '{line}'");

            string key = line[..colon];
            var value = line.AsSpan(colon + 1).Trim();
            if (key == "VmFlags")
            {
                foreach (var flag in value.ToString().Split(' ', StringSplitOptions.RemoveEmptyEntries))
                    current.VmFlags.Add(flag);
                continue;
            }
            bool kb = value.EndsWith(" kB", StringComparison.Ordinal);
            if (kb)
                value = value[..^3].TrimEnd();
            if (ulong.TryParse(value, out var n))
                current.Fields[key] = kb ? n * 1024 : n;
        }
        if (current is not null)
            yield return current;
    }

    /// <summary>Finds the smaps entry for each maps entry by start address (null where smaps lacks it,
    /// e.g. the two files were read at different times).</summary>
    public static List<(MapsEntry Vma, SmapsEntry? Smaps)> Join(IEnumerable<MapsEntry> maps, IEnumerable<SmapsEntry> smaps)
    {
        var byStart = new Dictionary<ulong, SmapsEntry>();
        foreach (var s in smaps)
            byStart[s.Vma.Start] = s;
        var list = new List<(MapsEntry, SmapsEntry?)>();
        foreach (var m in maps)
            list.Add((m, byStart.TryGetValue(m.Start, out var s) && s.Vma.End == m.End ? s : null));
        return list;
    }
}
