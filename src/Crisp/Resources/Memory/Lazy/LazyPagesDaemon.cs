using System.Buffers.Binary;
using Crisp.Images;
using Crisp.Images.Pages;
using Crisp.Images.Proto;
using Crisp.Linux;

namespace Crisp.Resources.Memory.Lazy;

/// <summary>`crisp lazy-pages`: fills the private anonymous memory of a tree restored with --lazy-pages while it runs.
/// It listens on lazy-pages.socket, takes each task's userfaultfd from the restore, and serves page faults at once
/// (UFFDIO_COPY of the pages fetched, UFFDIO_ZEROPAGE where the images hold none); once the restore says the tree
/// runs, it pushes the pages not faulted yet in the background, 1 MiB at a time between faults, and ends when every
/// page is in. Pages come from the images directory (<see cref="LocalPageSource"/>) and, for PE_LAZY runs of a dump
/// --lazy-pages, from its page server (<see cref="SocketPageSource"/>). One thread, one poll loop: no locking, and
/// a fault waits at most for one chunk in flight. When the pages cannot come (the page server's connection lost,
/// the restore gone before the tree ran) every task is killed through its pidfd before the userfaultfds are
/// closed — closing them first would let the tree run on with zeros where pages were missing. An mremap of lazy
/// memory (the remap event) moves its pending pages along; they are still read at their dumped address.</summary>
public sealed unsafe class LazyPagesDaemon(ImageDirectory images, SocketPageSource? remote, Log log) : IDisposable
{
    private const ulong PushBytes = 1 << 20, FaultBytes = 16 * (ulong)Mman.PageSize;
    private const short POLLIN = 1;

    private readonly LocalPageSource _local = new(images);
    private readonly List<LazyTask> _tasks = [];
    private readonly byte[] _buffer = GC.AllocateUninitializedArray<byte>((int)PushBytes, pinned: true);
    private readonly byte[] _messages = new byte[Userfaultfd.MsgSize * 16];
    private long[] _poll = GC.AllocateArray<long>(8, pinned: true);
    private bool _finished;

    /// <summary>Pages copied because a task touched them, pushed in the background, zero pages mapped on fault.</summary>
    public long FaultPages { get; private set; }
    public long PushedPages { get; private set; }
    public long ZeroPages { get; private set; }
    /// <summary>Pages still pending when the program mremap()ed them elsewhere (copied in at their new address).</summary>
    public long RemappedPages { get; private set; }
    /// <summary>Test hook (<see cref="PushPauseVariable"/>): the least time between two background pushes, so a test
    /// can see the program act on memory not in yet; faults are served at once all the same.</summary>
    public TimeSpan PushPause { get; init; }
    public const string PushPauseVariable = "CRISP_LAZY_PUSH_PAUSE_MS";
    /// <summary>Pages copied in by the time the restore said the tree runs (the rest came while it ran).</summary>
    public long CopiedWhenReleased { get; private set; } = -1;
    public long TotalPages => _tasks.Sum(t => t.TotalPages);

    /// <summary>Serves the restore connected on <paramref name="listener"/> until every page is in.</summary>
    public void Run(UnixFd listener)
    {
        try
        {
            using var restore = SocketCalls.Accept(listener.Fd);
            listener.Dispose();
            Serve(restore);
            remote?.Complete();
        }
        catch (CrispException e)
        {
            KillAll();
            throw new CrispException($"{e.Message}: the restored tree was killed");
        }
        catch
        {
            KillAll();
            throw;
        }
    }

    /// <summary>Every task SIGKILLed (before the userfaultfds close, so none runs on with pages missing).</summary>
    private void KillAll()
    {
        foreach (var t in _tasks)
            t.Kill();
    }

