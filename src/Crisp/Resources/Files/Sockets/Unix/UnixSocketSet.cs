using System.Text;
using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Restore;
using static Crisp.Linux.SocketCalls;

namespace Crisp.Resources.Files.Sockets.Unix;

/// <summary>Restore-wide: every unix socket of the checkpoint, made at the first Open, in the order the
/// kernel needs: named sockets bound (and listening), then connections — a pair of unnamed sockets by
/// socketpair, a connection to a named socket by a real connect + accept, so each side gets the name
/// and peer it had — then queued data sent in from the peer (or the stand-in of a closed peer), then
/// options and shutdown. Each Open hands over the socket of its inode.</summary>
public sealed class UnixSocketSet : IDisposable
{
    private Dictionary<uint, UnixFd>? _made;

    /// <summary>Closes crisp's copies of sockets no task took (those only in flight: the kernel holds them in the queue now).</summary>
    public void Dispose()
    {
        foreach (var fd in _made?.Values ?? Enumerable.Empty<UnixFd>())
            fd.Dispose();
        _made = null;
    }

    public UnixFd Take(RestoreContext ctx, unix_sk_entry e)
    {
        // Made in the tree's network namespace (abstract names and sock_diag are per namespace).
        _made ??= Namespaces.NetNamespace.Of(ctx) is { } netns ? NetNamespaces.Run(netns, () => Build(ctx)) : Build(ctx);
        if (!_made.Remove(e.Ino, out var fd))
            throw new CrispException($"unix socket {e.Ino}: opened twice or not made");
        return fd;
    }

