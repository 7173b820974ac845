using Crisp.Images;
using Crisp.Images.Manifest;
using Crisp.Images.Proto;

namespace Crisp.Tests.Images;

/// <summary>The manifest check keeps the small images it read whole: what a restore parses is what was checked,
/// whatever happens to the file afterwards, and a file written again through the directory is read afresh.</summary>
public class CheckedBytesTests
{
    [Fact]
    public void AVerifiedImageIsParsedFromTheCheckedBytesNotTheFileAsItIsNow()
    {
        using var tmp = Checkpoint();
        using var dir = ImageDirectory.Open(tmp.Path);
        Assert.Equal(2, ImageManifest.Verify(dir));
        Assert.True(dir.IsKeptChecked(ImageFile.Fs(7).FileName));

        // Swapped after the check (another fs image, same length): the restore still reads the bytes it checked.
        SwapFs(tmp);
        Assert.Equal(0x12u, dir.ReadOne<fs_entry>(ImageFile.Fs(7)).Umask);
        // Written through this directory: forgotten, read from the file.
        dir.Write(ImageFile.Fs(7), new fs_entry { CwdId = 1, RootId = 2, Umask = 0x7 });
        Assert.False(dir.IsKeptChecked(ImageFile.Fs(7).FileName));
        Assert.Equal(0x7u, dir.ReadOne<fs_entry>(ImageFile.Fs(7)).Umask);
    }

    [Fact]
    public void AFailedCheckKeepsNothing()
    {
        using var tmp = Checkpoint();
        SwapFs(tmp);
        using var dir = ImageDirectory.Open(tmp.Path);
        Assert.Throws<ImageVerifyException>(() => ImageManifest.Verify(dir));
        Assert.False(dir.IsKeptChecked(ImageFile.Fs(7).FileName));
    }

    /// <summary>Two images and their manifest: fs-7 (umask 0x12) and the inventory.</summary>
    private static TempImageDir Checkpoint()
    {
        var tmp = new TempImageDir();
        tmp.Dir.Write(ImageFile.Fs(7), new fs_entry { CwdId = 1, RootId = 2, Umask = 0x12 });
        tmp.Dir.Write(ImageFile.Inventory, new inventory_entry { ImgVersion = 2 });
        ImageManifest.Write(tmp.Dir);
        return tmp;
    }

    /// <summary>Another fs image of the same length (umask 0x3f), written behind the back of any open directory.</summary>
    private static void SwapFs(TempImageDir tmp)
    {
        using var other = ImageDirectory.Open(tmp.Path);
        other.Write(ImageFile.Fs(7), new fs_entry { CwdId = 1, RootId = 2, Umask = 0x3f });
    }
}
