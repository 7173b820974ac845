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

    /// <summary>A file with holes (one at the start, data in the middle, a hole to the end) comes back with the same
    /// bytes and its holes (blocks allocated only for the data), GNU tar reads crisp's archive back the same; extended
    /// attributes (user and trusted) come back, and a binary one is refused at dump in one line.</summary>
    [RootFact]
    public void HolesAndExtendedAttributesComeBackAndGnuTarReadsThem()
    {
        using var dir = new Live.TempDir();
        string from = Path.Combine(dir.Path, "from"), to = Path.Combine(dir.Path, "to"), gnu = Path.Combine(dir.Path, "gnu");
        foreach (var d in new[] { from, to, gnu })
            Directory.CreateDirectory(d);
        string sparse = Path.Combine(from, "sparse");
        using (var f = File.OpenHandle(sparse, FileMode.CreateNew, FileAccess.Write))
        {
            RandomAccess.Write(f, Enumerable.Repeat((byte)7, 8192).ToArray(), 1 << 20);
            RandomAccess.SetLength(f, 4 << 20);
        }
        File.WriteAllText(Path.Combine(from, "plain"), "plain\n");
        SetXattr(Path.Combine(from, "plain"), "user.crisp", "kept");
        SetXattr(sparse, "trusted.crisp", "too");

        using var archive = new MemoryStream();
        Assert.Equal(3, TmpfsArchive.Write(from, archive));
        File.WriteAllBytes(Path.Combine(dir.Path, "a.tar.gz"), archive.ToArray());
        archive.Position = 0;
        Assert.Equal(3, TmpfsArchive.Extract(archive, to, "test archive"));
        var gnuTar = Live.RunProcess("/usr/bin/tar", TimeSpan.FromSeconds(30), null, "-xzf", Path.Combine(dir.Path, "a.tar.gz"), "-C", gnu);
        Assert.True(gnuTar.ExitCode == 0, gnuTar.Stderr);

        byte[] want = File.ReadAllBytes(sparse);
        foreach (var d in new[] { to, gnu })
        {
            Assert.Equal(want, File.ReadAllBytes(Path.Combine(d, "sparse")));
            Assert.Equal("plain\n", File.ReadAllText(Path.Combine(d, "plain")));
        }
        Assert.True(Blocks(Path.Combine(to, "sparse")) * 512 <= 64 << 10, $"{Blocks(Path.Combine(to, "sparse"))} blocks for 8 KiB of data");
        Assert.Equal("kept", GetXattr(Path.Combine(to, "plain"), "user.crisp"));
        Assert.Equal("too", GetXattr(Path.Combine(to, "sparse"), "trusted.crisp"));

        var r = Live.RunProcess("/usr/bin/python3", TimeSpan.FromSeconds(30), null, "-c", $"import os; os.setxattr('{Path.Combine(from, "plain")}', 'user.bin', bytes([0xff, 0xfe]))");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var e = Assert.Throws<CrispException>(() => TmpfsArchive.Write(from, new MemoryStream()));
        Assert.Contains("extended attribute user.bin holds binary data", e.Message);
    }

    /// <summary>GNU tar's old sparse entries ('S'), what CRIU's `tar --sparse` writes: on a tmpfs, "many" has a hole
    /// at its start, six data regions (more than the header's four pairs: an extension block follows the header)
    /// with holes between them, and a hole to its end; "few" has two regions and ends in data (no extension block);
    /// a plain file and a directory come after them, so the stream must stay in step. Read through crisp's reader
    /// into another tmpfs, every file has the same bytes and the same data/hole layout (SEEK_DATA/SEEK_HOLE). A map
    /// whose segments lie past the entry's real size is refused.</summary>
    [RootFact]
    public void GnuTarsOldSparseEntriesComeBackWithTheirHoles()
    {
        using var dir = new Live.TempDir();
        string mnt = Path.Combine(dir.Path, "mnt");
        Directory.CreateDirectory(mnt);
        var m = Live.RunProcess("/usr/bin/mount", TimeSpan.FromSeconds(30), null, "-t", "tmpfs", "-o", "size=64m", "crisp-sparse", mnt);
        Assert.True(m.ExitCode == 0, m.Stderr);
        try
        {
            string from = Path.Combine(mnt, "from"), to = Path.Combine(mnt, "to"), tgz = Path.Combine(dir.Path, "gnu.tar.gz");
            Directory.CreateDirectory(Path.Combine(from, "sub"));
            Directory.CreateDirectory(to);
            using (var f = File.OpenHandle(Path.Combine(from, "many"), FileMode.CreateNew, FileAccess.Write))
            {
                for (int i = 0; i < 6; i++)
                    RandomAccess.Write(f, Enumerable.Range(0, 5000 + i * 4096).Select(b => (byte)(b * 7 + i)).ToArray(), (1 + 2L * i) << 20);
                RandomAccess.SetLength(f, 16 << 20);
            }
            using (var f = File.OpenHandle(Path.Combine(from, "few"), FileMode.CreateNew, FileAccess.Write))
            {
                RandomAccess.Write(f, Enumerable.Repeat((byte)1, 4096).ToArray(), 0);
                RandomAccess.Write(f, Enumerable.Repeat((byte)2, 100).ToArray(), 3 << 20);
            }
            File.WriteAllText(Path.Combine(from, "sub", "plain"), "after the sparse ones\n");
            var tar = Live.RunProcess("/usr/bin/tar", TimeSpan.FromSeconds(60), null, "--sparse", "--format=gnu", "--numeric-owner", "-czf", tgz, "-C", from, ".");
            Assert.True(tar.ExitCode == 0, tar.Stderr);
            // The archive has what this test is about: 'S' headers (type at 156), one with isextended (482) set.
            var raw = new MemoryStream();
            using (var gz = new GZipStream(File.OpenRead(tgz), CompressionMode.Decompress))
                gz.CopyTo(raw);
            var headers = raw.ToArray().Chunk(512).Where(b => b.Length == 512 && b[156] == 'S' && b.AsSpan(257, 8).SequenceEqual("ustar  \0"u8)).ToList();
            Assert.Equal(2, headers.Count);
            Assert.Single(headers, b => b[482] == 1);

            using (var input = File.OpenRead(tgz))
                Assert.Equal(5, TmpfsArchive.Extract(input, to, "gnu archive"));

            foreach (var name in new[] { "many", "few", "sub/plain" })
            {
                Assert.Equal(File.ReadAllBytes(Path.Combine(from, name)), File.ReadAllBytes(Path.Combine(to, name)));
                Assert.Equal(Layout(Path.Combine(from, name)), Layout(Path.Combine(to, name)));
            }
            Assert.Equal("data 1048576-1056768 hole 1056768-3145728", string.Join(' ', Layout(Path.Combine(from, "many")).Split(' ').Skip(2).Take(4)));
            Assert.Equal(7, Layout(Path.Combine(to, "many")).Split(' ').Count(w => w == "hole"));   // start, five between, end
            Assert.EndsWith("data 3145728-3145828", Layout(Path.Combine(to, "few")));

            // A map that does not fit its file (real size cut to 1 MiB, the header's checksum made again) is refused.
            byte[] bad = raw.ToArray();
            int at = Enumerable.Range(0, bad.Length / 512).Select(i => i * 512).First(o => bad[o + 156] == 'S' && bad[o + 482] == 1);
            "00004000000\0"u8.CopyTo(bad.AsSpan(at + 483));
            "        "u8.CopyTo(bad.AsSpan(at + 148));
            System.Text.Encoding.ASCII.GetBytes(Convert.ToString(bad.AsSpan(at, 512).ToArray().Sum(b => (long)b), 8).PadLeft(6, '0') + "\0 ").CopyTo(bad, at + 148);
            var badGz = new MemoryStream();
            using (var gz = new GZipStream(badGz, CompressionLevel.Fastest, leaveOpen: true))
                gz.Write(bad);
            badGz.Position = 0;
            string to2 = Path.Combine(mnt, "to2");
            Directory.CreateDirectory(to2);
            var e = Assert.Throws<CrispException>(() => TmpfsArchive.Extract(badGz, to2, "gnu archive"));
            Assert.Contains("lies outside the file's 1048576 bytes", e.Message);
        }
        finally
        {
            Live.RunProcess("/usr/bin/umount", TimeSpan.FromSeconds(30), null, mnt);
        }
    }

    /// <summary>"data A-B hole B-C …" from SEEK_DATA/SEEK_HOLE, to the file's size.</summary>
    private static string Layout(string path)
    {
        var r = Live.RunProcess("/usr/bin/python3", TimeSpan.FromSeconds(30), null, "-c",
            "import os,sys\nfd=os.open(sys.argv[1],os.O_RDONLY); size=os.fstat(fd).st_size; at=0; out=[]\n" +
            "while at<size:\n try: d=os.lseek(fd,at,os.SEEK_DATA)\n except OSError: d=size\n" +
            " if d>at: out.append(f'hole {at}-{d}')\n if d>=size: break\n h=os.lseek(fd,d,os.SEEK_HOLE); out.append(f'data {d}-{h}'); at=h\n" +
            "print(' '.join(out))", path);
        Assert.True(r.ExitCode == 0, r.Stderr);
        return r.Stdout.Trim();
    }

    private static void SetXattr(string path, string name, string value)
    {
        var r = Live.RunProcess("/usr/bin/python3", TimeSpan.FromSeconds(30), null, "-c", $"import os; os.setxattr('{path}', '{name}', b'{value}')");
        Assert.True(r.ExitCode == 0, r.Stderr);
    }

    private static string GetXattr(string path, string name) =>
        Live.RunProcess("/usr/bin/python3", TimeSpan.FromSeconds(30), null, "-c", $"import os,sys; sys.stdout.write(os.getxattr('{path}', '{name}').decode())").Stdout;

    private static long Blocks(string path) =>
        long.Parse(Live.RunProcess("/usr/bin/stat", TimeSpan.FromSeconds(30), null, "-c", "%b", path).Stdout.Trim());

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
