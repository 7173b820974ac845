using Crisp.Compel;
using Crisp.Compel.Puppets;
using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux.Proc;
using Crisp.Resources.Files.Regular;
using Crisp.Resources.Fs;
using Crisp.Restore;
using Crisp.Tests.Support;

namespace Crisp.Tests.Resources.Fs;

public class FsRestoreTests
{
    /// <summary>Hand-written images in <paramref name="dir"/> (files and fs-PID: cwd, root, umask 077) and a puppet to
    /// restore them into.</summary>
    private static (RestoreContext Ctx, RestoreTask Task) PuppetWithFs(Tracer tracer, string dir, uint pid, string cwd, string root)
    {
        var images = ImageDirectory.Open(dir);
        images.Write(ImageFile.Files, RegularFile.ForDirectory(1, cwd, 0x41ed), RegularFile.ForDirectory(2, root, 0x41ed));
        images.Write(ImageFile.Fs(pid), new fs_entry { CwdId = 1, RootId = 2, Umask = 0x3f });
        var seizer = new Seizer(tracer);
        var ctx = new RestoreContext(new RestoreOptions { ImagesDir = dir }, Log.Null, images, tracer, seizer,
            FaultInjection.None, new inventory_entry());
        return (ctx, new RestoreTask(new pstree_entry { Pid = pid }, [], null) { Puppet = Puppet.Spawn(seizer) });
    }

    /// <summary>From hand-written images: cwd inside a chroot, and the umask.</summary>
    [RootFact]
    public void RestoresCwdRootAndUmaskInAPuppet()
    {
        string root = Directory.CreateTempSubdirectory("crisp-fs-root-").FullName;
        string cwd = Directory.CreateDirectory(Path.Combine(root, "sub")).FullName;
        string dir = Directory.CreateTempSubdirectory("crisp-fs-img-").FullName;
        using var tracer = new Tracer();
        var (ctx, task) = PuppetWithFs(tracer, dir, 4242, cwd, root);
        try
        {
            new FsRestore().Restore(ctx, task);
            int p = task.Puppet.Pid;
            Assert.Equal(cwd, new FileInfo($"/proc/{p}/cwd").LinkTarget);
            Assert.Equal(root, new FileInfo($"/proc/{p}/root").LinkTarget);
            Assert.Equal(0x3fu, ProcStatus.Read(p).Umask);
        }
        finally
        {
            task.Puppet.Kill();
            Directory.Delete(dir, recursive: true);
            Directory.Delete(root, recursive: true);
        }
    }

    /// <summary>The cwd, root and umask go in one batch: a cwd gone since the dump still fails naming the call and path.</summary>
    [RootFact]
    public void ACwdGoneSinceTheDumpFailsNamingIt()
    {
        string dir = Directory.CreateTempSubdirectory("crisp-fs-img-").FullName;
        string gone = Path.Combine(dir, "gone");
        using var tracer = new Tracer();
        var (ctx, task) = PuppetWithFs(tracer, dir, 4244, gone, "/");
        try
        {
            var e = Assert.Throws<Crisp.Linux.SyscallException>(() => new FsRestore().Restore(ctx, task));
            Assert.Contains($"chdir({gone})", e.Message);
            Assert.Contains("ENOENT", e.Message);
        }
        finally
        {
            task.Puppet.Kill();
            Directory.Delete(dir, recursive: true);
        }
    }

    [RootFact]
    public void MissingFsImageIsAClearError()
    {
        string dir = Directory.CreateTempSubdirectory("crisp-fs-img-").FullName;
        try
        {
            var images = ImageDirectory.Open(dir);
            using var tracer = new Tracer();
            var ctx = new RestoreContext(new RestoreOptions { ImagesDir = dir }, Log.Null, images, tracer, new Seizer(tracer),
                FaultInjection.None, new inventory_entry());
            var task = new RestoreTask(new pstree_entry { Pid = 4243 }, [], null);
            var e = Assert.Throws<CrispException>(() => new FsRestore().Restore(ctx, task));
            Assert.Equal("fs-4243.img is missing", e.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
