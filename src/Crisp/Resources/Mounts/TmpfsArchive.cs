using System.Formats.Tar;
using System.IO.Compression;

namespace Crisp.Resources.Mounts;

/// <summary>A tmpfs's files as CRIU keeps them: tmpfs-dev-DEV.tar.gz.img, a gzip'd tar of the mount's root
/// ("./…", numeric owners, modes, modification times, device numbers, symlinks, hard links), written and read
/// with .NET's tar and gzip. As `tar --one-file-system` (what CRIU runs), what lies on other mounts is left out;
/// their mount points are made again at restore. Sockets are left out (tar skips them too); a file with holes is
/// a GNU PAX sparse 1.0 entry (<see cref="SparseTarFile"/>); GNU tar's old 'S' entries, which CRIU's `tar --sparse`
/// writes, are read too (<see cref="OldGnuSparseStream"/>). Extended attributes go as GNU tar's --xattrs writes them (PAX "SCHILY.xattr.NAME" records); a value
/// that is not text cannot be a .NET PAX record and is refused at dump by name.</summary>
public static class TmpfsArchive
{
    /// <summary>CRIU's name: tmpfs-dev-%u.tar.gz.img with the superblock's kernel device number (root_dev).</summary>
    public static string FileName(uint rootDev) => $"tmpfs-dev-{rootDev}.tar.gz.img";

    private const string XattrPrefix = "SCHILY.xattr.";

