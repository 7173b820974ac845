using Crisp.Images;

namespace Crisp.Tests.Images;

/// <summary>PagemapWriter merges adjacent runs and writes the data in order; PagemapReader finds it again; crit agrees.</summary>
public class PagemapImageTests
{
    private const int P = 4096;
    private const long Pid = 77;

    private static byte[] Pattern(int pages, byte seed)
    {
        var b = new byte[pages * P];
        for (int i = 0; i < b.Length; i++)
            b[i] = (byte)(seed + i * 7 + (i >> 12));
        return b;
    }

    /// <summary>Three adjacent page runs (merged into one), a gap, a lazy run, a parent run, then two more pages.</summary>
    private static (TempImageDir Tmp, byte[] A, byte[] B, byte[] C, byte[] D) WriteSample()
    {
        var tmp = new TempImageDir();
        byte[] a = Pattern(1, 1), b = Pattern(2, 2), c = Pattern(1, 3), d = Pattern(2, 4);
        using (var w = tmp.Dir.CreatePagemap(Pid, 9))
        {
            w.AddPages(0x10000, a);
            w.AddPages(0x11000, b);
            w.AddPages(0x13000, c);
            w.AddRun(0x20000, 3, PagemapFlags.Lazy);
            w.AddRun(0x23000, 1, PagemapFlags.Parent);
            w.AddPages(0x24000, d);
            Assert.Equal(6, w.PagesWritten);
        }
        return (tmp, a, b, c, d);
    }

    [Fact]
    public void AdjacentRunsOfTheSameKindMerge()
    {
        var (tmp, _, _, _, _) = WriteSample();
        using var _tmp = tmp;
        using var r = tmp.Dir.OpenPagemap(Pid);
        Assert.Equal(9u, r.PagesId);
        Assert.Equal(
        [
            new PagemapReader.Run(0x10000, 4, PagemapFlags.Present, 0),
            new PagemapReader.Run(0x20000, 3, PagemapFlags.Lazy, -1),
            new PagemapReader.Run(0x23000, 1, PagemapFlags.Parent, -1),
            new PagemapReader.Run(0x24000, 2, PagemapFlags.Present, 4 * P),
        ], r.Runs);
        Assert.Equal(6, r.PresentPages);
        Assert.Equal(6L * P, new FileInfo(tmp.Dir.PathOf(ImageFile.Pages(9))).Length);
    }

    [Fact]
    public void TryFindAndFileOffset()
    {
        var (tmp, _, _, _, _) = WriteSample();
        using var _tmp = tmp;
        using var r = tmp.Dir.OpenPagemap(Pid);
        Assert.True(r.TryFind(0x10000, out var run));
        Assert.Equal(0x10000UL, run.Vaddr);
        Assert.True(r.TryFind(0x13fff, out run));
        Assert.Equal(4u, run.NrPages);
        Assert.False(r.TryFind(0x14000, out _));
        Assert.False(r.TryFind(0xffff, out _));
        Assert.True(r.TryFind(0x21000, out run));
        Assert.False(run.IsPresent);
        Assert.Equal(-1, r.FileOffsetOf(0x21000));
        Assert.Equal(2 * P + 5, r.FileOffsetOf(0x12005));
        Assert.Equal(4 * P + 0x10, r.FileOffsetOf(0x24010));
        Assert.False(r.TryFind(0x26000, out _));
    }

    [Fact]
    public void ResolveClipsToTheRange()
    {
        var (tmp, _, _, _, _) = WriteSample();
        using var _tmp = tmp;
        using var r = tmp.Dir.OpenPagemap(Pid);
        Assert.Equal(
        [
            (0x12000UL, (ulong)(2 * P), (long)(2 * P), 0),
            (0x24000UL, (ulong)P, (long)(4 * P), 0),
        ], r.Resolve(0x12000, 0x25000).ToList());
        Assert.Empty(r.Resolve(0x20000, 0x24000));
    }

