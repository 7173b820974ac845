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
        var table = ctx.Files.Table;
        uint cwd = table.Add(ctx, id => Directory(id, task.Pid, "cwd"));
        uint root = table.Add(ctx, id => Directory(id, task.Pid, "root"));
        ctx.Images.Write(ImageFile.Fs(task.VirtualPid), new fs_entry { CwdId = cwd, RootId = root, Umask = task.Status.Umask });
    }

    private static file_entry Directory(uint id, int pid, string which)
    {
        string path = Procfs.Host.Path(pid, which);
        string target = new FileInfo(path).LinkTarget
            ?? throw new CrispException($"task {pid}: cannot read its {which}");
        if (target.EndsWith(" (deleted)", StringComparison.Ordinal))
            throw new CrispException($"task {pid}: its {which} {target} is deleted; that is not supported yet");
        return RegularFile.ForDirectory(id, target, FileStat.S_IFDIR | (uint)File.GetUnixFileMode(path));
    }
}
