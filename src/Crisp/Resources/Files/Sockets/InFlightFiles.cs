using System.Globalization;
using Crisp.Dump;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Restore;

namespace Crisp.Resources.Files.Sockets;

/// <summary>Files "in flight": fds a queued unix message carries (SCM_RIGHTS) — CRIU 4's scm entries
/// (sk-queue.c). Peeking the message gives crisp its own fd of each; it is dumped as any open file
/// (one files.img entry, shared with a task holding the same description) and the packet lists the
/// file ids. Restore sends the message again with those descriptions attached. Epoll instances,
/// terminals and pidfds are refused: their restore is tied to a task's fd table, session or existence.</summary>
public static class InFlightFiles
{
    /// <summary>The file ids of <paramref name="message"/>'s fds. crisp keeps the fds until the dump ends
    /// (the file table compares fds met later with them by kcmp, by number).</summary>
    public static uint[] Dump(DumpContext ctx, QueuedMessage message, string what)
    {
        var held = ctx.Files.InFlight;
        held.Fds.AddRange(message.Fds);
        int self = Environment.ProcessId;
        var ids = new uint[message.Fds.Count];
        for (int i = 0; i < ids.Length; i++)
        {
            var copy = message.Fds[i];
            string target = new FileInfo($"/proc/self/fd/{copy.Fd}").LinkTarget ?? "?";
            var fd = new OpenFd(self, copy.Fd, target, copy, FdOps.Stat(copy.Fd), Linux.Proc.FdInfo.Read(self, copy.Fd));
            var kind = FileKinds.Claiming(fd);
            if (kind is null or Epoll.EpollFile or Tty.PtyFile or Pidfds.PidFdFile or Mqueue.PosixQueueFile)
                throw new CrispException($"{what}: a queued message carries {FileKinds.Describe(fd)} ({target}), which is not supported in flight");
            ids[i] = ctx.Files.Table.IdOf(ctx, kind, fd);
            ctx.Log.Debug($"{what}: in flight: {kind.Type} id {ids[i]} {target}");
        }
        return ids;
    }

    /// <summary>Inodes of the unix sockets in flight anywhere in the tree (in a task's socket queue, or in
    /// the queue of a socket in flight): a peer among them is in the tree, not outside it.</summary>
    public static HashSet<ulong> SocketInodes(DumpContext ctx)
    {
        var found = new HashSet<ulong>();
        var seen = new HashSet<ulong>();
        foreach (var task in ctx.Tasks)
        {
            using var pidfd = PidFd.Open(task.Pid);
            foreach (var link in Linux.Proc.ProcFds.Read(task.Pid).Where(l => l.Target.StartsWith("socket:[", StringComparison.Ordinal)))
            {
                if (!seen.Add(ulong.Parse(link.Target["socket:[".Length..^1], CultureInfo.InvariantCulture)))
                    continue;
                using var copy = pidfd.GetFd(link.Fd);
                Scan(copy.Fd, found, seen);
            }
        }
        return found;
    }

    private static void Scan(int socket, HashSet<ulong> found, HashSet<ulong> seen)
    {
        if (SocketCalls.GetInt(socket, SocketCalls.SOL_SOCKET, SocketCalls.SO_DOMAIN) != SocketCalls.AF_UNIX)
            return;
        List<QueuedMessage> queue;
        try { queue = SocketQueue.Peek(socket, "in-flight scan"); }
        catch (SyscallException) { return; }   // a listening or unconnected stream socket has no queue to peek
        foreach (var m in queue)
            using (m)
                foreach (var fd in m.Fds.Where(f => FdOps.Stat(f.Fd).Type == FileStat.S_IFSOCK))
                {
                    ulong ino = FdOps.Stat(fd.Fd).Ino;
                    found.Add(ino);
                    if (seen.Add(ino))
                        Scan(fd.Fd, found, seen);
                }
    }

    /// <summary>Restore: crisp's description of in-flight file <paramref name="entry"/> (not a unix socket:
    /// those come from the socket set), opened once and shared with the tasks that hold it too.</summary>
    public static int Open(RestoreContext ctx, file_entry entry)
    {
        var open = ctx.Files.Open;
        if (!open.ById.TryGetValue(entry.Id, out var fd))
            open.ById[entry.Id] = fd = InheritedFds.For(ctx, entry) ?? FileKinds.ForType(entry.Type).Open(ctx, entry);
        return fd.Fd;
    }
}

/// <summary>Dump-wide: crisp's fds of the files in flight, closed when the dump ends.</summary>
public sealed class InFlightDump : IDisposable
{
    public List<UnixFd> Fds { get; } = [];

    public void Dispose()
    {
        foreach (var fd in Fds)
            fd.Dispose();
        Fds.Clear();
    }
}
