using Crisp.Dump;
using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Linux.Proc;
using Crisp.Resources.Files.Pipes;

namespace Crisp.Resources.Files;

/// <summary>Every fd of each task: fdinfo-FILESID.img per task (number, fd flags, file id), and once
/// per dump files.img (one entry per open file description) and pipes-data.img. An fd of a kind crisp
/// cannot restore fails the dump, naming it — nothing is dropped silently.</summary>
public sealed class FilesDump : IDumpStage
{
    public string Name => "files";

    public void Dump(DumpContext ctx, DumpTask task)
    {
        var table = ctx.Files.Table;
        var fdinfos = new List<fdinfo_entry>();
        using var pidfd = PidFd.Open(task.Pid);
        var memoryChain = ctx.Memory.Chain;
        foreach (var link in ProcFds.Read(task.Pid))
        {
            if (memoryChain.IsTrackerFd(task.Pid, link.Fd) || Memory.WriteTracker.IsCrispTracker(task.Pid, link.Fd, link.Target))
                continue;   // crisp's dirty tracking (Memory/WriteTracking.cs), not the program's
            using var copy = pidfd.GetFd(link.Fd);
            var fd = new OpenFd(task.Pid, link.Fd, link.Target, copy, FdOps.Stat(copy.Fd), FdInfo.Read(task.Pid, link.Fd));
            var kind = FileKinds.Claiming(fd) ?? throw FileKinds.Unsupported(fd);
            uint id = table.IdOf(ctx, kind, fd);
            fdinfos.Add(new fdinfo_entry
            {
                Id = id,
                // CRIU keeps the fd's own flags (F_GETFD) here: FD_CLOEXEC.
                Flags = fd.CloseOnExec ? (uint)FdOps.FD_CLOEXEC : 0,
                Type = kind.Type,
                Fd = (uint)link.Fd,
            });
            if (ctx.Log.Enabled(LogLevel.Debug))   // an enum's name comes from reflection metadata: ~1 ms the first time
                ctx.Log.Debug($"task {task.Pid} fd {link.Fd}: {kind.Type} id {id} {link.Target}");
        }
        ctx.Images.Write(ImageFile.Fdinfo(task.Leader.Core.Ids.FilesId), [.. fdinfos]);
    }

    public void Finish(DumpContext ctx)
    {
        foreach (var kind in FileKinds.All)
            kind.FinishDump(ctx);
        ctx.Files.Table.Write(ctx.Images);   // after the kinds: they may order or add entries
    }

    public void Release(DumpContext ctx, bool killed)
    {
        foreach (var kind in FileKinds.All)
            kind.ReleaseDump(ctx, killed);
    }
}