    private void Serve(UnixFd restore)
    {
        bool restoreOpen = true;
        var fds = new List<(int Fd, LazyTask? Task)>();
        var sincePush = System.Diagnostics.Stopwatch.StartNew();
        for (;;)
        {
            if (_finished && _tasks.All(t => t.Done))
                return;
            fds.Clear();
            if (restoreOpen)
                fds.Add((restore.Fd, null));
            foreach (var t in _tasks.Where(t => !t.Gone))
                fds.Add((t.Uffd.Fd, t));
            bool pushing = _finished && _tasks.Any(t => !t.Done);
            int wait = !pushing ? 1000 : (int)Math.Clamp((PushPause - sincePush.Elapsed).TotalMilliseconds, 0, 1000);
            if (_poll.Length < fds.Count)
                _poll = GC.AllocateArray<long>(fds.Count * 2, pinned: true);
            for (int i = 0; i < fds.Count; i++)
                _poll[i] = (uint)fds[i].Fd | (long)POLLIN << 32;   // struct pollfd: int fd, short events, short revents
            long n;
            fixed (long* poll = _poll)
                n = RawSyscall.TryCall(Sysno.poll, (long)poll, fds.Count, wait);
            if (n < 0 && n != -Errnos.EINTR)
                throw new SyscallException("poll", (int)-n);
            for (int i = 0; n > 0 && i < fds.Count; i++)
            {
                if (((ulong)_poll[i] >> 48) == 0)
                    continue;
                if (fds[i].Task is { } task)
                    HandleMessages(task);
                else
                    restoreOpen = FromRestore(restore);
            }
            if (_finished && sincePush.Elapsed >= PushPause && _tasks.FirstOrDefault(t => !t.Done) is { } next)
            {
                Push(next);
                sincePush.Restart();
            }
        }
    }

    /// <summary>One message of the restore: a task's pid and fds, or "finished". False once it hung up.</summary>
    private bool FromRestore(UnixFd restore)
    {
        Span<byte> word = stackalloc byte[4];
        int got = 0;
        while (got < 4)
        {
            long r = SocketCalls.TryRecv(restore.Fd, word[got..], 0x100 /* MSG_WAITALL */);
            if (r == 0 && got == 0 && _finished)
                return false;
            if (r <= 0)
                throw new CrispException(r == 0 ? "lazy pages: the restore ended before the tree ran (no RESTORE_FINISHED)"
                    : $"lazy pages: reading the restore's socket failed ({Errnos.Describe((int)-r)})");
            got += (int)r;
        }
        int pid = BinaryPrimitives.ReadInt32LittleEndian(word);
        if (pid == LazyPagesSocket.RestoreFinished)
        {
            _finished = true;
            CopiedWhenReleased = FaultPages + PushedPages;
            log.Info($"lazy pages: the tree runs; {CopiedWhenReleased} of {TotalPages} pages in, pushing the rest");
            return true;
        }
        if (pid <= 0)
            return true;   // CRIU's restore announces a zombie as -pid, with no fd
        var fds = Sockets.ReceiveFds(restore.Fd, 2);
        if (fds.Length == 0)
            throw new CrispException($"lazy pages: the restore sent task {pid} without its userfaultfd");
        var uffd = new UnixFd(fds[0]);
        var pidfd = fds.Length > 1 ? new UnixFd(fds[1]) : null;
        var mm = images.ReadAll<mm_entry>(ImageFile.Mm(pid)).FirstOrDefault()
            ?? throw new CrispException($"{images.PathOf(ImageFile.Mm(pid))}: missing or empty");
        var task = new LazyTask(pid, uffd, pidfd, mm, _local.Pagemap(pid));
        _tasks.Add(task);
        log.Debug($"lazy pages: task {pid}: {task.TotalPages} pages");
        return true;
    }

    private void HandleMessages(LazyTask task)
    {
        for (;;)
        {
            int n = Userfaultfd.ReadMessages(task.Uffd.Fd, _messages);
            if (n < 0)
                throw new CrispException($"lazy pages: reading task {task.Pid}'s userfaultfd failed ({Errnos.Describe(-n)})");
            if (n == 0)
                return;
            for (int i = 0; i < n; i++)
            {
                var m = Userfaultfd.Message.Read(_messages.AsSpan(i * Userfaultfd.MsgSize, Userfaultfd.MsgSize));
                switch (m.Event)
                {
                    case Userfaultfd.EVENT_PAGEFAULT:
                        Fault(task, m.Address & ~(ulong)(Mman.PageSize - 1));
                        break;
                    case Userfaultfd.EVENT_FORK:
                        // The child's mm is the parent's as of the fork: the same pages missing, the same image pages.
                        var child = task.Fork(new UnixFd((int)(uint)m.Arg0));
                        _tasks.Add(child);
                        log.Debug($"lazy pages: task {task.Pid} forked; {child.PendingPages} pages still to copy into the child");
                        break;
                    case Userfaultfd.EVENT_REMAP:
                        long moved = task.Remap(m.Arg0, m.Arg1, m.Arg2);
                        RemappedPages += moved;
                        log.Debug($"lazy pages: task {task.Pid}: mremap 0x{m.Arg0:x} -> 0x{m.Arg1:x} ({m.Arg2} bytes): {moved} pending pages moved");
                        break;
                    case Userfaultfd.EVENT_REMOVE:
                    case Userfaultfd.EVENT_UNMAP:
                        task.Remove(m.Arg0, m.Arg1);   // the program dropped them: never push stale pages there
                        break;
                    default:
                        log.Warn($"lazy pages: task {task.Pid}: unexpected userfaultfd event 0x{m.Event:x}");
                        break;
                }
            }
        }
    }

