using Crisp.Compel.Puppets;
using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Resources.Files.Pipes;
using Crisp.Restore;

namespace Crisp.Resources.Files;

/// <summary>Prepare: every open file description any task had is created once, in crisp. Restore: each
/// task gets its fds at their numbers (FdInstaller), so fds shared between tasks share a description
/// (and its offset). Cleanup: crisp's copies are closed.</summary>
public sealed class FilesRestore : IRestoreStage
{
    public string Name => "files";

    /// <summary>Right after this stage, task by task: each fd kind's step once the fds are in (terminal, epoll
    /// items), then the file locks, taken by the task that held them.</summary>
    public IEnumerable<IRestoreStage> Then =>
        FileKinds.All.Select(k => k.AfterInstall).OfType<IRestoreStage>().Append(FileLocks);

    private static readonly Locks.FileLocksRestore FileLocks = new();

    public void Prepare(RestoreContext ctx)
    {
        var open = ctx.Files.Open;
        var entries = ctx.Images.ReadAll<file_entry>(ImageFile.Files).ToDictionary(e => e.Id);
        foreach (uint filesId in ctx.Tasks.Select(t => t.Ids.FilesId).Distinct())
        {
            var fdinfos = ctx.Images.ReadAll<fdinfo_entry>(ImageFile.Fdinfo(filesId));
            open.Fdinfos[filesId] = fdinfos;
            foreach (var fi in fdinfos)
            {
                if (open.ById.ContainsKey(fi.Id) || open.Late.ContainsKey(fi.Id))
                    continue;
                if (!entries.TryGetValue(fi.Id, out var entry))
                    throw new CrispException($"fdinfo-{filesId}.img: fd {fi.Fd} refers to file {fi.Id}, which files.img lacks");
                if (entry.Type != fi.Type)
                    throw new CrispException($"fdinfo-{filesId}.img: fd {fi.Fd} is {fi.Type}, files.img says {entry.Type}");
                var kind = FileKinds.ForType(entry.Type);
                switch (kind.Timing(ctx, entry))
                {
                    case OpenTiming.InTask: open.InTask.Add(fi.Id); break;
                    case OpenTiming.Late: open.Late[fi.Id] = entry; break;
                    default: open.ById[fi.Id] = InheritedFds.For(ctx, entry) ?? kind.Open(ctx, entry); break;
                }
            }
        }
        ctx.Log.Debug($"files: {open.ById.Count} description(s) opened");
    }

    public void Restore(RestoreContext ctx, RestoreTask task)
    {
        var open = ctx.Files.Open;
        var fds = open.Fdinfos.TryGetValue(task.Ids.FilesId, out var list) ? list : [];
        foreach (var fi in fds)
            if (open.Late.Remove(fi.Id, out var late))
                open.ById[fi.Id] = FileKinds.ForType(late.Type).Open(ctx, late);
        ctx.Files.Owners.Apply(ctx);   // the tree exists now
        fds = fds.Where(fi => !open.InTask.Contains(fi.Id)).ToList();
        FdInstaller.Install(task.Puppet, fds
            .Select(fi => new FdToInstall((int)fi.Fd, open.ById[fi.Id].Fd, (fi.Flags & FdOps.FD_CLOEXEC) != 0))
            .ToList());
        // An O_ASYNC signal carries the fd number the flag was set through (si_fd): crisp's until set again
        // through the task's own fd (off, then on: the kernel re-registers only on a change).
        foreach (var fi in fds)
        {
            int flags = FdOps.Fcntl(open.ById[fi.Id].Fd, FdOps.F_GETFL);
            if ((flags & FileIo.O_ASYNC) == 0)
                continue;
            task.Call("fcntl(F_SETFL)", Sysno.fcntl, fi.Fd, FdOps.F_SETFL, flags & ~FileIo.O_ASYNC);
            task.Call("fcntl(F_SETFL)", Sysno.fcntl, fi.Fd, FdOps.F_SETFL, flags);
        }
    }

    public void Cleanup(RestoreContext ctx)
    {
        // crisp's fds of the descriptions are closed by the context (FilesRestoreState); kinds with work of their own here:
        foreach (var kind in FileKinds.All)
            kind.CleanupRestore(ctx);
    }
}

/// <summary>Restore-wide: crisp's fd of each description by file id, and each files set's fdinfo entries.</summary>
public sealed class OpenDescriptions
{
    public Dictionary<uint, UnixFd> ById { get; } = [];
    /// <summary>Entries opened once the tree exists (<see cref="OpenTiming.Late"/>), not opened yet.</summary>
    public Dictionary<uint, file_entry> Late { get; } = [];
    /// <summary>Descriptions each task opens itself (<see cref="OpenTiming.InTask"/>): left to the kind's step
    /// after install.</summary>
    public HashSet<uint> InTask { get; } = [];
    public Dictionary<uint, List<fdinfo_entry>> Fdinfos { get; } = [];
}
