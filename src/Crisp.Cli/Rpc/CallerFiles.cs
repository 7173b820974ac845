using System.Runtime.InteropServices;
using Crisp.Linux.Proc;
using Crisp.Linux;

namespace Crisp.Cli.Rpc;

/// <summary>The RPC client names directories and files by its own descriptor numbers (images_dir_fd, work_dir_fd,
/// status_fd): crisp finds the client by SO_PEERCRED and reaches them through /proc/PID/fd/N, as CRIU does.</summary>
public static unsafe partial class CallerFiles
{
    private const int SO_PEERCRED = 17, AT_FDCWD = -100, STATX_TYPE = 1, STATX_INO = 0x100;

    /// <summary>The pid of the process at the other end of <paramref name="socket"/> (its pid when it connected or
    /// made the socket pair).</summary>
    public static int PeerPid(int socket)
    {
        Span<byte> ucred = stackalloc byte[12];   // struct ucred { pid_t pid; uid_t uid; gid_t gid; }
        SocketCalls.Get(socket, SocketCalls.SOL_SOCKET, SO_PEERCRED, ucred);
        return MemoryMarshal.Read<int>(ucred);
    }

    /// <summary>The directory the caller holds open as <paramref name="fd"/>, as a path crisp can use: the path the
    /// caller's link names when it is the same directory here (same device and inode), else the same path under the
    /// caller's root, else the /proc link itself. <paramref name="field"/> names the option in errors.</summary>
    public static string Directory(int callerPid, int fd, string field)
    {
        string link = Procfs.Host.Path(callerPid, $"fd/{fd}");
        var id = Identity(link) ?? throw new CrispException($"criu_opts.{field} {fd} is not an open descriptor of the caller (pid {callerPid})");
        if (!id.IsDirectory)
            throw new CrispException($"criu_opts.{field} {fd} of the caller (pid {callerPid}) is not a directory");
        string? target = null;
        try { target = new FileInfo(link).LinkTarget; }
        catch (IOException) { }
        if (target is not null && target.StartsWith('/'))
        {
            foreach (string candidate in new[] { target, Procfs.Host.Path(callerPid, $"root{target}") })
                if (Identity(candidate) is { } c && c.Dev == id.Dev && c.Ino == id.Ino)
                    return candidate;
        }
        return link;
    }

    /// <summary>The directory the caller holds open as <paramref name="fd"/>, opened here through its /proc link: the
    /// same directory (the link is the caller's open file, not a path walked again), whatever was renamed since.</summary>
    public static UnixFd OpenDirectory(int callerPid, int fd, string field)
    {
        try
        {
            return FileIo.Open(Procfs.Host.Path(callerPid, $"fd/{fd}"), FileIo.O_RDONLY | FileIo.O_DIRECTORY);
        }
        catch (SyscallException e)
        {
            throw new CrispException($"criu_opts.{field} {fd}: can't open the caller's directory (pid {callerPid}): {Errnos.Describe(e.Errno)}");
        }
    }

    /// <summary>Opens the caller's descriptor <paramref name="fd"/> anew for writing (status_fd); crisp owns the result.</summary>
    public static int OpenForWriting(int callerPid, int fd, string field)
    {
        try
        {
            return FileIo.Open(Procfs.Host.Path(callerPid, $"fd/{fd}"), FileIo.O_WRONLY).Detach();
        }
        catch (SyscallException e)
        {
            throw new CrispException($"criu_opts.{field} {fd}: can't open the caller's descriptor (pid {callerPid}): {Errnos.Describe(e.Errno)}");
        }
    }

    private readonly record struct FileId(ulong Dev, ulong Ino, bool IsDirectory);

    /// <summary>Device, inode and type of what <paramref name="path"/> leads to (links followed); null when nothing.</summary>
    private static FileId? Identity(string path)
    {
        byte* buf = stackalloc byte[256];
        if (statx(AT_FDCWD, path, 0, STATX_TYPE | STATX_INO, buf) != 0)
            return null;
        // struct statx: stx_mode (u16) at 28, stx_ino at 32, stx_dev_major/minor at 136/140.
        ushort mode = *(ushort*)(buf + 28);
        ulong dev = ((ulong)*(uint*)(buf + 136) << 32) | *(uint*)(buf + 140);
        return new FileId(dev, *(ulong*)(buf + 32), (mode & 0xF000) == 0x4000);
    }

    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int statx(int dirfd, string path, int flags, uint mask, byte* buf);
}
