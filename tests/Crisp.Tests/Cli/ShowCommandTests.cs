using System.Buffers.Binary;
using Crisp.Images;
using Crisp.Images.Show;
using Crisp.Tests.Images;
using Crisp.Tests.Support;

namespace Crisp.Tests.Cli;

/// <summary>`crisp show` through the real CLI: crit's JSON for a file, a summary for a directory,
/// and one clear line (no stack trace) for every kind of bad input.</summary>
public class ShowCommandTests
{
    private static void AssertOneLineError(CrispCli.Result r, string mustContain, string? alsoContains = null)
    {
        Assert.Equal(1, r.ExitCode);
        Assert.Equal("", r.Stdout);
        string[] lines = r.Stderr.TrimEnd('\n').Split('\n');
        Assert.True(lines.Length == 1, $"expected one stderr line, got:\n{r.Stderr}");
        Assert.StartsWith("crisp: error: ", lines[0]);
        Assert.Contains(mustContain, lines[0]);
        if (alsoContains is not null)
            Assert.Contains(alsoContains, lines[0]);
        Assert.DoesNotContain("   at ", r.Stderr);
        Assert.DoesNotContain("internal error", r.Stderr);
    }

    private static byte[] CoreBytes()
    {
        using var tmp = new TempImageDir();
        SampleImages.Write(tmp.Dir, SampleImages.Core());
        return File.ReadAllBytes(tmp.Dir.PathOf(ImageFile.Core(SampleImages.Pid)));
    }

    [Fact]
    public void MissingFile()
    {
        using var tmp = new TempImageDir();
        string path = tmp.File("core-1.img");
        AssertOneLineError(CrispCli.Run("show", path), path, "no such file");
    }

    [Fact]
    public void EmptyFile()
    {
        using var tmp = new TempImageDir();
        string path = tmp.File("core-1.img");
        File.WriteAllBytes(path, []);
        AssertOneLineError(CrispCli.Run("show", path), path, "empty");
    }

    [Fact]
    public void TruncatedEntryNamesFileAndOffset()
    {
        using var tmp = new TempImageDir();
        string path = tmp.File("core-1.img");
        byte[] core = CoreBytes();
        File.WriteAllBytes(path, core[..(core.Length / 2)]);
        AssertOneLineError(CrispCli.Run("show", path), path, "at offset 8: entry length");
    }

    [Fact]
    public void TruncatedMagic()
    {
        using var tmp = new TempImageDir();
        string path = tmp.File("core-1.img");
        File.WriteAllBytes(path, CoreBytes()[..6]);
        AssertOneLineError(CrispCli.Run("show", path), path, "magic");
    }

    [Fact]
    public void ForeignFileUnderItsOwnName()
    {
        AssertOneLineError(CrispCli.Run("show", "/etc/passwd"), "/etc/passwd", "not a known image file name");
    }

    [Fact]
    public void ForeignContentUnderAnImageName()
    {
        using var tmp = new TempImageDir();
        string path = tmp.File("core-1.img");
        File.Copy("/etc/passwd", path);
        AssertOneLineError(CrispCli.Run("show", path), path, "wrong magic");
    }

    [Fact]
    public void RandomBytes()
    {
        using var tmp = new TempImageDir();
        string path = tmp.File("pstree.img");
        var bytes = new byte[4096];
        new Random(7).NextBytes(bytes);
        File.WriteAllBytes(path, bytes);
        AssertOneLineError(CrispCli.Run("show", path), path, "magic");
    }

    [Fact]
    public void WrongMagicWord()
    {
        using var tmp = new TempImageDir();
        string path = tmp.File("core-1.img");
        byte[] core = CoreBytes();
        BinaryPrimitives.WriteUInt32LittleEndian(core.AsSpan(4), 0xdeadbeef);
        File.WriteAllBytes(path, core);
        AssertOneLineError(CrispCli.Run("show", path), path, "at offset 4: wrong magic 0xdeadbeef");
    }

    [Fact]
    public void MagicOfAnotherKindThanTheName()
    {
        using var tmp = new TempImageDir();
        SampleImages.Write(tmp.Dir, SampleImages.Pstree());
        string path = tmp.File("core-1.img");
        File.Move(tmp.Dir.PathOf(ImageFile.Pstree), path);
        AssertOneLineError(CrispCli.Run("show", path), path, "(PSTREE), expected");
    }