    [Fact]
    public void ReadPagesReturnsTheDataWritten()
    {
        var (tmp, a, b, c, d) = WriteSample();
        using var _tmp = tmp;
        using var r = tmp.Dir.OpenPagemap(Pid);
        byte[] all = [.. a, .. b, .. c];
        var buf = new byte[4 * P];
        r.ReadPages(0x10000, buf);
        Assert.Equal(all, buf);
        var mid = new byte[100];
        r.ReadPages(0x11000 + 50, mid);
        Assert.Equal(b.AsSpan(50, 100).ToArray(), mid);
        var last = new byte[2 * P];
        r.ReadPages(0x24000, last);
        Assert.Equal(d, last);
        Assert.Throws<ArgumentOutOfRangeException>(() => r.ReadPages(0x20000, new byte[P]));
        Assert.Throws<ArgumentOutOfRangeException>(() => r.ReadPages(0x13000, new byte[2 * P]));
    }

    /// <summary>A dump's reader hashes each batch ahead of the writer (issue 18): the hash the manifest takes from the
    /// writing is the pages file's own, and a write that is not what was hashed ahead is refused, never recorded.</summary>
    [Fact]
    public void BatchesHashedAheadOnAnotherThreadGiveTheFilesOwnHash()
    {
        using var tmp = new TempImageDir();
        byte[][] batches = [Pattern(3, 5), Pattern(1, 6), Pattern(4, 7)];
        using (var w = tmp.Dir.CreatePagemap(Pid, 4))
        {
            // All hashed first on another thread, written after: the order a pipe four batches deep can give.
            var reader = new Thread(() => { foreach (var b in batches) w.HashAhead(b); });
            reader.Start();
            reader.Join();
            ulong at = 0x40000;
            foreach (var b in batches)
            {
                w.AddBatch([new Crisp.Linux.RemoteRange(at, (ulong)b.Length)], b, hashedAhead: true);
                at += (ulong)b.Length + P;
            }
        }
        string pages = tmp.Dir.PathOf(ImageFile.Pages(4));
        var written = tmp.Dir.Written.Of(pages);
        Assert.NotNull(written);
        Assert.Equal(tmp.Dir.ManifestHash.OfFile(pages), written);

        using var tmp2 = new TempImageDir();
        var w2 = tmp2.Dir.CreatePagemap(Pid, 5);
        w2.HashAhead(Pattern(2, 1));
        var e = Assert.Throws<InvalidOperationException>(() => w2.AddBatch([new Crisp.Linux.RemoteRange(0x40000, P)], Pattern(1, 1), hashedAhead: true));
        Assert.Contains("hashed ahead", e.Message);
        try { w2.Dispose(); } catch (InvalidOperationException) { }
        Assert.Null(tmp2.Dir.Written.Of(tmp2.Dir.PathOf(ImageFile.Pages(5))));
    }

    [Fact]
    public void CritDecodesTheSameRuns()
    {
        var (tmp, _, _, _, _) = WriteSample();
        using var _tmp = tmp;
        string path = tmp.Dir.PathOf(ImageFile.Pagemap(Pid));
        var json = Crit.Decode(path);
        Assert.Equal("PAGEMAP", json.GetProperty("magic").GetString());
        var entries = json.GetProperty("entries").EnumerateArray().ToList();
        Assert.Equal(9u, entries[0].GetProperty("pages_id").GetUInt32());
        using var r = tmp.Dir.OpenPagemap(Pid);
        var fromCrit = entries.Skip(1).Select(e => (e.GetProperty("vaddr").GetUInt64(), e.GetProperty("nr_pages").GetUInt32(), e.GetProperty("flags").GetUInt32())).ToList();
        Assert.Equal(r.Runs.Select(x => (x.Vaddr, x.NrPages, (uint)x.Flags)).ToList(), fromCrit);
        Crit317.AssertShowEqual(path, Crisp.Images.Show.ImageJson.Render(path));
    }

    [Fact]
    public void ShortPagesFileIsAFormatError()
    {
        var (tmp, _, _, _, _) = WriteSample();
        using var _tmp = tmp;
        string pages = tmp.Dir.PathOf(ImageFile.Pages(9));
        using (var f = new FileStream(pages, FileMode.Open))
            f.SetLength(3 * P);
        var e = Assert.Throws<ImageFormatException>(() => tmp.Dir.OpenPagemap(Pid));
        Assert.Contains(pages, e.Message);
    }
}
