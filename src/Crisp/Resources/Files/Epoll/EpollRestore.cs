using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Restore;

namespace Crisp.Resources.Files.Epoll;

/// <summary>After a task's fds are installed (Files stage): each epoll it holds gets its items back
/// by remote epoll_ctl(ADD) in that task, so every item is keyed by the fd number the program knows.
/// An epoll shared by several tasks is filled once, in the first task holding it — the task whose fd
/// numbers the dump checked (tasks are dumped and restored in the same order).</summary>
public sealed class EpollRestore : IRestoreStage
{
    public string Name => "epoll";

    public void Prepare(RestoreContext ctx)
    {
        var state = ctx.Shared<EpollItems>();
        if (!ctx.Images.Exists(ImageFile.Files))
            return;
        foreach (var e in ctx.Images.ReadAll<file_entry>(ImageFile.Files))
            if (e.Type == fd_types.Eventpoll && e.Epfd is { } ep && ep.Tfd.Count > 0)
                state.ById[e.Id] = ep;
    }

    public void Restore(RestoreContext ctx, RestoreTask task)
    {
        var state = ctx.Shared<EpollItems>();
        if (state.ById.Count == 0)
            return;
        var fds = ctx.Shared<OpenDescriptions>().Fdinfos.TryGetValue(task.Ids.FilesId, out var list) ? list : [];
        foreach (var fi in fds)
        {
            if (fi.Type != fd_types.Eventpoll || !state.ById.Remove(fi.Id, out var ep))
                continue;
            foreach (var item in ep.Tfd)
            {
                ulong at = task.Puppet.Remote.PutOnScratch(EventObjects.EpollEvent(item.Events, item.Data));
                long r = task.Puppet.Remote.Syscall(Sysno.epoll_ctl, fi.Fd, EventObjects.EPOLL_CTL_ADD, item.Tfd, (long)at);
                if (r < 0)
                    throw new CrispException($"task {task.Pid} fd {fi.Fd}: epoll item fd {item.Tfd} (events 0x{item.Events:x}): " +
                        $"epoll_ctl: {Errnos.Describe((int)-r)}");
            }
            ctx.Log.Debug($"task {task.Pid} fd {fi.Fd}: {ep.Tfd.Count} epoll item(s) added");
        }
    }
}

/// <summary>Restore-wide: the epolls whose items are still to be added, by file id.</summary>
public sealed class EpollItems
{
    public Dictionary<uint, eventpoll_file_entry> ById { get; } = [];
}
