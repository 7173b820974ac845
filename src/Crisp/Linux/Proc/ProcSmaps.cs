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

    /// <summary>The VMAs one at a time, as the file is read (a task with many VMAs has megabytes of smaps).
    /// Read as bytes through one pooled buffer: only each VMA's maps line becomes a string; counter names and
    /// VmFlags come from interned tables. A small dump parses ~80 VMAs, and every fresh page the heap takes costs a
    /// ~10 µs fault on this kind of VM (docs/bench.md).</summary>
    public static IEnumerable<SmapsEntry> Enumerate(int pid)
    {
        using var handle = File.OpenHandle(Procfs.Host.Path(pid, "smaps"), FileMode.Open, FileAccess.Read);
        byte[] buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(16 << 10);
        try
        {
            var parser = new Parser();
            int filled = 0;
            long offset = 0;
            while (true)
            {
                int n = RandomAccess.Read(handle, buffer.AsSpan(filled), offset);
                offset += n;
                filled += n;
                int consumed = 0;
                while (true)
                {
                    int nl = buffer.AsSpan(consumed, filled - consumed).IndexOf((byte)'\n');
                    if (nl < 0)
                        break;
                    var done = parser.Line(buffer.AsSpan(consumed, nl));
                    consumed += nl + 1;
                    if (done is not null)
                        yield return done;
                }
                if (n == 0)
                {
                    if (filled > consumed && parser.Line(buffer.AsSpan(consumed, filled - consumed)) is { } partial)
                        yield return partial;
                    break;
                }
                buffer.AsSpan(consumed, filled - consumed).CopyTo(buffer);
                filled -= consumed;
                if (filled == buffer.Length)
                {
                    byte[] larger = System.Buffers.ArrayPool<byte>.Shared.Rent(buffer.Length * 2);
                    buffer.AsSpan(0, filled).CopyTo(larger);
                    System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
                    buffer = larger;
                }
            }
            if (parser.Finish() is { } last)
                yield return last;
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    public static List<SmapsEntry> Parse(string text)
    {
        var parser = new Parser();
        var list = new List<SmapsEntry>();
        foreach (var line in ProcFiles.Lines(text))
            if (parser.Line(System.Text.Encoding.UTF8.GetBytes(line)) is { } done)
                list.Add(done);
        if (parser.Finish() is { } last)
            list.Add(last);
        return list;
    }

    /// <summary>Line by line: a maps header starts a VMA (and hands back the one before it); "Key: N [kB]" and
    /// "VmFlags: …" lines fill it in.</summary>
    private sealed class Parser
    {
        private SmapsEntry? _current;

        public SmapsEntry? Line(ReadOnlySpan<byte> line)
        {
            if (line.IsEmpty)
                return null;
            int colon = line.IndexOf((byte)':');
            int space = line.IndexOf((byte)' ');
            // Counter lines are "Key:" first; a maps header has a space before any colon ("maj:min").
            if (!(colon > 0 && (space < 0 || colon < space)))
            {
                var previous = _current;
                _current = new SmapsEntry(ProcMaps.ParseLine(System.Text.Encoding.UTF8.GetString(line)));
                return previous;
            }
            if (_current is null)
                throw new FormatException($"smaps field before any VMA: '{System.Text.Encoding.UTF8.GetString(line)}'");
            var key = line[..colon];
            var value = line[(colon + 1)..].Trim((byte)' ');
            if (key.SequenceEqual("VmFlags"u8))
            {
                foreach (var range in value.Split((byte)' '))
                    if (!value[range].IsEmpty)
                        _current.VmFlags.Add(Interned(value[range]));
                return null;
            }
            bool kb = value.EndsWith(" kB"u8);
            if (kb)
                value = value[..^3].TrimEnd((byte)' ');
            if (System.Buffers.Text.Utf8Parser.TryParse(value, out ulong n, out int used) && used == value.Length)
                _current.Fields[Interned(key)] = kb ? n * 1024 : n;
            return null;
        }

        public SmapsEntry? Finish()
        {
            var last = _current;
            _current = null;
            return last;
        }
    }

    /// <summary>The counter names and VmFlags the kernel prints, as shared strings.</summary>
    private static readonly string[] Known =
    [
        "Size", "KernelPageSize", "MMUPageSize", "Rss", "Pss", "Pss_Dirty", "Pss_Anon", "Pss_File", "Pss_Shmem",
        "Shared_Clean", "Shared_Dirty", "Private_Clean", "Private_Dirty", "Referenced", "Anonymous", "KSM",
        "LazyFree", "AnonHugePages", "ShmemPmdMapped", "FilePmdMapped", "Shared_Hugetlb", "Private_Hugetlb", "Swap",
        "SwapPss", "Locked", "THPeligible", "ProtectionKey",
        "rd", "wr", "ex", "sh", "mr", "mw", "me", "ms", "gd", "pf", "dw", "lo", "io", "sr", "rr", "dc", "de", "ac",
        "nr", "ht", "sf", "ar", "wf", "dd", "bt", "mm", "hg", "nh", "mg", "um", "uw", "ss", "sl", "lf", "mt",
    ];

    private static readonly Dictionary<string, string>.AlternateLookup<ReadOnlySpan<char>> KnownLookup =
        Known.ToDictionary(k => k, StringComparer.Ordinal).GetAlternateLookup<ReadOnlySpan<char>>();

    private static string Interned(ReadOnlySpan<byte> ascii)
    {
        if (ascii.Length > 32)
            return System.Text.Encoding.UTF8.GetString(ascii);
        Span<char> chars = stackalloc char[ascii.Length];
        for (int i = 0; i < ascii.Length; i++)
            chars[i] = (char)ascii[i];
        return KnownLookup.TryGetValue(chars, out var known) ? known : new string(chars);
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