    private static Dictionary<uint, UnixFd> Build(RestoreContext ctx)
    {
        var fileList = ctx.Images.ReadAll<file_entry>(ImageFile.Files);
        var files = fileList.ToDictionary(f => f.Id);
        var entries = fileList.Where(f => f.Usk is not null).Select(f => f.Usk).ToList();
        // Peers outside the tree (--ext-unix-sk) are not made: their sockets are connected to their names.
        var external = entries.Where(e => (e.Uflags & UnixSocketFile.USK_EXTERN) != 0).ToDictionary(e => e.Ino);
        if (external.Count > 0 && !ctx.Options.ExtUnixSk)
            throw new CrispException($"unix socket {external.Keys.First()}: the images hold a socket connected outside the dumped tree; restore it with --ext-unix-sk");
        var all = entries.Where(e => !external.ContainsKey(e.Ino)).ToDictionary(e => e.Ino);
        var queues = SkQueuesDump.Read(ctx.Images);
        var made = new Dictionary<uint, UnixFd>();
        var standIns = new Dictionary<uint, UnixFd>();
        var unlinkAfter = new DeletedNames();
        try
        {
            // 1. Named sockets that are not the accepting side of a connection: bound, listening.
            foreach (var e in all.Values.Where(e => e.Name.Length > 0 && !IsAccepted(e, all)))
            {
                var fd = New(e);
                BindName(fd.Fd, e, unlinkAfter);
                if (e.State == UnixSocketFile.TCP_LISTEN)
                    Listen(fd.Fd, (int)Math.Max(e.Backlog, 1));
                made[e.Ino] = fd;
            }
            // 2. Connections.
            foreach (var e in all.Values.Where(e => !made.ContainsKey(e.Ino)))
            {
                if (made.ContainsKey(e.Ino))
                    continue;
                all.TryGetValue(e.Peer, out var peer);
                bool mutual = peer is not null && peer.Peer == e.Ino;
                if (mutual && !made.ContainsKey(peer!.Ino) && e.Name.Length == 0 && peer.Name.Length == 0)
                {
                    var (a, b) = Crisp.Linux.Sockets.SocketPair((int)e.Type);
                    made[e.Ino] = a;
                    made[peer.Ino] = b;
                }
                else if (mutual && e.Type != Crisp.Linux.Sockets.SOCK_DGRAM)
                {
                    // e is the accepted side (it carries the listener's name) or its client.
                    var (accepted, client) = IsAccepted(e, all) ? (e, peer!) : (peer!, e);
                    if (!made.TryGetValue(client.Ino, out var c))
                        made[client.Ino] = c = New(client);
                    made[accepted.Ino] = ConnectAndAccept(c.Fd, accepted, all, made, unlinkAfter);
                }
                else if (IsOrphan(e, all))
                {
                    // The peer had closed (unix_diag reports no peer, or one not in the checkpoint): a
                    // stand-in sends the queued data, then goes away, leaving the socket shut down.
                    var (a, b) = Crisp.Linux.Sockets.SocketPair((int)e.Type);
                    made[e.Ino] = a;
                    standIns[e.Ino] = b;
                }
                else
                    made[e.Ino] = New(e);
            }
            // 2b. Connections not yet accepted: clients connect to their listener again in files.img's order,
            // which the dump made the accept queue's.
            foreach (var e in entries.Where(e => all.ContainsKey(e.Ino) && IsPending(e, all)))
                Connect(made[e.Ino].Fd, UnixAddress(FullName(all[e.Peer])));
            // 3. Datagram sockets connected to a named one.
            foreach (var e in all.Values.Where(e => e.Type == Crisp.Linux.Sockets.SOCK_DGRAM && e.Peer != 0))
                if ((all.TryGetValue(e.Peer, out var peer) || external.TryGetValue(e.Peer, out peer)) && peer.Name.Length > 0)
                    ConnectTo(made[e.Ino].Fd, e, peer);
            // 4. Queued data, sent by whoever could have sent it.
            var byFileId = all.Values.ToDictionary(e => e.Id, e => e.Ino);
            int InFlight(uint fileId) =>
                byFileId.TryGetValue(fileId, out uint ino) ? made[ino].Fd
                : files.TryGetValue(fileId, out var f) ? InFlightFiles.Open(ctx, f)
                : throw new CrispException($"sk-queues.img: a queued message carries file {fileId}, which files.img lacks");
            foreach (var e in all.Values)
                if (queues.TryGetValue(e.Id, out var msgs))
                    Refill(e, msgs, all, made, standIns, InFlight);
            foreach (var s in standIns.Values)
                s.Dispose();
            standIns.Clear();
            // 5. Options, shutdown, file flags and owner.
            foreach (var e in all.Values)
            {
                int fd = made[e.Ino].Fd;
                SocketOptions.Restore(fd, e.Opts);
                if (e.HasShutdown && e.Shutdown != sk_shutdown.None && !IsOrphan(e, all))
                    Shutdown(fd, e.Shutdown switch { sk_shutdown.Read => 0, sk_shutdown.Write => 1, _ => 2 });
                FdOps.SetStatusFlags(fd, (int)e.Flags);
                try { Fown.Restore(ctx, fd, e.Fown); }
                catch (SyscallException x) { ctx.Log.Warn($"unix socket {e.Ino}: owner not restored: {x.Message}"); }
            }
            unlinkAfter.Finish();
            ctx.Log.Debug($"unix sockets: {made.Count} made");
            return made;
        }
        catch (Exception x)
        {
            foreach (var fd in made.Values.Concat(standIns.Values))
                fd.Dispose();
            unlinkAfter.Finish(ctx.Log);
            if (x is SyscallException s)
                throw new CrispException($"unix sockets: {s.Message}");
            throw;
        }
    }

    /// <summary>A datagram socket connected to its named peer again; a failure names both (an outside peer
    /// may be gone, e.g. no syslog daemon on this host).</summary>
    private static void ConnectTo(int fd, unix_sk_entry e, unix_sk_entry peer)
    {
        try
        {
            Connect(fd, UnixAddress(peer.Name.Span));
        }
        catch (SyscallException x)
        {
            string name = Encoding.UTF8.GetString(peer.Name.Span).TrimEnd('\0');
            string outside = (peer.Uflags & UnixSocketFile.USK_EXTERN) != 0 ? "outside " : "";
            throw new CrispException($"unix socket {e.Ino}: reconnecting to its {outside}peer {name}: {x.Message}");
        }
    }

    private static bool IsOrphan(unix_sk_entry e, Dictionary<uint, unix_sk_entry> all) =>
        e.State == UnixSocketFile.TCP_ESTABLISHED && e.Type != Crisp.Linux.Sockets.SOCK_DGRAM && !all.ContainsKey(e.Peer);

    private static UnixFd New(unix_sk_entry e) => Socket(AF_UNIX, (int)e.Type);

    /// <summary>A client whose peer is a listener: a connection the listener had not accepted (<see cref="PendingConnections"/>).</summary>
    private static bool IsPending(unix_sk_entry e, Dictionary<uint, unix_sk_entry> all) =>
        e.State == UnixSocketFile.TCP_ESTABLISHED && e.Type != Crisp.Linux.Sockets.SOCK_DGRAM
        && all.TryGetValue(e.Peer, out var p) && p.State == UnixSocketFile.TCP_LISTEN;

