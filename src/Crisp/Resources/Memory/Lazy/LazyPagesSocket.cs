using System.Buffers.Binary;
using System.Text;
using Crisp.Linux;

namespace Crisp.Resources.Memory.Lazy;

/// <summary>The unix socket between `restore --lazy-pages` and the lazy-pages daemon: `lazy-pages.socket` in the
/// work dir (CRIU's name and place). Per task the restore sends its pid as an int32, then a message carrying its
/// userfaultfd by SCM_RIGHTS (crisp adds a pidfd of the task as a second fd: the daemon kills the tree through it
/// when the pages cannot come); when the whole tree runs it sends int32 0x52535446 ("ReSTore Finished").</summary>
public static class LazyPagesSocket
{
    public const string Name = "lazy-pages.socket";
    public const int RestoreFinished = 0x52535446;

    /// <summary>sockaddr_un for <paramref name="path"/> (at most 107 bytes).</summary>
    public static byte[] Address(string path)
    {
        var name = Encoding.UTF8.GetBytes(path);
        if (name.Length > 107)
            throw new CrispException($"{path}: too long for a unix socket (use a shorter -W work dir)");
        return SocketCalls.UnixAddress(name);
    }
}

/// <summary>The restore's end of <see cref="LazyPagesSocket"/>: connected before anything is created (no daemon: the
/// restore fails untouched); each task's userfaultfd handed over as its memory is restored; "finished" once the tree
/// runs. Disposed without <see cref="Finished"/> (a failed restore), the daemon sees the restore end and gives up.</summary>
public sealed class LazyPagesClient : IDisposable
{
    private readonly UnixFd _socket;

    private LazyPagesClient(UnixFd socket, string path)
    {
        _socket = socket;
        Path = path;
    }

    public string Path { get; }

    public static LazyPagesClient Connect(string path)
    {
        var socket = SocketCalls.Socket(SocketCalls.AF_UNIX, Sockets.SOCK_STREAM | Sockets.SOCK_CLOEXEC);
        try
        {
            SocketCalls.Connect(socket.Fd, LazyPagesSocket.Address(path));
        }
        catch (SyscallException e)
        {
            socket.Dispose();
            throw new CrispException($"restore --lazy-pages: no lazy-pages daemon at {path} ({e.Message}): start `crisp lazy-pages` first");
        }
        return new LazyPagesClient(socket, path);
    }

    /// <summary>Hands task <paramref name="pid"/>'s userfaultfd (and a pidfd of the task) to the daemon.</summary>
    public void Send(int pid, int uffd, int pidfd)
    {
        Span<byte> word = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(word, pid);
        try
        {
            SocketCalls.Send(_socket.Fd, word, 0);
            Sockets.SendFds(_socket.Fd, [uffd, pidfd]);
        }
        catch (SyscallException e)
        {
            throw new CrispException($"restore --lazy-pages: the lazy-pages daemon at {Path} went away ({e.Message})");
        }
    }

    /// <summary>The tree runs: the daemon may push the pages not faulted yet.</summary>
    public void Finished()
    {
        Span<byte> word = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(word, LazyPagesSocket.RestoreFinished);
        try
        {
            SocketCalls.Send(_socket.Fd, word, 0);
        }
        catch (SyscallException e)
        {
            throw new CrispException($"restore --lazy-pages: the lazy-pages daemon at {Path} went away ({e.Message})");
        }
    }

    public void Dispose() => _socket.Dispose();
}
