using System.Formats.Tar;
using System.IO.Compression;
using Crisp.Resources.Mounts;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;

namespace Crisp.Tests.Resources.Mounts;

/// <summary>The tmpfs archive on its own: what is written comes back (owners, modes, times, device numbers,
/// symlinks, hard links, fifos), and an archive whose names leave its root — by "..", an absolute name or a
/// path below a symlink — is refused before anything is made outside it.</summary>
public class TmpfsArchiveTests
{
    [RootFact]
    public void FilesComeBackAsTheyWere()
    {
        using var dir = new Live.TempDir();
        string from = Path.Combine(dir.Path, "from"), to = Path.Combine(dir.Path, "to");
        Directory.CreateDirectory(Path.Combine(from, "sub"));
        Directory.CreateDirectory(to);
        File.WriteAllText(Path.Combine(from, "sub", "file"), "contents\n");
        PathCalls.Chown(Path.Combine(from, "sub", "file"), 1234, 567);
        PathCalls.Chmod(Path.Combine(from, "sub", "file"), Oct("640"));
        PathCalls.Link(Path.Combine(from, "sub", "file"), Path.Combine(from, "hard"));
        PathCalls.Symlink("sub/file", Path.Combine(from, "link"));
        PathCalls.Mknod(Path.Combine(from, "null"), 0x2000 | Oct("666"), (3 & 0xff) | (1 << 8));
        PathCalls.Chmod(Path.Combine(from, "null"), Oct("666"));   // past the umask
        PathCalls.Mknod(Path.Combine(from, "fifo"), 0x1000 | Oct("600"), 0);
        PathCalls.SetMtime(Path.Combine(from, "sub", "file"), DateTimeOffset.FromUnixTimeSeconds(1_000_000_000));

        using var archive = new MemoryStream();
        Assert.Equal(7, TmpfsArchive.Write(from, archive));
        archive.Position = 0;
        Assert.Equal(7, TmpfsArchive.Extract(archive, to, "test archive"));

        var file = PathCalls.Lstat(Path.Combine(to, "sub", "file"));
        Assert.Equal((1234u, 567u, Oct("640"), 2UL), (file.Uid, file.Gid, file.Permissions, file.Nlink));
        Assert.Equal(1_000_000_000, file.MtimeSec);
        Assert.Equal("contents\n", File.ReadAllText(Path.Combine(to, "hard")));
        Assert.Equal(file.Ino, PathCalls.Lstat(Path.Combine(to, "hard")).Ino);
        Assert.Equal("sub/file", PathCalls.ReadLink(Path.Combine(to, "link")));
        var dev = PathCalls.Lstat(Path.Combine(to, "null"));
        Assert.Equal((0x2000u, 1u, 3u, Oct("666")), (dev.Type, dev.RdevMajor, dev.RdevMinor, dev.Permissions));
        Assert.Equal((0x1000u, Oct("600")), (PathCalls.Lstat(Path.Combine(to, "fifo")).Type, PathCalls.Lstat(Path.Combine(to, "fifo")).Permissions));
    }

    [RootFact]
    public void NamesThatLeaveTheRootAreRefused()
    {
        using var dir = new Live.TempDir();
        string outside = Path.Combine(dir.Path, "outside");
        foreach (var (entries, message) in new (PaxTarEntry[], string)[]
        {
            ([Dir("./"), Data("./../outside")], "points outside the archive"),
            ([Dir("./"), Data("/abs")], "points outside the archive"),
            ([Dir("./"), new PaxTarEntry(TarEntryType.SymbolicLink, "./up") { LinkName = dir.Path }, Data("./up/outside")], "is not below a directory of the archive"),
        })
        {
            string to = Path.Combine(dir.Path, "to-" + Guid.NewGuid().ToString("N"));
            Directory.CreateDirectory(to);
            var e = Assert.Throws<CrispException>(() => TmpfsArchive.Extract(Archive(entries), to, "bad archive"));
            Assert.Contains(message, e.Message);
            Assert.False(System.IO.File.Exists(outside));
        }
    }

    private static uint Oct(string digits) => Convert.ToUInt32(digits, 8);

    private static PaxTarEntry Dir(string name) => new(TarEntryType.Directory, name);

    private static PaxTarEntry Data(string name) => new(TarEntryType.RegularFile, name) { DataStream = new MemoryStream([1, 2, 3]) };

    private static MemoryStream Archive(PaxTarEntry[] entries)
    {
        var output = new MemoryStream();
        using (var gzip = new GZipStream(output, CompressionLevel.Fastest, leaveOpen: true))
        using (var tar = new TarWriter(gzip, TarEntryFormat.Pax))
            foreach (var e in entries)
                tar.WriteEntry(e);
        output.Position = 0;
        return output;
    }
}
