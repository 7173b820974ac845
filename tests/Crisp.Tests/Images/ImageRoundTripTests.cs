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
