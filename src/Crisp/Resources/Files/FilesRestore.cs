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
                if (entry.Tty is { } tty && ctx.Files.Ptys.IsControllingTty(ctx, tty))
                    open.InTask.Add(fi.Id);     // /dev/tty: each task opens its own (Tty.TtyRestore)
                else if (kind is ILateFileKind || NamesTreeTask(ctx, entry))
                    open.Late[fi.Id] = entry;
                else
                    open.ById[fi.Id] = InheritedFds.For(ctx, entry) ?? kind.Open(ctx, entry);
            }
        }
        ctx.Log.Debug($"files: {open.ById.Count} description(s) opened");
    }

    /// <summary>A file under /proc/PID of one of the tree's own tasks or threads (a task reading its own or a
    /// child's status): it can only be opened once the tree exists, so it is opened late, like a pidfd.</summary>
    private static bool NamesTreeTask(RestoreContext ctx, file_entry entry)
    {
        if (entry.Reg?.Name is not { } name || !name.StartsWith("/proc/", StringComparison.Ordinal))
            return false;
        var first = name.AsSpan("/proc/".Length);
        int end = first.IndexOf('/');
        if (!uint.TryParse(end < 0 ? first : first[..end], System.Globalization.NumberStyles.None,
                System.Globalization.CultureInfo.InvariantCulture, out uint pid))
            return false;
        return ctx.Tasks.Any(t => t.Entry.Pid == pid || t.Entry.Threads.Contains(pid));
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
    /// <summary>Entries of <see cref="ILateFileKind"/> kinds not opened yet.</summary>
    public Dictionary<uint, file_entry> Late { get; } = [];
    /// <summary>Descriptions no one can open for the task but the task itself (/dev/tty names the opener's
    /// terminal): left to the kind's step after install.</summary>
    public HashSet<uint> InTask { get; } = [];
    public Dictionary<uint, List<fdinfo_entry>> Fdinfos { get; } = [];
}
