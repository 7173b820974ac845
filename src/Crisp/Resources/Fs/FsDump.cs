using Crisp.Dump;
using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux.Proc;
using Crisp.Resources.Files;
using Crisp.Resources.Files.Regular;

namespace Crisp.Resources.Fs;

/// <summary>cwd, root and umask of each task: fs-PID.img with cwd_id/root_id naming REG entries of
/// files.img (as CRIU does; the Files stage writes files.img, so it must run too).</summary>
public sealed class FsDump : IDumpStage
{
    public string Name => "fs";

    public void Dump(DumpContext ctx, DumpTask task)
    {
        uint cwd = Directory(ctx, task.Pid, "cwd");
        uint root = Directory(ctx, task.Pid, "root");
        ctx.Images.Write(ImageFile.Fs(task.VirtualPid), new fs_entry { CwdId = cwd, RootId = root, Umask = task.Status.Umask });
    }

    /// <summary>The file id of a task's cwd or root: a REG entry of its path, or a deleted directory's ghost.</summary>
    private static uint Directory(DumpContext ctx, int pid, string which)
    {
        string path = Procfs.Host.Path(pid, which);
        string target = new FileInfo(path).LinkTarget
            ?? throw new CrispException($"task {pid}: cannot read its {which}");
        if (target.EndsWith(" (deleted)", StringComparison.Ordinal))
            return ctx.Files.GhostReferences.DirectoryFileIdOf(ctx, pid, which, target[..^" (deleted)".Length]);
        return ctx.Files.Table.Add(ctx, id => RegularFile.ForDirectory(id, target, FileStat.S_IFDIR | (uint)File.GetUnixFileMode(path)));
    }
}