    [Fact]
    public void UnknownFileName()
    {
        using var tmp = new TempImageDir();
        string path = tmp.File("notes.txt");
        File.WriteAllText(path, "hello\n");
        AssertOneLineError(CrispCli.Run("show", path), path, "not a known image file name");
    }

    [Fact]
    public void RawPagesImage()
    {
        using var tmp = new TempImageDir();
        string path = tmp.File("pages-1.img");
        File.WriteAllBytes(path, new byte[4096]);
        AssertOneLineError(CrispCli.Run("show", path), path, "raw image");
    }

    [Fact]
    public void DirectoryWithoutInventory()
    {
        using var tmp = new TempImageDir();
        AssertOneLineError(CrispCli.Run("show", tmp.Path), tmp.Path, "not a checkpoint directory (no inventory.img)");
    }

    [Fact]
    public void DirectoryWithCorruptImageNamesThatImage()
    {
        using var tmp = new TempImageDir();
        foreach (var s in SampleImages.All())
            SampleImages.Write(tmp.Dir, s);
        string mm = tmp.Dir.PathOf(ImageFile.Mm(SampleImages.Pid));
        byte[] b = File.ReadAllBytes(mm);
        File.WriteAllBytes(mm, b[..(b.Length - 10)]);
        AssertOneLineError(CrispCli.Run("show", tmp.Path), mm, "at offset 8");
    }

    [Fact]
    public void NoOperandIsUsageError()
    {
        var r = CrispCli.Run("show");
        Assert.Equal(1, r.ExitCode);
        Assert.Single(r.Stderr.TrimEnd('\n').Split('\n'));
    }

    [Fact]
    public void ShowFileEqualsCritForSampleImages()
    {
        using var tmp = new TempImageDir();
        foreach (var s in new[] { SampleImages.Core(), SampleImages.Mm(), SampleImages.PipesData(), SampleImages.Inventory(), SampleImages.Files() })
        {
            SampleImages.Write(tmp.Dir, s);
            string path = tmp.Dir.PathOf(s.File);
            var r = CrispCli.Run("show", path, "--show-secrets");   // crit prints payloads (pipes-data) as they are
            Assert.True(r.ExitCode == 0, r.Stderr);
            Crit317.AssertShowEqual(path, r.Stdout);
        }
    }

    [Fact]
    public void ShowDirSummarisesSampleCheckpoint()
    {
        using var tmp = new TempImageDir();
        foreach (var s in SampleImages.All())
            SampleImages.Write(tmp.Dir, s);
        using (var w = tmp.Dir.CreatePagemap(SampleImages.Pid, 5))
        {
            w.AddPages(0x400000, new byte[2 * 4096]);
            w.AddPages(0x7ffd5a1a4000, new byte[4096]);
        }
        using (var w = tmp.Dir.CreatePagemap(ImageFile.ShmemPagemap(7), 6))
            w.AddPages(0, new byte[3 * 4096]);

        var r = CrispCli.Run("show", tmp.Path);
        Assert.True(r.ExitCode == 0, r.Stderr);
        string o = r.Stdout;
        Assert.Equal(CheckpointSummary.Render(tmp.Path), o);
        Assert.Contains("tasks: 2", o);
        Assert.Contains($"pid {SampleImages.Pid} ppid 0 pgid {SampleImages.Pid} sid 1000 comm \"sleepy\\\"wl\u00e9\" state alive threads 2 seccomp filter (chain 1)", o);
        Assert.Contains("memory: 4 vmas", o);
        Assert.Contains("3 pages stored (12 KiB) in 2 runs, pages-5.img", o);
        Assert.Contains("files: 3 fds (fdinfo-2.img)", o);
        Assert.Contains("fd 3: PIPE pipe:[123456]", o);
        Assert.Contains("fd 4: REG /tmp/data file.log", o);
        Assert.Contains("pagemap-shmem-7.img: 3 pages stored (12 KiB), pages-6.img", o);
        long total = Directory.EnumerateFiles(tmp.Path).Sum(f => new FileInfo(f).Length);
        Assert.Contains($"images: {Directory.EnumerateFiles(tmp.Path).Count()} files", o);
        Assert.True(total > 0);
    }
}
