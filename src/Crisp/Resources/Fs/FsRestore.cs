using System.Text;
using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Restore;

namespace Crisp.Resources.Fs;

/// <summary>cwd, root and umask of each task, by remote syscall: chdir first (the path is as crisp
/// sees it), then chroot when the root was not "/", then umask.</summary>
public sealed class FsRestore : IRestoreStage
{
    public string Name => "fs";

    public void Restore(RestoreContext ctx, RestoreTask task)
    {
        if (!ctx.Images.Exists(ImageFile.Fs(task.Pid)))
            throw new CrispException($"{ImageFile.Fs(task.Pid)} is missing");
        var fs = ctx.Images.ReadOne<fs_entry>(ImageFile.Fs(task.Pid));
        var files = ctx.Fs.Get(ctx.Images);
        string cwd = PathOf(files, fs.CwdId, "cwd", task);
        string root = PathOf(files, fs.RootId, "root", task);

        task.Call($"chdir({cwd})", Sysno.chdir, (long)PutPath(task, cwd));
        if (root != "/")
            task.Call($"chroot({root})", Sysno.chroot, (long)PutPath(task, root));
        if (fs.HasUmask)
            task.Call("umask", Sysno.umask, fs.Umask);
    }

    private static string PathOf(Dictionary<uint, string> files, uint id, string what, RestoreTask task) =>
        files.TryGetValue(id, out var p) ? p : throw new CrispException($"{task}: its {what} is file {id}, which files.img lacks");

    private static ulong PutPath(RestoreTask task, string path)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(path + "\0");
        return task.Puppet.Remote.PutOnScratch(bytes);
    }
}

/// <summary>Restore-wide: paths of files.img's REG entries by id, read once.</summary>
public sealed class FsPaths
{
    private Dictionary<uint, string>? _paths;

    public Dictionary<uint, string> Get(ImageDirectory images) =>
        _paths ??= images.ReadAll<file_entry>(ImageFile.Files)
            .Where(e => e.Type == fd_types.Reg && e.Reg is not null)
            .ToDictionary(e => e.Id, e => e.Reg.Name);
}