    /// <summary>The name to bind or connect to: abstract as it is, a relative path joined to its name_dir
    /// (crisp's cwd is not the task's).</summary>
    private static byte[] FullName(unix_sk_entry e)
    {
        var name = e.Name.Span;
        if (name[0] == 0)
            return name.ToArray();
        string path = Encoding.UTF8.GetString(name).TrimEnd('\0');
        return Encoding.UTF8.GetBytes(path.StartsWith('/') ? path : Path.Combine(e.NameDir ?? "/", path));
    }

    /// <summary>An established stream/seqpacket socket whose name is its listener's: the accepted side.</summary>
    private static bool IsAccepted(unix_sk_entry e, Dictionary<uint, unix_sk_entry> all) =>
        e.State == UnixSocketFile.TCP_ESTABLISHED && e.Type != Crisp.Linux.Sockets.SOCK_DGRAM && e.Name.Length > 0
        && all.TryGetValue(e.Peer, out var p) && p.Peer == e.Ino
        && (all.Values.Any(l => l.State == UnixSocketFile.TCP_LISTEN && l.Name.Equals(e.Name)) || p.Name.Length == 0);

    /// <summary>Connects <paramref name="client"/> to the listener named as <paramref name="accepted"/>
    /// (a stand-in listener when the checkpoint has none) and returns the accepted socket.</summary>
    private static UnixFd ConnectAndAccept(int client, unix_sk_entry accepted, Dictionary<uint, unix_sk_entry> all,
        Dictionary<uint, UnixFd> made, DeletedNames unlinkAfter)
    {
        var listener = all.Values.FirstOrDefault(l => l.State == UnixSocketFile.TCP_LISTEN && l.Name.Equals(accepted.Name));
        UnixFd? standIn = null;
        int lfd;
        if (listener is not null)
            lfd = made[listener.Ino].Fd;
        else
        {
            standIn = New(accepted);
            BindName(standIn.Fd, accepted, unlinkAfter);
            Listen(standIn.Fd, 1);
            lfd = standIn.Fd;
        }
        using (standIn)
        {
            Connect(client, UnixAddress(accepted.Name.Span));
            return Accept(lfd);
        }
    }

    /// <summary>Binds to the socket's name. A stale socket file left at the path by the dumped (now dead)
    /// socket is removed first; an unlinked one is unlinked again once everything is connected.</summary>
    private static void BindName(int fd, unix_sk_entry e, DeletedNames unlinkAfter)
    {
        var name = e.Name.Span;
        if (name[0] == 0)
        {
            Bind(fd, UnixAddress(name));
            return;
        }
        string path = Encoding.UTF8.GetString(name).TrimEnd('\0');
        string full = path.StartsWith('/') ? path : Path.Combine(e.NameDir ?? "/", path);
        // A deleted socket's path may hold something new (another socket too): moved aside, never removed.
        if (e.Deleted)
            unlinkAfter.ParkOccupant(full);
        else if (IsSocket(full))
            File.Delete(full);
        // A relative name is bound by its full path: crisp's cwd is not the task's.
        Bind(fd, UnixAddress(Encoding.UTF8.GetBytes(full)));
        if (e.FilePerms is { } perms)
        {
            File.SetUnixFileMode(full, (UnixFileMode)(perms.Mode & 0xfff));
            Chown(full, perms.Uid, perms.Gid);
        }
        if (e.Deleted)
            unlinkAfter.Unlink(full);
    }

    /// <summary>Names of sockets that were deleted at the dump: bound again (the kernel keeps the name a socket
    /// was bound with) and unlinked once everything is connected. Whatever took such a path since (a FIFO, a
    /// file, a newer socket) is moved aside meanwhile and put back after, as CRIU's bind_on_deleted does.</summary>
    private sealed class DeletedNames
    {
        private const string ParkedSuffix = ".crisp-sk-ghost";
        private readonly List<string> _unlink = [];
        private readonly List<string> _parked = [];

        public void Unlink(string path) => _unlink.Add(path);

