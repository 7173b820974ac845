using System.Formats.Tar;
using System.IO.Compression;

namespace Crisp.Resources.Mounts;

/// <summary>A tmpfs's files as CRIU keeps them: tmpfs-dev-DEV.tar.gz.img, a gzip'd tar of the mount's root
/// ("./…", numeric owners, modes, modification times, device numbers, symlinks, hard links), written and read
/// with .NET's tar and gzip. As `tar --one-file-system` (what CRIU runs), what lies on other mounts is left out;
/// their mount points are made again at restore. Sockets are left out (tar skips them too); holes are written as
/// zeros, xattrs are not kept.</summary>
public static class TmpfsArchive
{
    /// <summary>CRIU's name: tmpfs-dev-%u.tar.gz.img with the superblock's kernel device number (root_dev).</summary>
    public static string FileName(uint rootDev) => $"tmpfs-dev-{rootDev}.tar.gz.img";

    /// <summary>Archives the tree under <paramref name="dir"/> (a path crisp can reach: /proc/PID/root/…).
    /// Returns the number of entries.</summary>
    public static int Write(string dir, Stream output)
    {
        var top = PathCalls.Lstat(dir);
        int count = 0;
        var links = new Dictionary<(ulong, ulong), string>();
        using var gzip = new GZipStream(output, CompressionLevel.Fastest, leaveOpen: true);
        using var tar = new TarWriter(gzip, TarEntryFormat.Pax, leaveOpen: true);
        void Add(string path, string name, NodeStat st)
        {
            PaxTarEntry entry;
            switch (st.Type)
            {
                case 0x4000:
                    entry = new PaxTarEntry(TarEntryType.Directory, name + "/");
                    break;
                case 0x8000 when st.Nlink > 1 && links.TryGetValue((st.Dev, st.Ino), out var first):
                    entry = new PaxTarEntry(TarEntryType.HardLink, name) { LinkName = first };
                    break;
                case 0x8000:
                    entry = new PaxTarEntry(TarEntryType.RegularFile, name);
                    if (st.Nlink > 1)
                        links[(st.Dev, st.Ino)] = name;
                    break;
                case 0xa000:
                    entry = new PaxTarEntry(TarEntryType.SymbolicLink, name) { LinkName = PathCalls.ReadLink(path) };
                    break;
                case 0x2000 or 0x6000:
                    entry = new PaxTarEntry(st.Type == 0x2000 ? TarEntryType.CharacterDevice : TarEntryType.BlockDevice, name)
                        { DeviceMajor = (int)st.RdevMajor, DeviceMinor = (int)st.RdevMinor };
                    break;
                case 0x1000:
                    entry = new PaxTarEntry(TarEntryType.Fifo, name);
                    break;
                default:
                    return;   // a socket: tar leaves it out too
            }
            entry.Mode = (UnixFileMode)st.Permissions;
            entry.Uid = (int)st.Uid;
            entry.Gid = (int)st.Gid;
            entry.ModificationTime = DateTimeOffset.FromUnixTimeSeconds(st.MtimeSec).AddTicks(st.MtimeNsec / 100);
            if (entry.EntryType == TarEntryType.RegularFile)
            {
                using var data = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1, FileOptions.None);
                entry.DataStream = data;
                tar.WriteEntry(entry);
            }
            else
                tar.WriteEntry(entry);
            count++;
            if (st.Type == 0x4000)
                foreach (var child in Directory.EnumerateFileSystemEntries(path).Order(StringComparer.Ordinal))
                {
                    var cst = PathCalls.TryLstat(child);
                    if (cst is { } c && c.Dev == top.Dev)   // --one-file-system: another mount's files are not this one's
                        Add(child, name + "/" + Path.GetFileName(child), c);
                }
        }
        Add(dir, ".", top);
        return count;
    }

    /// <summary>Extracts an archive into the empty tmpfs at <paramref name="dir"/>: every entry is made without
    /// following a symlink, only below directories the archive itself made (a name with "..", an absolute one or
    /// one below a symlink is refused); owners, modes and times as archived. Returns the number of entries.</summary>
    public static int Extract(Stream input, string dir, string what)
    {
        using var gzip = new GZipStream(input, CompressionMode.Decompress, leaveOpen: true);
        using var tar = new TarReader(gzip);
        var dirs = new HashSet<string>(StringComparer.Ordinal) { "" };
        var files = new HashSet<string>(StringComparer.Ordinal);
        var times = new List<(string Path, DateTimeOffset Time)>();
        int count = 0;
        TarEntry? entry;
        while ((entry = tar.GetNextEntry()) is not null)
        {
            string name = Normalize(entry.Name, what);
            if (entry is PaxTarEntry pax && pax.ExtendedAttributes.Keys.Any(k => k.StartsWith("GNU.sparse", StringComparison.Ordinal)))
                throw new CrispException($"{what}: {entry.Name} is a sparse file: crisp does not restore sparse tar entries yet");
            string path = name.Length == 0 ? dir : dir + "/" + name;
            if (name.Length > 0)
            {
                string parent = name.Contains('/') ? name[..name.LastIndexOf('/')] : "";
                if (!dirs.Contains(parent))
                    throw new CrispException($"{what}: {entry.Name} is not below a directory of the archive");
            }
            uint mode = (uint)entry.Mode & 0xfff;
            switch (entry.EntryType)
            {
                case TarEntryType.Directory:
                    if (name.Length > 0)
                        PathCalls.Mkdir(path, 0700);
                    dirs.Add(name);
                    break;
                case TarEntryType.RegularFile or TarEntryType.V7RegularFile or TarEntryType.ContiguousFile:
                    using (var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write))
                        entry.DataStream?.CopyTo(file);
                    files.Add(name);
                    break;
                case TarEntryType.HardLink:
                    string target = Normalize(entry.LinkName, what);
                    if (!files.Contains(target))
                        throw new CrispException($"{what}: {entry.Name} links to {entry.LinkName}, not a file of the archive before it");
                    PathCalls.Link(dir + "/" + target, path);
                    count++;
                    continue;
                case TarEntryType.SymbolicLink:
                    PathCalls.Symlink(entry.LinkName, path);
                    break;
                case TarEntryType.CharacterDevice or TarEntryType.BlockDevice:
                    var dev = (PosixTarEntry)entry;
                    // The kernel's 32-bit encoding mknod takes (new_encode_dev).
                    uint major = (uint)dev.DeviceMajor, minor = (uint)dev.DeviceMinor;
                    ulong rdev = (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xffu) << 12);
                    PathCalls.Mknod(path, (entry.EntryType == TarEntryType.CharacterDevice ? 0x2000u : 0x6000u) | mode, rdev);
                    break;
                case TarEntryType.Fifo:
                    PathCalls.Mknod(path, 0x1000u | mode, 0);
                    break;
                default:
                    throw new CrispException($"{what}: {entry.Name} is a tar entry of type {entry.EntryType}, which crisp does not restore");
            }
            PathCalls.Chown(path, (uint)entry.Uid, (uint)entry.Gid);
            if (entry.EntryType != TarEntryType.SymbolicLink)
                PathCalls.Chmod(path, mode);
            times.Add((path, entry.ModificationTime));
            count++;
        }
        // Times last, deepest first: making an entry changes its directory's.
        foreach (var (path, time) in Enumerable.Reverse(times))
            PathCalls.SetMtime(path, time);
        return count;
    }

    private static string Normalize(string name, string what)
    {
        var parts = name.Split('/', StringSplitOptions.RemoveEmptyEntries).Where(p => p != ".").ToList();
        if (name.StartsWith('/') || parts.Contains(".."))
            throw new CrispException($"{what}: entry '{name}' points outside the archive");
        return string.Join('/', parts);
    }
}
