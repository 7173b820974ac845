namespace Crisp.Linux.Proc;

/// <summary>One row of /proc/PID/limits; "unlimited" is ulong.MaxValue (RLIM_INFINITY).</summary>
public sealed record LimitEntry(string Name, int Resource, ulong Soft, ulong Hard, string Units);

/// <summary>/proc/PID/limits.</summary>
public static class ProcLimits
{
    /// <summary>Row names in RLIMIT_* order (index = resource number).</summary>
    public static readonly string[] Names =
    [
        "Max cpu time", "Max file size", "Max data size", "Max stack size", "Max core file size",
        "Max resident set", "Max processes", "Max open files", "Max locked memory", "Max address space",
        "Max file locks", "Max pending signals", "Max msgqueue size", "Max nice priority",
        "Max realtime priority", "Max realtime timeout",
    ];

    public static List<LimitEntry> Read(int pid) => Parse(Procfs.Host.ReadText(pid, "limits"));

    /// <summary>Rows are "%-25s %-20s %-20s %-10s"; the name is the first 25 columns.</summary>
    public static List<LimitEntry> Parse(string text)
    {
        var list = new List<LimitEntry>();
        foreach (var line in ProcFiles.Lines(text))
        {
            if (line.StartsWith("Limit ", StringComparison.Ordinal) || line.Length < 26)
                continue;
            string name = line[..25].Trim();
            var rest = line[25..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (rest.Length < 2)
                throw new FormatException($"bad limits line: '{line}'");
            list.Add(new LimitEntry(name, Array.IndexOf(Names, name), Value(rest[0]), Value(rest[1]),
                rest.Length > 2 ? rest[2] : ""));
        }
        return list;
    }

    /// <summary>Limits indexed by RLIMIT_* number (rows the kernel prints that we don't know are dropped).</summary>
    public static Rlimit[] ToRlimits(IEnumerable<LimitEntry> entries)
    {
        var limits = new Rlimit[Rlimits.RLIM_NLIMITS];
        foreach (var e in entries)
            if (e.Resource >= 0)
                limits[e.Resource] = new Rlimit(e.Soft, e.Hard);
        return limits;
    }

    private static ulong Value(string s) => s == "unlimited" ? Rlimits.RLIM_INFINITY : ProcFiles.UDec(s);
}
