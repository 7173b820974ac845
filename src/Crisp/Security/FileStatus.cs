using System.Runtime.InteropServices;
using Crisp.Linux;

namespace Crisp.Security;

/// <summary>Owner, group and mode of a path itself (a symlink is not followed), by statx: .NET reports the
/// mode but not the owner.</summary>
public readonly partial record struct FileStatus(uint Uid, uint Gid, uint Mode)
{
    private const int AT_FDCWD = -100, AT_SYMLINK_NOFOLLOW = 0x100, AT_EMPTY_PATH = 0x1000;
    private const uint STATX_TYPE = 1, STATX_MODE = 2, STATX_UID = 8, STATX_GID = 16;
    public const uint S_IFMT = 0xF000, S_IFREG = 0x8000, S_IFDIR = 0x4000, S_IFLNK = 0xA000, S_IFCHR = 0x2000;

    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int statx(int dirfd, string path, int flags, uint mask, byte* buf);

    public bool IsRegular => (Mode & S_IFMT) == S_IFREG;
    public bool IsDirectory => (Mode & S_IFMT) == S_IFDIR;
    public uint Permissions => Mode & 0xFFF;

    /// <summary>Null when nothing is at <paramref name="path"/> (or a symlink followed leads nowhere).</summary>
    public static FileStatus? TryOf(string path, bool followSymlink = false) => TryOf(AT_FDCWD, path, followSymlink ? 0 : AT_SYMLINK_NOFOLLOW);

    public static FileStatus Of(string path, bool followSymlink = false) => Of(AT_FDCWD, path, followSymlink ? 0 : AT_SYMLINK_NOFOLLOW);

    /// <summary><paramref name="name"/> in the directory open as <paramref name="dirFd"/>; null when nothing is there.</summary>
    public static FileStatus? TryAt(Linux.UnixFd dirFd, string name, bool followSymlink = false) =>
        TryOf(dirFd.Fd, name, followSymlink ? 0 : AT_SYMLINK_NOFOLLOW);

    /// <summary>What the descriptor itself is open on (fstat: no path to race with).</summary>
    public static FileStatus OfHandle(Linux.UnixFd fd) => Of(fd.Fd, "", AT_EMPTY_PATH);

    private static FileStatus Of(int dirFd, string path, int flags) =>
        TryOf(dirFd, path, flags, out int errno) ?? throw new SyscallException($"statx({path})", errno);

    /// <summary>Null where nothing is there (ENOENT, ENOTDIR), without an exception: every image a dump creates is
    /// checked first, and a thrown exception costs the native binary a stack unwind (~0.1 ms each).</summary>
    private static FileStatus? TryOf(int dirFd, string path, int flags)
    {
        var status = TryOf(dirFd, path, flags, out int errno);
        return status is not null || errno is 2 or 20 ? status : throw new SyscallException($"statx({path})", errno);
    }

    private static unsafe FileStatus? TryOf(int dirFd, string path, int flags, out int errno)
    {
        // struct statx: stx_uid at 20, stx_gid at 24, stx_mode (u16) at 28; 256 bytes in all.
        byte* buf = stackalloc byte[256];
        errno = 0;
        if (statx(dirFd, path, flags, STATX_TYPE | STATX_MODE | STATX_UID | STATX_GID, buf) != 0)
        {
            errno = Marshal.GetLastPInvokeError();
            return null;
        }
        return new FileStatus(*(uint*)(buf + 20), *(uint*)(buf + 24), *(ushort*)(buf + 28));
    }
}
