using System.Buffers.Binary;
using System.Text;
using Crisp.Restore;

namespace Crisp.Migration;

/// <summary>The target end of `crisp migrate` (`crisp receive`): one connection's checkpoint directories are written
/// under the receive directory as they arrive (pre1, pre2, …, final, each `parent` link pointing at the one before),
/// the final one is restored when the source asks, and "running" goes back once the restored tree runs. The session
/// counts only when the source then says its tree is gone: a connection that ends before — garbage, a source that
/// died, a restore that failed — kills a tree restored here and removes every directory the session wrote, so no
/// half-received checkpoint is left to restore from.</summary>
/// <remarks>--lazy: the source opens a second connection for the pages it left in its stopped tree
/// (<paramref name="acceptPages"/> takes it); a lazy-pages daemon on a thread of this process fills the restored tree
/// from it and from the pre-dumps received, and "running" goes back as soon as the tree runs; the session waits for
/// the last page, then for the source's last word. Pages that stop coming kill the restored tree (the daemon's
/// rule) and fail the session in one line.</remarks>
public sealed class MigrationTarget(MigrationChannel channel, string dir, Security.ImageModes modes, Func<RestoreOptions, RestoredTree> restore, Log log,
    Func<MigrationChannel>? acceptPages = null)
{
    private readonly List<string> _made = [];
    private string? _current;
    private RestoredTree? _tree;

    /// <summary>Serves the session; returns the restored root's pid.</summary>
    public int Run()
    {
        try
        {
            channel.ExpectHello();
            channel.SendHello();
            return Serve();
        }
        catch
        {
            if (_tree is { } tree)
            {
                log.Info($"receive: killing the restored tree (root {tree.RootPid}): the source did not complete the migration");
                Linux.Signals.TryKill(tree.RootPid);
                tree.WaitForExit();
            }
            foreach (string d in Enumerable.Reverse(_made))
            {
                try { Directory.Delete(d, recursive: true); }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException) { log.Warn($"receive: cannot remove {d}: {e.Message}"); }
            }
            throw;
        }
    }

    private int Serve()
    {
        for (;;)
        {
            var (type, payload) = channel.Receive(_tree is null ? "the next images" : "the source's last word");
            switch (type)
            {
                case MigrationFrame.Directory when _tree is null:
                    BeginDirectory(Name(Encoding.UTF8.GetString(payload)));
                    break;
                case MigrationFrame.File when _current is not null && payload.Length > 8 && _tree is null:
                    ReceiveFile(Name(Encoding.UTF8.GetString(payload.AsSpan(8))), (long)BinaryPrimitives.ReadUInt64LittleEndian(payload));
                    break;
                case MigrationFrame.Link when _current is not null && _tree is null:
                    MakeLink(Encoding.UTF8.GetString(payload));
                    break;
                case MigrationFrame.Restore when payload.Length > 4 && _tree is null:
                    Restore((RestoreFlags)BinaryPrimitives.ReadUInt32LittleEndian(payload), Name(Encoding.UTF8.GetString(payload.AsSpan(4))));
                    break;
                case MigrationFrame.Done when _tree is not null:
                    log.Info($"receive: the source tree is gone; the restored tree (root {_tree.RootPid}) is the tree now");
                    return _tree.RootPid;
                default:
                    throw new CrispException($"{channel.Peer}: unexpected {type} frame from the source");
            }
        }
    }

    /// <summary>A plain name (no path): the source cannot write outside the receive directory.</summary>
    private string Name(string name) =>
        name.Length is > 0 and <= 255 && name is not ("." or "..") && !name.Contains('/') && !name.Contains('\0')
            ? name : throw new CrispException($"{channel.Peer}: bad name '{name}' from the source");

    private void BeginDirectory(string name)
    {
        string path = Path.Combine(dir, name);
        if (Directory.Exists(path) || File.Exists(path))
            throw new CrispException($"receive: {path} already exists: a receive directory takes one migration");
        Security.PrivateFile.CreateDirectory(path, modes.Directory);
        _made.Add(path);
        _current = path;
        log.Debug($"receive: images of {name}");
    }

    private void ReceiveFile(string name, long size)
    {
        using var file = new FileStream(Path.Combine(_current!, name), new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.Write,
            UnixCreateMode = modes.File,
            BufferSize = 0,
        });
        channel.ReceiveFileData(file, size);
    }

    /// <summary>Only a chain's `parent` link, to a directory received earlier in this session.</summary>
    private void MakeLink(string text)
    {
        int nul = text.IndexOf('\0');
        string name = nul < 0 ? "" : text[..nul], target = nul < 0 ? "" : text[(nul + 1)..];
        if (name != Resources.Memory.MemoryChain.ParentLink || !target.StartsWith("../", StringComparison.Ordinal)
            || !_made.Contains(Path.Combine(dir, Name(target[3..]))))
            throw new CrispException($"{channel.Peer}: link '{name}' -> '{target}' is not the parent link of a chain received here");
        File.CreateSymbolicLink(Path.Combine(_current!, name), target);
    }

    private void Restore(RestoreFlags flags, string name)
    {
        string images = Path.Combine(dir, name);
        if (!_made.Contains(images))
            throw new CrispException($"{channel.Peer}: asked to restore {name}, which it did not send");
        if ((flags & ~(RestoreFlags.TcpEstablished | RestoreFlags.Lazy)) != 0)
            throw new CrispException($"{channel.Peer}: restore flags 0x{(uint)flags:x} are not known here (a newer crisp at the source?)");
        bool lazy = (flags & RestoreFlags.Lazy) != 0;
        using var pages = lazy ? LazyPages(images) : null;
        try
        {
            _tree = restore(new RestoreOptions
            {
                ImagesDir = images,
                Detached = true,
                TcpEstablished = (flags & RestoreFlags.TcpEstablished) != 0,
                LazyPagesSocket = pages?.Socket,
            });
            if (!Alive(_tree.RootPid))
                throw new CrispException($"receive: the restored tree (root {_tree.RootPid}) exited at once");
        }
        catch (CrispException e)
        {
            // The source must know, so that its tree runs on; then this session fails with the same line.
            try { channel.Send(MigrationFrame.Failed, e.Message); }
            catch (CrispException) { }
            pages?.Abandon();
            throw;
        }
        var pid = new byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(pid, _tree.RootPid);
        channel.Send(MigrationFrame.Running, pid);
        if (pages is not null)
        {
            log.Info($"receive: the restored tree runs (root {_tree.RootPid}) while its pages come in");
            pages.Wait();
        }
        log.Info($"receive: the restored tree runs (root {_tree.RootPid}); waiting for the source to let its own go");
    }

    /// <summary>--lazy: the source's pages connection, and a lazy-pages daemon on it listening in the images.</summary>
    private LazyDaemonThread LazyPages(string images)
    {
        var pages = (acceptPages ?? throw new CrispException($"{channel.Peer}: a lazy restore, but no second connection can be taken here"))();
        try
        {
            pages.ExpectHello();
            pages.SendHello();
            var (type, _) = pages.Receive("the lazy pages connection's first frame");
            if (type != MigrationFrame.Pages)
                throw new CrispException($"{pages.Peer}: unexpected {type} frame on the lazy pages connection");
        }
        catch
        {
            pages.Dispose();
            throw;
        }
        return new LazyDaemonThread(images, pages, log);
    }

    /// <summary>crisp lazy-pages, on a thread: fed from the images here and from the source's pages connection.</summary>
    private sealed class LazyDaemonThread : IDisposable
    {
        private readonly Resources.Memory.Lazy.LazyPagesDaemon _daemon;
        private readonly Thread _thread;
        private readonly Log _log;
        private Exception? _failed;

        public LazyDaemonThread(string images, MigrationChannel pages, Log log)
        {
            _log = log;
            Socket = Path.Combine(images, Resources.Memory.Lazy.LazyPagesSocket.Name);
            var remote = new Images.Pages.SocketPageSource(new Images.PageServer.PageServerClient(pages.Stream, $"{pages.Peer.Replace("receive: ", "")} (migrate --lazy)", owned: true));
            Linux.UnixFd listener;
            try
            {
                _daemon = new Resources.Memory.Lazy.LazyPagesDaemon(Images.ImageDirectory.Open(images), remote, log);
                listener = Resources.Memory.Lazy.LazyPagesDaemon.Listen(Socket);
            }
            catch
            {
                remote.Dispose();   // the source's pages connection with it
                throw;
            }
            _thread = new Thread(() =>
            {
                try { _daemon.Run(listener); }
                catch (Exception e) { _failed = e; }
                finally
                {
                    listener.Dispose();
                    File.Delete(Socket);
                }
            }) { Name = "lazy pages", IsBackground = true };
            _thread.Start();
        }

        public string Socket { get; }

        /// <summary>Every page is in (the daemon's error, with the restored tree killed, otherwise).</summary>
        public void Wait()
        {
            _thread.Join();
            if (_failed is not null)
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(_failed).Throw();
            _log.Info($"receive: all {_daemon.TotalPages} pages in: {_daemon.FaultPages} on fault, {_daemon.PushedPages} pushed, " +
                $"{_daemon.CopiedWhenReleased} in when the tree started running");
        }

        /// <summary>The restore failed: a daemon still waiting for it is woken (it then kills whatever was handed to
        /// it) and its connection to the source closed.</summary>
        public void Abandon()
        {
            try
            {
                using var wake = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
                wake.Connect(new System.Net.Sockets.UnixDomainSocketEndPoint(Socket));
            }
            catch (System.Net.Sockets.SocketException) { }   // it had its connection already
            _thread.Join(TimeSpan.FromSeconds(30));
        }

        public void Dispose()
        {
            if (_thread.IsAlive)
                Abandon();
            _daemon.Dispose();
        }
    }

    private static bool Alive(int pid)
    {
        try { return Linux.Proc.ProcStat.Read(pid).State is not ('Z' or 'X'); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return false; }
    }
}
