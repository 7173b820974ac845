namespace Crisp.Linux.Proc;

/// <summary>/proc/PID/maps.</summary>
public static class ProcMaps
{
    private const string DeletedSuffix = " (deleted)";

    public static List<MapsEntry> Read(int pid) => Enumerate(pid).ToList();

    /// <summary>The VMAs one at a time, as the file is read.</summary>
    public static IEnumerable<MapsEntry> Enumerate(int pid) => Procfs.Host.ReadLines(pid, "maps").Select(ParseLine);

    public static List<MapsEntry> Parse(string text)
    {
        var list = new List<MapsEntry>();
        foreach (var line in ProcFiles.Lines(text))
            list.Add(ParseLine(line));
        return list;
    }

    /// <summary>"start-end perms offset maj:min inode   path". The path is everything after the
    /// inode and its padding, so it may contain spaces.</summary>
    public static MapsEntry ParseLine(string line)
    {
        int pos = 0;
        var range = NextField(line, ref pos);
        var perms = NextField(line, ref pos);
        var offset = NextField(line, ref pos);
        var dev = NextField(line, ref pos);
        var inode = NextField(line, ref pos);
        if (inode.IsEmpty || perms.Length != 4)
            throw new FormatException($"bad maps line: '{line}'");

        int dash = range.IndexOf('-');
        int colon = dev.IndexOf(':');
        while (pos < line.Length && line[pos] == ' ')
            pos++;
        string path = line[pos..];
        bool deleted = path.EndsWith(DeletedSuffix, StringComparison.Ordinal);
        if (deleted)
            path = path[..^DeletedSuffix.Length];

        var prot = VmaProt.None;
        if (perms[0] == 'r') prot |= VmaProt.Read;
        if (perms[1] == 'w') prot |= VmaProt.Write;
        if (perms[2] == 'x') prot |= VmaProt.Exec;

        return new MapsEntry(
            ProcFiles.Hex(range[..dash]), ProcFiles.Hex(range[(dash + 1)..]), prot, perms[3] == 's',
            ProcFiles.Hex(offset), (uint)ProcFiles.Hex(dev[..colon]), (uint)ProcFiles.Hex(dev[(colon + 1)..]),
            ProcFiles.UDec(inode), path, deleted);
    }

    internal static ReadOnlySpan<char> NextField(string line, ref int pos)
    {
        while (pos < line.Length && line[pos] == ' ')
            pos++;
        int start = pos;
        while (pos < line.Length && line[pos] != ' ')
            pos++;
        return line.AsSpan(start, pos - start);
    }
}
