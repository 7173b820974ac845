using System.Runtime.InteropServices;
using Crisp.Linux;
using Microsoft.Win32.SafeHandles;

namespace Crisp.Security;

/// <summary>Creates files and directories with an exact mode, set at creation (O_CREAT's mode), never
/// widened by the umask and never briefly open to others: a file that already exists is unlinked first
/// (a planted symlink is removed, not followed) and made anew with O_EXCL.</summary>
public static partial class PrivateFile
{
    [LibraryImport("libc", EntryPoint = "unlinkat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int unlinkat(int dirfd, string path, int flags);

    [LibraryImport("libc", EntryPoint = "fchmod", SetLastError = true)]
    private static partial int fchmod(int fd, uint mode);

    /// <summary>As <see cref="Create(string, UnixFileMode, int)"/>, for <paramref name="name"/> in the directory open as
    /// <paramref name="dir"/> (openat: the directory cannot be swapped under the dump between check and
    /// create). <paramref name="path"/> names it in messages.</summary>
    public static FileStream CreateAt(UnixFd dir, string name, string path, UnixFileMode mode, int bufferSize = 4096)
    {
        if (FileStatus.TryAt(dir, name) is { } st)
        {
            if (!st.IsRegular && (st.Mode & FileStatus.S_IFMT) != FileStatus.S_IFLNK)
                throw new CrispException($"{path}: exists and is not a regular file; crisp replaces only its own files");
            if (unlinkat(dir.Fd, name, 0) != 0 && Marshal.GetLastPInvokeError() != 2)
                throw new SyscallException($"unlinkat({path})", Marshal.GetLastPInvokeError());
        }
        using var fd = FileIo.OpenAt(dir.Fd, name, FileIo.O_WRONLY | FileIo.O_CREAT | FileIo.O_EXCL | FileIo.O_NOFOLLOW, (uint)mode);
        // The umask can only have removed bits; a mode chosen wider on purpose gets them back before any byte is written.
        SyscallException.Check(fchmod(fd.Fd, (uint)mode), $"fchmod({path})");
        return new FileStream(new SafeFileHandle(fd.Detach(), ownsHandle: true), FileAccess.Write, bufferSize);
    }

    /// <summary>A new file for writing with exactly <paramref name="mode"/>. What is there already is replaced when
    /// it is a regular file or a symlink; anything else (a device, a directory) is refused, never unlinked.</summary>
    public static FileStream Create(string path, UnixFileMode mode, int bufferSize = 4096)
    {
        if (FileStatus.TryOf(path) is { } st)
        {
            if (!st.IsRegular && (st.Mode & FileStatus.S_IFMT) != FileStatus.S_IFLNK)
                throw new CrispException($"{path}: exists and is not a regular file; crisp replaces only its own files");
            File.Delete(path);
        }
        var stream = new FileStream(path, new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.Write,
            Share = FileShare.Read,
            BufferSize = bufferSize,
            UnixCreateMode = mode,
        });
        // The umask can only have removed bits; a mode chosen wider on purpose gets them back before any byte is written.
        if (File.GetUnixFileMode(stream.SafeFileHandle) != mode)
            File.SetUnixFileMode(stream.SafeFileHandle, mode);
        return stream;
    }

    /// <summary>The log (-o FILE): a regular file (or none yet) is written as <see cref="Create"/> does, keeping
    /// a symlink the user made; anything else (/dev/null, /dev/stderr, a FIFO) is opened as it is.</summary>
    public static FileStream CreateLog(string path, UnixFileMode mode)
    {
        var st = FileStatus.TryOf(path, followSymlink: true);
        if (st is { IsRegular: false })
            return new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite);
        if (st is null)
            return Create(path, mode);
        var stream = new FileStream(path, FileMode.Truncate, FileAccess.Write, FileShare.Read);
        if (File.GetUnixFileMode(stream.SafeFileHandle) != mode)
            File.SetUnixFileMode(stream.SafeFileHandle, mode);   // emptied, not yet written: nothing shows
        return stream;
    }

    /// <summary>Writes a whole file with exactly <paramref name="mode"/>.</summary>
    public static void WriteAllBytes(string path, ReadOnlySpan<byte> data, UnixFileMode mode)
    {
        using var stream = Create(path, mode);
        stream.Write(data);
    }

    /// <summary>Creates <paramref name="path"/> (and missing parents) with <paramref name="mode"/>; returns
    /// false when it already existed (its mode is then the owner's choice and left alone).</summary>
    public static bool CreateDirectory(string path, UnixFileMode mode)
    {
        if (Directory.Exists(path))
            return false;
        Directory.CreateDirectory(path, mode);
        // Still empty: widening a mode the umask narrowed exposes nothing.
        if (File.GetUnixFileMode(path) != mode)
            File.SetUnixFileMode(path, mode);
        return true;
    }
}
