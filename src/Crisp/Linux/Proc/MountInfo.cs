namespace Crisp.Linux.Proc;

/// <summary>One line of /proc/PID/mountinfo; escaped strings (\040 etc.) are decoded.</summary>
public sealed record MountInfoEntry(
    int MountId, int ParentId, uint Major, uint Minor, string Root, string MountPoint,
    string Options, IReadOnlyList<string> OptionalFields, string FsType, string Source, string SuperOptions)
{
    /// <summary>The peer group from "shared:N", or 0.</summary>
    public int SharedGroup => Optional("shared:");
    /// <summary>The master's peer group from "master:N", or 0.</summary>
    public int MasterGroup => Optional("master:");

    private int Optional(string prefix)
    {
        foreach (var f in OptionalFields)
            if (f.StartsWith(prefix, StringComparison.Ordinal))
                return int.Parse(f.AsSpan(prefix.Length));
        return 0;
    }
}

/// <summary>/proc/PID/mountinfo.</summary>
public static class MountInfo
{
    public static List<MountInfoEntry> Read(int pid) => Parse(Procfs.Host.ReadText(pid, "mountinfo"));

    public static List<MountInfoEntry> Parse(string text)
    {
        var list = new List<MountInfoEntry>();
        foreach (var line in ProcFiles.Lines(text))
            list.Add(ParseLine(line));
        return list;
    }

    /// <summary>"36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue".</summary>
    public static MountInfoEntry ParseLine(string line)
    {
        var f = line.Split(' ');
        int sep = Array.IndexOf(f, "-", 6);
        if (sep < 0 || sep + 3 >= f.Length)
            throw new FormatException($"bad mountinfo line: '{line}'");
        int colon = f[2].IndexOf(':');
        var optional = f[6..sep];
        string D(int i) => ProcFiles.DecodeOctalEscapes(f[i]);
        return new MountInfoEntry(
            int.Parse(f[0]), int.Parse(f[1]),
            uint.Parse(f[2].AsSpan(0, colon)), uint.Parse(f[2].AsSpan(colon + 1)),
            D(3), D(4), f[5], optional, D(sep + 1), D(sep + 2), D(sep + 3));
    }
}
