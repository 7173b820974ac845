using Crisp.Linux;

namespace Crisp;

/// <summary>CRIU's work dir (-W, by default the images dir): where a run's relative paths — the log file, pidfile,
/// stats files, action scripts, keys and plugin libraries — are taken from, and where action scripts run. Held
/// open as a directory fd (the RPC hands one over) with its path for messages. crisp never changes its own
/// current directory, so one process can serve one request after another (and, later, side by side).</summary>
public sealed class WorkDirectory : IDisposable
{
    /// <summary>The directory, open O_PATH: it stays the same directory for the run.</summary>
    public required UnixFd Handle { get; init; }

    /// <summary>Its full path, for messages and for the paths resolved in it.</summary>
    public required string Path { get; init; }

    /// <summary>Opens <paramref name="path"/> (relative to crisp's current directory); a missing one is CRIU's error.</summary>
    public static WorkDirectory Open(string path)
    {
        string full = System.IO.Path.GetFullPath(path);
        try
        {
            return new WorkDirectory { Handle = FileIo.Open(full, FileIo.O_PATH | FileIo.O_DIRECTORY | FileIo.O_CLOEXEC), Path = full };
        }
        catch (SyscallException)
        {
            throw new CrispException($"Can't change directory to {path}: No such file or directory");
        }
    }

    /// <summary><paramref name="path"/> as a full path: a relative one is taken from the work dir.</summary>
    public string Resolve(string path) => System.IO.Path.GetFullPath(path, Path);

    public void Dispose() => Handle.Dispose();
}
