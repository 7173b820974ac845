using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Security;

namespace Crisp.Tests.Images;

/// <summary>An images directory is held open as a directory fd: images are read, created and checked (strict modes)
/// relative to the directory that was opened, not to its path walked again — a directory swapped in under the same
/// path afterwards is neither read nor written.</summary>
public class ImageDirectoryHandleTests
{
    [Fact]
    public void ImagesGoToAndComeFromTheOpenedDirectoryWhateverIsRenamedAfter()
    {
        using var tmp = new TempImageDir();
        tmp.Dir.Write(ImageFile.Pstree, new pstree_entry { Pid = 1, Threads = { 1 } });
        using var opened = ImageDirectory.Open(tmp.Path);
        string moved = tmp.Path + "-moved";
        Directory.Move(tmp.Path, moved);
        try
        {
            // Another directory now at the path, with another pstree and open to everyone.
            Directory.CreateDirectory(tmp.Path);
            File.SetUnixFileMode(tmp.Path, (UnixFileMode)0x1FF);
            using (var other = ImageDirectory.Open(tmp.Path))
                other.Write(ImageFile.Pstree, new pstree_entry { Pid = 2, Threads = { 2 } });

            Assert.Equal(1u, opened.ReadOne<pstree_entry>(ImageFile.Pstree).Pid);
            opened.Write(ImageFile.Inventory, new inventory_entry { ImgVersion = 2 });
            Assert.True(File.Exists(Path.Combine(moved, "inventory.img")));
            Assert.False(File.Exists(Path.Combine(tmp.Path, "inventory.img")));
            StrictModes.Check(opened);   // the opened one is 0700: fine, though the path now leads to a 0777 one
            Assert.Throws<InsecureImagesException>(() => StrictModes.Check(tmp.Path));
        }
        finally
        {
            Directory.Delete(moved, recursive: true);
        }
    }

    [Fact]
    public void AGivenHandleIsDuplicatedAndKeptByItsOwner()
    {
        using var tmp = new TempImageDir();
        using var handle = ImageDirectory.OpenHandle(tmp.Path);
        using (var dir = ImageDirectory.Open("/nonexistent-name-for-messages", handle: handle))
            dir.Write(ImageFile.Pstree, new pstree_entry { Pid = 3, Threads = { 3 } });
        Assert.True(File.Exists(tmp.File("pstree.img")));
        using var again = ImageDirectory.Open(tmp.Path, handle: handle);   // the caller's fd is still open
        Assert.Equal(3u, again.ReadOne<pstree_entry>(ImageFile.Pstree).Pid);
    }
}
