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
public sealed class MigrationTarget(MigrationChannel channel, string dir, Security.ImageModes modes, Func<RestoreOptions, RestoredTree> restore, Log log)
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
        try
        {
            _tree = restore(new RestoreOptions
            {
                ImagesDir = images,
                Detached = true,
                TcpEstablished = (flags & RestoreFlags.TcpEstablished) != 0,
            });
            if (!Alive(_tree.RootPid))
                throw new CrispException($"receive: the restored tree (root {_tree.RootPid}) exited at once");
        }
        catch (CrispException e)
        {
            // The source must know, so that its tree runs on; then this session fails with the same line.
            try { channel.Send(MigrationFrame.Failed, e.Message); }
            catch (CrispException) { }
            throw;
        }
        var pid = new byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(pid, _tree.RootPid);
        channel.Send(MigrationFrame.Running, pid);
        log.Info($"receive: the restored tree runs (root {_tree.RootPid}); waiting for the source to let its own go");
    }

    private static bool Alive(int pid)
    {
        try { return Linux.Proc.ProcStat.Read(pid).State is not ('Z' or 'X'); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return false; }
    }
}
