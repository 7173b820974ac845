using Crisp.Images;
using Crisp.Images.Proto;

namespace Crisp.Tests.Images;

public class ImageRoundTripTests
{
    [Fact]
    public void EverySampleKindReadsBackAsWritten()
    {
        using var tmp = new TempImageDir();
        foreach (var s in SampleImages.All())
        {
            SampleImages.Write(tmp.Dir, s);
            using var r = tmp.Dir.OpenReader(s.File);
            Assert.Equal(s.File.Kind, r.Kind);
            for (int i = 0; i < s.Entries.Count; i++)
            {
                var got = r.Read(s.File.Kind.Entry!);
                Assert.Equal(s.Entries[i], got);
                if (s.Extras is not null)
                    Assert.Equal(s.Extras[i], r.ReadExtra(((pipe_data_entry)got!).Bytes));
            }
            Assert.Null(r.Read(s.File.Kind.Entry!));
        }
    }

    [Fact]
    public void ReaderTakesKindFromFileName()
    {
        using var tmp = new TempImageDir();
        var s = SampleImages.Write(tmp.Dir, SampleImages.Core());
        using var r = ImageReader.Open(tmp.File($"core-{SampleImages.Pid}.img"));
        Assert.Equal(ImageKind.Core, r.Kind);
        var core = r.Read<core_entry>();
        Assert.Equal(s.Entries[0], core);
        Assert.Equal(seccomp_mode.Filter, core!.ThreadCore.SeccompMode);
    }

    [Fact]
    public void InventoryHasOnlyItsOwnMagicAndOthersStartWithImgCommon()
    {
        using var tmp = new TempImageDir();
        SampleImages.Write(tmp.Dir, SampleImages.Inventory());
        SampleImages.Write(tmp.Dir, SampleImages.Pstree());
        var inv = File.ReadAllBytes(tmp.File("inventory.img"));
        var ps = File.ReadAllBytes(tmp.File("pstree.img"));
        Assert.Equal(ImageMagic.Inventory, BitConverter.ToUInt32(inv, 0));
        Assert.Equal(ImageMagic.ImgCommon, BitConverter.ToUInt32(ps, 0));
        Assert.Equal(ImageMagic.Pstree, BitConverter.ToUInt32(ps, 4));
    }

    [Fact]
    public void FileNamesMapToKinds()
    {
        Assert.Equal(ImageFile.Core(7), ImageKind.FromFileName("core-7.img"));
        Assert.Equal(ImageFile.Pagemap(7), ImageKind.FromFileName("/x/pagemap-7.img"));
        Assert.Equal(ImageFile.Pages(1), ImageKind.FromFileName("pages-1.img"));
        Assert.Equal(ImageFile.PipesData, ImageKind.FromFileName("pipes-data.img"));
        Assert.Equal(ImageFile.PosixTimers(3), ImageKind.FromFileName("posix-timers-3.img"));
        Assert.Equal(ImageFile.TtyInfo, ImageKind.FromFileName("tty-info.img"));
        Assert.Equal(ImageFile.Inventory, ImageKind.FromFileName("inventory.img"));
        Assert.Null(ImageKind.FromFileName("core.img"));
        Assert.Null(ImageKind.FromFileName("stats-dump"));
        Assert.Equal("fdinfo-2.img", ImageFile.Fdinfo(2).FileName);
    }

    /// <summary>The hand-written split of PREFIX[-ID].img against the regex it replaced (lazy prefix, optional hex id).</summary>
    [Fact]
    public void FileNamesSplitAsTheCriuNamePatternDoes()
    {
        var pattern = new System.Text.RegularExpressions.Regex(@"^(?<p>[a-z][a-z-]*?)(-(?<id>[0-9a-f]{1,18}))?\.img$");
        string[] names =
        [
            "core-7.img", "pages-1.img", "inventory.img", "pipes-data.img", "posix-timers-3.img", "tty-info.img",
            "tcp-stream-1a2b.img", "ids-a.img", "fs-007.img", "route6-1.img", "foo-.img", "-1.img", "a.img", ".img",
            "core-7.IMG", "Core-7.img", "core-1234567890abcdef12.img", "core-1234567890abcdef123.img", "x--1.img",
            "stats-dump", "core-7.img.tmp", "netns-4026531992.img", "a-b-c-d.img", "a-b-c-0.img", "core-7x.img",
        ];
        foreach (string name in names)
        {
            var m = pattern.Match(name);
            (string, string?)? expected = m.Success ? (m.Groups["p"].Value, m.Groups["id"].Success ? m.Groups["id"].Value : null) : null;
            Assert.True(expected == ImageKind.SplitFileName(name), $"{name}: expected {expected}, got {ImageKind.SplitFileName(name)}");
        }
    }

    [Fact]
    public void DirectoryListsItsImages()
    {
        using var tmp = new TempImageDir();
        SampleImages.Write(tmp.Dir, SampleImages.Core());
        SampleImages.Write(tmp.Dir, SampleImages.Pstree());
        File.WriteAllText(tmp.File("notes.txt"), "x");
        var list = tmp.Dir.List();
        Assert.Equal(["core-4242.img", "notes.txt", "pstree.img"], list.Select(l => l.FileName));
        Assert.Equal(ImageFile.Core(4242), list[0].File);
        Assert.Null(list[1].File);
    }
}
