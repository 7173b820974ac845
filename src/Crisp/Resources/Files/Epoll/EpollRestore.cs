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
        var state = ctx.Files.Epolls;
        if (!ctx.Images.Exists(ImageFile.Files))
            return;
        foreach (var e in ctx.Images.ReadAll<file_entry>(ImageFile.Files))
            if (e.Type == fd_types.Eventpoll && e.Epfd is { } ep && ep.Tfd.Count > 0)
                state.ById[e.Id] = ep;
    }

    public void Restore(RestoreContext ctx, RestoreTask task)
    {
        var state = ctx.Files.Epolls;
        if (state.ById.Count == 0)
            return;
        var fds = ctx.Files.Open.Fdinfos.TryGetValue(task.Ids.FilesId, out var list) ? list : [];
        foreach (var fi in fds)
        {
            if (fi.Type != fd_types.Eventpoll || !state.ById.Remove(fi.Id, out var ep))
                continue;
            // A fired EPOLLONESHOT item keeps only the private bits; EPOLL_CTL_ADD/MOD always arm EPOLLERR|EPOLLHUP,
            // so such an item is disarmed the way the program did it: added first, alone, armed for every event,
            // and reaped by one epoll_wait. One whose file is ready for nothing stays armed for EPOLLERR|EPOLLHUP.
            var disarmed = ep.Tfd.Where(i => (i.Events & EPOLLONESHOT) != 0 && (i.Events & ~EpollPrivateBits) == 0).ToList();
            foreach (var item in disarmed)
                Add(task, fi.Fd, (int)item.Tfd, item.Events | AnyEvent, item.Data, EventObjects.EPOLL_CTL_ADD);
            if (disarmed.Count > 0)
            {
                ulong at = task.Puppet.Remote.PutOnScratch(new byte[12 * disarmed.Count]);
                long n = task.Puppet.Remote.Syscall(Sysno.epoll_wait, fi.Fd, (long)at, disarmed.Count, 0);
                var fired = new byte[12 * Math.Max(0, (int)n)];
                task.Puppet.Remote.ReadMemory(at, fired);
                var firedData = Enumerable.Range(0, fired.Length / 12).Select(k => BitConverter.ToUInt64(fired, 12 * k + 4)).ToHashSet();
                foreach (var item in disarmed.Where(i => !firedData.Contains(i.Data)))
                {
                    Add(task, fi.Fd, (int)item.Tfd, item.Events, item.Data, EventObjects.EPOLL_CTL_MOD);
                    ctx.Log.Warn($"task {task.Pid} fd {fi.Fd}: the fired one-shot epoll watch of fd {item.Tfd} is armed again " +
                        "for EPOLLERR|EPOLLHUP (its file is ready for nothing, so it cannot be disarmed by firing it)");
                }
            }
            foreach (var item in ep.Tfd.Except(disarmed))
                Add(task, fi.Fd, (int)item.Tfd, item.Events, item.Data, EventObjects.EPOLL_CTL_ADD);
            ctx.Log.Debug($"task {task.Pid} fd {fi.Fd}: {ep.Tfd.Count} epoll item(s) added");
        }
    }

    // EPOLLEXCLUSIVE, EPOLLWAKEUP, EPOLLONESHOT, EPOLLET: kept by the kernel when a one-shot item fires.
    private const uint EpollPrivateBits = 0xf0000000, EPOLLONESHOT = 0x40000000;
    // EPOLLIN|PRI|OUT|RDNORM|RDBAND|WRNORM|WRBAND|MSG|RDHUP: whatever the file can be ready for.
    private const uint AnyEvent = 0x1 | 0x2 | 0x4 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x2000;

    private static void Add(RestoreTask task, uint epfd, int tfd, uint events, ulong data, int op)
    {
        ulong at = task.Puppet.Remote.PutOnScratch(EventObjects.EpollEvent(events, data));
        long r = task.Puppet.Remote.Syscall(Sysno.epoll_ctl, epfd, op, tfd, (long)at);
        if (r < 0)
            throw new CrispException($"task {task.Pid} fd {epfd}: epoll item fd {tfd} (events 0x{events:x}): " +
                $"epoll_ctl: {Errnos.Describe((int)-r)}");
    }
}

/// <summary>Restore-wide: the epolls whose items are still to be added, by file id.</summary>
public sealed class EpollItems
{
    public Dictionary<uint, eventpoll_file_entry> ById { get; } = [];
}