    /// <summary>A thread waits on <paramref name="page"/>: its pages (and a few after it) copied in, or the zero page.</summary>
    private void Fault(LazyTask task, ulong page)
    {
        while (!task.Gone)
        {
            if (task.PendingAt(page, FaultBytes) is { } region)
            {
                if (Copy(task, region, fault: true))
                    return;
                continue;   // the address space changed meanwhile: look again
            }
            long r = Userfaultfd.ZeroPage(task.Uffd.Fd, page, (ulong)Mman.PageSize);
            if (r > 0)
                ZeroPages++;
            else if (r == -Errnos.EEXIST)
                Userfaultfd.Wake(task.Uffd.Fd, page, (ulong)Mman.PageSize);
            else if (r == -Errnos.EAGAIN)
            {
                HandleMessages(task);
                continue;
            }
            else if (r == -Errnos.ESRCH)
                task.Gone = true;
            else if (r != -Errnos.ENOENT)
                throw new CrispException($"lazy pages: task {task.Pid}: UFFDIO_ZEROPAGE at 0x{page:x} failed ({Errnos.Describe((int)-r)})");
            return;
        }
    }

    private void Push(LazyTask task)
    {
        var region = task.Next(PushBytes);
        Copy(task, region, fault: false);
    }

    /// <summary>Fetches the region's pages and copies them in. False when the address space changed first (events
    /// read meanwhile): the caller looks at what is still pending.</summary>
    private bool Copy(LazyTask task, LazyTask.Region region, bool fault)
    {
        int len = (int)(region.End - region.Start);
        var data = _buffer.AsSpan(0, len);
        if (region.Remote)
            remote!.Read(task.Pid, region.ImageStart, data);
        else
            _local.Read(task.Pid, region.ImageStart, data);
        ulong at = 0;
        bool pageByPage = false;
        while (at < (ulong)len)
        {
            var src = data[(int)at..];
            if (pageByPage)
                src = src[..Mman.PageSize];
            long r = Userfaultfd.Copy(task.Uffd.Fd, region.Start + at, src);
            if (r > 0)
            {
                task.Remove(region.Start + at, region.Start + at + (ulong)r);
                if (fault)
                    FaultPages += r / Mman.PageSize;
                else
                    PushedPages += r / Mman.PageSize;
                at += (ulong)r;
                continue;
            }
            ulong page = region.Start + at;
            switch ((int)-r)
            {
                case Errnos.EEXIST:   // already in: a fault copied it
                    Userfaultfd.Wake(task.Uffd.Fd, page, (ulong)Mman.PageSize);
                    task.Remove(page, page + (ulong)Mman.PageSize);
                    at += (ulong)Mman.PageSize;
                    break;
                case Errnos.ENOENT when !pageByPage && (ulong)len - at > (ulong)Mman.PageSize:
                    pageByPage = true;   // the range spans two VMAs now (an mprotect split it): one page at a time
                    break;
                case Errnos.ENOENT:   // unmapped (the event may not be read yet)
                    task.Remove(page, page + (ulong)Mman.PageSize);
                    at += (ulong)Mman.PageSize;
                    break;
                case Errnos.ESRCH:
                    task.Gone = true;
                    return true;
                case Errnos.EAGAIN:
                    HandleMessages(task);
                    return false;
                default:
                    throw new CrispException($"lazy pages: task {task.Pid}: UFFDIO_COPY at 0x{page:x} failed ({Errnos.Describe((int)-r)})");
            }
        }
        return true;
    }

    public void Dispose()
    {
        foreach (var t in _tasks)
            t.Dispose();
        _local.Dispose();
        remote?.Dispose();
    }

    /// <summary>Listens on <paramref name="path"/> (a stale socket file removed first).</summary>
    public static UnixFd Listen(string path)
    {
        if (File.Exists(path) || Directory.Exists(path))
            File.Delete(path);
        var socket = SocketCalls.Socket(SocketCalls.AF_UNIX, Sockets.SOCK_STREAM);
        try
        {
            SocketCalls.Bind(socket.Fd, LazyPagesSocket.Address(path));
            SocketCalls.Listen(socket.Fd, 1);
        }
        catch (SyscallException e)
        {
            socket.Dispose();
            throw new CrispException($"lazy pages: cannot listen on {path} ({e.Message})");
        }
        return socket;
    }
}
