using System.Runtime.InteropServices;
using Crisp.Linux;

namespace Crisp.Security;

/// <summary>Owner, group and mode of a path itself (a symlink is not followed), by statx: .NET reports the
/// mode but not the owner.</summary>
public readonly partial record struct FileStatus(uint Uid, uint Gid, uint Mode)
{
    private const int AT_FDCWD = -100, AT_SYMLINK_NOFOLLOW = 0x100;
    private const uint STATX_TYPE = 1, STATX_MODE = 2, STATX_UID = 8, STATX_GID = 16;
    public const uint S_IFMT = 0xF000, S_IFREG = 0x8000, S_IFDIR = 0x4000, S_IFLNK = 0xA000, S_IFCHR = 0x2000;

    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int statx(int dirfd, string path, int flags, uint mask, byte* buf);

    public bool IsRegular => (Mode & S_IFMT) == S_IFREG;
    public bool IsDirectory => (Mode & S_IFMT) == S_IFDIR;
    public uint Permissions => Mode & 0xFFF;

    /// <summary>Null when nothing is at <paramref name="path"/> (or a symlink followed leads nowhere).</summary>
    public static FileStatus? TryOf(string path, bool followSymlink = false)
    {
        try
        {
            return Of(path, followSymlink);
        }
        catch (SyscallException e) when (e.Errno is 2 or 20)   // ENOENT, ENOTDIR
        {
            return null;
        }
    }

    public static unsafe FileStatus Of(string path, bool followSymlink = false)
    {
        // struct statx: stx_uid at 20, stx_gid at 24, stx_mode (u16) at 28; 256 bytes in all.
        byte* buf = stackalloc byte[256];
        if (statx(AT_FDCWD, path, followSymlink ? 0 : AT_SYMLINK_NOFOLLOW, STATX_TYPE | STATX_MODE | STATX_UID | STATX_GID, buf) != 0)
            throw new SyscallException($"statx({path})", Marshal.GetLastPInvokeError());
        return new FileStatus(*(uint*)(buf + 20), *(uint*)(buf + 24), *(ushort*)(buf + 28));
    }
}