    /// <summary>A path's extended attributes as PAX records.</summary>
    private static Dictionary<string, string> Xattrs(string path, string name)
    {
        var attrs = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (xname, value) in PathCalls.ListXattrs(path))
        {
            try { attrs[XattrPrefix + xname] = Strict.GetString(value); }
            catch (System.Text.DecoderFallbackException) { throw new CrispException($"tmpfs file {name}: extended attribute {xname} holds binary data, which crisp's tar cannot keep"); }
        }
        return attrs;
    }
    private static readonly System.Text.UTF8Encoding Strict = new(false, throwOnInvalidBytes: true);

    /// <summary>Archives the tree under <paramref name="dir"/> (a path crisp can reach: /proc/PID/root/…).
    /// Returns the number of entries.</summary>
    public static int Write(string dir, Stream output)
    {
        var top = PathCalls.Lstat(dir);
        int count = 0;
        var links = new Dictionary<(ulong, ulong), string>();
        using var gzip = new GZipStream(output, CompressionLevel.Fastest, leaveOpen: true);
        using var tar = new TarWriter(gzip, TarEntryFormat.Pax, leaveOpen: true);
        // mountPoint: a place another mount covers; as tar --one-file-system, its entry is kept (CRIU's restore
        // needs the mount point to exist in the tmpfs) but nothing of what is mounted there.
        void Add(string path, string name, NodeStat st, bool mountPoint = false)
        {
            PaxTarEntry entry;
            var attrs = mountPoint ? new Dictionary<string, string>() : Xattrs(path, name);
            switch (st.Type)
            {
                case 0x4000:
                    entry = new PaxTarEntry(TarEntryType.Directory, name + "/", attrs);
                    break;
                case 0x8000 when !mountPoint && st.Nlink > 1 && links.TryGetValue((st.Dev, st.Ino), out var first):
                    entry = new PaxTarEntry(TarEntryType.HardLink, name, attrs) { LinkName = first };
                    break;
                case 0x8000:
                    entry = new PaxTarEntry(TarEntryType.RegularFile, name, attrs);
                    if (st.Nlink > 1 && !mountPoint)
                        links[(st.Dev, st.Ino)] = name;
                    break;
                case 0xa000:
                    entry = new PaxTarEntry(TarEntryType.SymbolicLink, name, attrs) { LinkName = PathCalls.ReadLink(path) };
                    break;
                case 0x2000 or 0x6000:
                    entry = new PaxTarEntry(st.Type == 0x2000 ? TarEntryType.CharacterDevice : TarEntryType.BlockDevice, name, attrs)
                        { DeviceMajor = (int)st.RdevMajor, DeviceMinor = (int)st.RdevMinor };
                    break;
                case 0x1000:
                    entry = new PaxTarEntry(TarEntryType.Fifo, name, attrs);
                    break;
                default:
                    return;   // a socket: tar leaves it out too
            }
            entry.Mode = (UnixFileMode)st.Permissions;
            entry.Uid = (int)st.Uid;
            entry.Gid = (int)st.Gid;
            entry.ModificationTime = DateTimeOffset.FromUnixTimeSeconds(st.MtimeSec).AddTicks(st.MtimeNsec / 100);
            if (entry.EntryType == TarEntryType.RegularFile && !mountPoint)
            {
                using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
                if (SparseTarFile.Segments(handle, st.Size) is { } segments)
                {
                    // Holes stay holes: GNU tar's PAX sparse 1.0 entry instead of the zeros.
                    var (entryName, records) = SparseTarFile.Header(name, st.Size, attrs);
                    var sparse = new PaxTarEntry(TarEntryType.RegularFile, entryName, records)
                        { Mode = entry.Mode, Uid = entry.Uid, Gid = entry.Gid, ModificationTime = entry.ModificationTime };
                    using var map = SparseTarFile.Data(handle, st.Size, segments);
                    sparse.DataStream = map;
                    tar.WriteEntry(sparse);
                }
                else
                {
                    using var data = new FileStream(handle, FileAccess.Read, 1);
                    entry.DataStream = data;
                    tar.WriteEntry(entry);
                }
            }
            else
                tar.WriteEntry(entry);
            count++;
            if (st.Type == 0x4000 && !mountPoint)
                foreach (var child in Directory.EnumerateFileSystemEntries(path).Order(StringComparer.Ordinal))
                {
                    if (PathCalls.TryLstat(child) is { } c)   // --one-file-system: another mount's files are not this one's
                        Add(child, name + "/" + Path.GetFileName(child), c, mountPoint: c.Dev != top.Dev);
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
        using var oldSparse = new OldGnuSparseStream(gzip, what);
        using var tar = new TarReader(oldSparse);
        var dirs = new HashSet<string>(StringComparer.Ordinal) { "" };
        var files = new HashSet<string>(StringComparer.Ordinal);
        var times = new List<(string Path, DateTimeOffset Time)>();
        int count = 0;
        TarEntry? entry;
        while ((entry = tar.GetNextEntry()) is not null)
        {
            string name = Normalize(entry.Name, what);
            long sparseSize = -1;
            var segments = oldSparse.Sparse?.Segments;
            if (oldSparse.Sparse is { } gnu)
            {
                if (gnu.Segments.Sum(g => g.Length) != entry.Length)
                    throw new CrispException($"{what}: {entry.Name}: its sparse map holds {gnu.Segments.Sum(g => g.Length)} bytes of data, the entry {entry.Length}");
                sparseSize = gnu.RealSize;
            }
            else if (entry is PaxTarEntry pax && pax.ExtendedAttributes.Keys.Any(k => k.StartsWith("GNU.sparse", StringComparison.Ordinal)))
            {
                var x = pax.ExtendedAttributes;
                if (x.GetValueOrDefault(SparseTarFile.Major) != "1" || x.GetValueOrDefault(SparseTarFile.Minor) != "0" || !x.TryGetValue(SparseTarFile.RealName, out var real)
                    || !long.TryParse(x.GetValueOrDefault(SparseTarFile.RealSize), out sparseSize) || sparseSize < 0)
                    throw new CrispException($"{what}: {entry.Name} is a sparse file in a format other than GNU's PAX 1.0: crisp does not restore it");
                name = Normalize(real, what);
            }
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
                case TarEntryType.RegularFile or TarEntryType.V7RegularFile or TarEntryType.ContiguousFile when sparseSize >= 0:
                    if (segments is not null)
                        SparseTarFile.Write(entry.DataStream ?? Stream.Null, path, sparseSize, segments, what);
                    else
                        SparseTarFile.Extract(entry.DataStream ?? Stream.Null, path, sparseSize, what);
                    files.Add(name);
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
            if (entry is PaxTarEntry { ExtendedAttributes: var attrs })
                foreach (var (key, value) in attrs)
                    if (key.StartsWith(XattrPrefix, StringComparison.Ordinal) && entry.EntryType != TarEntryType.SymbolicLink)
                        PathCalls.SetXattr(path, key[XattrPrefix.Length..], System.Text.Encoding.UTF8.GetBytes(value));
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
