namespace Crisp.Resources.Mounts;

/// <summary>The kernel's MS_* mount flags and how mountinfo spells them, as CRIU parses them (proc_parse.c):
/// a mount's own options (field 6) and propagation into <c>flags</c>, the superblock's ro/sync/dirsync/mand into
/// <c>sb_flags</c>, the superblock's other options kept as text.</summary>
public static class MountFlags
{
    public const uint MS_RDONLY = 1, MS_NOSUID = 2, MS_NODEV = 4, MS_NOEXEC = 8, MS_SYNCHRONOUS = 16, MS_REMOUNT = 32,
        MS_MANDLOCK = 64, MS_DIRSYNC = 128, MS_NOSYMFOLLOW = 256, MS_NOATIME = 1024, MS_NODIRATIME = 2048, MS_BIND = 4096,
        MS_REC = 16384, MS_UNBINDABLE = 1 << 17, MS_PRIVATE = 1 << 18, MS_SLAVE = 1 << 19, MS_SHARED = 1 << 20,
        MS_RELATIME = 1 << 21, MS_STRICTATIME = 1 << 24;
    public const int MNT_DETACH = 2;

    /// <summary>The per-mount flags a bind remount sets (MS_REMOUNT|MS_BIND takes exactly these).</summary>
    public const uint PerMount = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOSYMFOLLOW | MS_NOATIME | MS_NODIRATIME
        | MS_RELATIME | MS_STRICTATIME;
    public const uint Propagation = MS_SHARED | MS_SLAVE | MS_UNBINDABLE | MS_PRIVATE;

    private static readonly Dictionary<string, uint> MountOptions = new(StringComparer.Ordinal)
    {
        ["rw"] = 0, ["ro"] = MS_RDONLY, ["nosuid"] = MS_NOSUID, ["nodev"] = MS_NODEV, ["noexec"] = MS_NOEXEC,
        ["noatime"] = MS_NOATIME, ["nodiratime"] = MS_NODIRATIME, ["relatime"] = MS_RELATIME, ["nosymfollow"] = MS_NOSYMFOLLOW,
    };

    private static readonly Dictionary<string, uint> SuperOptions = new(StringComparer.Ordinal)
    {
        ["rw"] = 0, ["ro"] = MS_RDONLY, ["sync"] = MS_SYNCHRONOUS, ["dirsync"] = MS_DIRSYNC, ["mand"] = MS_MANDLOCK,
    };

    /// <summary>A mount's own options and optional fields as flags (CRIU's parse_mnt_flags + parse_mnt_opt):
    /// neither relatime nor noatime means strictatime.</summary>
    public static uint OfMount(string options, IEnumerable<string> optionalFields)
    {
        uint flags = 0;
        foreach (string o in options.Split(','))
            flags |= MountOptions.TryGetValue(o, out uint f) ? f : throw new CrispException($"mountinfo: unknown mount option '{o}'");
        if ((flags & (MS_RELATIME | MS_NOATIME)) == 0)
            flags |= MS_STRICTATIME;
        foreach (string f in optionalFields)
        {
            if (f.StartsWith("shared:", StringComparison.Ordinal))
                flags |= MS_SHARED;
            else if (f.StartsWith("master:", StringComparison.Ordinal))
                flags |= MS_SLAVE;
            else if (f == "unbindable")
                flags |= MS_UNBINDABLE;
        }
        return flags;
    }

    /// <summary>The superblock's options split into sb_flags and the rest, as text for mount(2)'s data.</summary>
    public static (uint Flags, string Others) OfSuper(string options)
    {
        uint flags = 0;
        var rest = new List<string>();
        foreach (string o in options.Split(',', StringSplitOptions.RemoveEmptyEntries))
        {
            if (SuperOptions.TryGetValue(o, out uint f))
                flags |= f;
            else
                rest.Add(o);
        }
        return (flags, string.Join(',', rest));
    }
}
