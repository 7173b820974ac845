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

        string? cwdGhost = Files.Ghost.GhostFile.HolderPath(ctx, fs.CwdId, cwd);
        string? rootGhost = Files.Ghost.GhostFile.HolderPath(ctx, fs.RootId, root);
        byte[] cwdBytes = Encoding.UTF8.GetBytes(cwd + "\0"), rootBytes = Encoding.UTF8.GetBytes(root + "\0");
        if (cwdGhost is null && rootGhost is null && cwdBytes.Length + rootBytes.Length <= task.Puppet.Remote.ScratchDataSize / 2)
        {
            // The usual case in one stop (a remote call is a ptrace round trip): both paths on the data page at once,
            // the other half left to the batch's table.
            ulong at = task.Puppet.Remote.PutOnScratch([.. cwdBytes, .. rootBytes]);
            var calls = new List<(string, Compel.RemoteCall)> { ($"chdir({cwd})", new(Sysno.chdir, (long)at)) };
            if (root != "/")
                calls.Add(($"chroot({root})", new(Sysno.chroot, (long)at + cwdBytes.Length)));
            if (fs.HasUmask)
                calls.Add(("umask", new(Sysno.umask, fs.Umask)));
            task.Puppet.Remote.CallAll(calls);
            return;
        }
        // A deleted directory is entered through the ghost crisp re-created for it (it has no path).
        if (cwdGhost is not null)
            EnterGhost(task, cwdGhost, "cwd");
        else
            task.Call($"chdir({cwd})", Sysno.chdir, (long)PutPath(task, cwd));
        if (rootGhost is not null)
        {
            // chroot takes a path: enter the ghost, chroot("."), then go back to the cwd.
            int back = (int)task.Call("open(.)", Sysno.openat, FileIo.AT_FDCWD, (long)PutPath(task, "."), FileIo.O_RDONLY | FileIo.O_DIRECTORY | FileIo.O_CLOEXEC);
            try
            {
                EnterGhost(task, rootGhost, "root");
                task.Call("chroot(.)", Sysno.chroot, (long)PutPath(task, "."));
                task.Call("fchdir", Sysno.fchdir, back);
            }
            finally
            {
                task.Puppet.Remote.Syscall(Sysno.close, back);
            }
        }
        else if (root != "/")
            task.Call($"chroot({root})", Sysno.chroot, (long)PutPath(task, root));
        if (fs.HasUmask)
            task.Call("umask", Sysno.umask, fs.Umask);
    }

    private static string PathOf(Dictionary<uint, string> files, uint id, string what, RestoreTask task) =>
        files.TryGetValue(id, out var p) ? p : throw new CrispException($"{task}: its {what} is file {id}, which files.img lacks");

    private static void EnterGhost(RestoreTask task, string holder, string what)
    {
        int fd = Mounts.MountNamespace.OpenInPuppet(task, holder, FileIo.O_RDONLY | FileIo.O_DIRECTORY);
        try
        {
            task.Call($"fchdir({what} ghost)", Sysno.fchdir, fd);
        }
        finally
        {
            task.Puppet.Remote.Syscall(Sysno.close, fd);
        }
    }

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