        public void ParkOccupant(string path)
        {
            if (!Exists(path))
                return;
            string parked = path + ParkedSuffix;
            if (Exists(parked))
                throw new CrispException($"unix socket name {path}: {parked} is in the way of moving what holds that path aside");
            File.Move(path, parked);
            _parked.Add(path);
        }

        /// <summary>The socket files go, then what was moved aside comes back; after a failure (a log given)
        /// every step is tried and a failing one logged.</summary>
        public void Finish(Log? failed = null)
        {
            foreach (var p in _unlink)
                Try(() => File.Delete(p), $"removing {p}", failed);
            foreach (var p in _parked)
                Try(() => File.Move(p + ParkedSuffix, p), $"putting {p} back", failed);
            _unlink.Clear();
            _parked.Clear();
        }

        private static void Try(Action step, string what, Log? failed)
        {
            if (failed is null)
            {
                step();
                return;
            }
            try { step(); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { failed.Error($"{what}: {e.Message}"); }
        }

        private static bool Exists(string path)
        {
            try
            {
                using var f = FileIo.Open(path, FileIo.O_PATH | FileIo.O_NOFOLLOW);
                return true;
            }
            catch (SyscallException e) when (e.Errno == Errnos.ENOENT)
            {
                return false;
            }
        }
    }

    private static bool IsSocket(string path)
    {
        try
        {
            using var f = FileIo.Open(path, FileIo.O_PATH | FileIo.O_NOFOLLOW);
            return FdOps.Stat(f.Fd).Type == FileStat.S_IFSOCK;
        }
        catch (SyscallException e) when (e.Errno == Errnos.ENOENT)
        {
            return false;
        }
    }

    private static unsafe void Chown(string path, uint uid, uint gid)
    {
        var bytes = Encoding.UTF8.GetBytes(path + "\0");
        fixed (byte* p = bytes)
            RawSyscall.Call($"lchown({path})", 94, (long)p, uid, gid);
    }

    /// <summary>Writes a socket's queued messages back in order, from its peer (a stream's only possible
    /// sender) or, for a datagram socket, from its peer or a fresh socket sending to its name. The
    /// sender's buffer is raised meanwhile: unread unix data is charged to the sender.</summary>
    private static void Refill(unix_sk_entry e, List<QueuedPacket> msgs, Dictionary<uint, unix_sk_entry> all,
        Dictionary<uint, UnixFd> made, Dictionary<uint, UnixFd> standIns, Func<uint, int> inFlight)
    {
        UnixFd? temp = null;
        int sender;
        byte[] to = [];
        if (e.Type != Crisp.Linux.Sockets.SOCK_DGRAM || (all.TryGetValue(e.Peer, out var p) && p.Peer == e.Ino))
        {
            if (made.TryGetValue(e.Peer, out var peerFd) && all.ContainsKey(e.Peer))
                sender = peerFd.Fd;
            else
                sender = standIns.TryGetValue(e.Ino, out var standIn) ? standIn.Fd : throw new CrispException($"unix socket {e.Ino}: no sender for its {msgs.Count} queued message(s)");
        }
        else
        {
            if (e.Name.Length == 0)
                throw new CrispException($"unix socket {e.Ino}: queued datagrams but no name to send them to");
            to = UnixAddress(e.Name.Span);
            if (all.TryGetValue(e.Peer, out var peer) && made.TryGetValue(peer.Ino, out var pf))
                sender = pf.Fd;
            else
                sender = (temp = Socket(AF_UNIX, Crisp.Linux.Sockets.SOCK_DGRAM)).Fd;
        }
        using (temp)
        {
            int oldSnd = GetInt(sender, SOL_SOCKET, SO_SNDBUF);
            long total = msgs.Sum(m => (long)m.Data.Length + 1024);
            SetInt(sender, SOL_SOCKET, SO_SNDBUFFORCE, (int)Math.Min(int.MaxValue / 2, Math.Max(total, oldSnd)));
            foreach (var m in msgs)
            {
                // The fds go with the first bytes: the kernel keeps them with that one buffer.
                long sent = SocketQueue.Send(sender, m.Data, m.Rights.Select(inFlight).ToArray(), to);
                while (sent < m.Data.Length && e.Type == Crisp.Linux.Sockets.SOCK_STREAM)
                    sent += Send(sender, m.Data.AsSpan((int)sent), MSG_DONTWAIT, to);
            }
            SetInt(sender, SOL_SOCKET, SO_SNDBUFFORCE, oldSnd / 2);
        }
    }
}
