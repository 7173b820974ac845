using System.Runtime.InteropServices;

namespace Crisp.Linux;

/// <summary>open/openat/close/read/write/pread/pwrite/lseek. Reads and writes return what the kernel
/// did (possibly short); the *Exactly helpers loop.</summary>
public static unsafe partial class FileIo
{
    public const int O_RDONLY = 0, O_WRONLY = 1, O_RDWR = 2, O_ACCMODE = 3, O_CREAT = 0x40, O_EXCL = 0x80,
        O_NOCTTY = 0x100, O_TRUNC = 0x200, O_APPEND = 0x400, O_NONBLOCK = 0x800, O_DSYNC = 0x1000,
        O_ASYNC = 0x2000, O_DIRECT = 0x4000, O_LARGEFILE = 0x8000, O_DIRECTORY = 0x10000,
        O_NOFOLLOW = 0x20000, O_NOATIME = 0x40000, O_CLOEXEC = 0x80000, O_SYNC = 0x101000,
        O_PATH = 0x200000, O_TMPFILE = 0x410000;

    public const int AT_FDCWD = -100;
    public const int SEEK_SET = 0, SEEK_CUR = 1, SEEK_END = 2, SEEK_DATA = 3, SEEK_HOLE = 4;

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags, uint mode);

    [LibraryImport("libc", EntryPoint = "openat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int openat(int dirfd, string path, int flags, uint mode);

    [LibraryImport("libc", EntryPoint = "renameat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int renameat(int oldDirFd, string oldPath, int newDirFd, string newPath);

    [LibraryImport("libc", EntryPoint = "unlinkat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int unlinkat(int dirFd, string path, int flags);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int close(int fd);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    private static partial nint read(int fd, byte* buf, nuint count);

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    private static partial nint write(int fd, byte* buf, nuint count);

    [LibraryImport("libc", EntryPoint = "pread64", SetLastError = true)]
    private static partial nint pread(int fd, byte* buf, nuint count, long offset);

    [LibraryImport("libc", EntryPoint = "pwrite64", SetLastError = true)]
    private static partial nint pwrite(int fd, byte* buf, nuint count, long offset);

    [LibraryImport("libc", EntryPoint = "lseek64", SetLastError = true)]
    private static partial long lseek(int fd, long offset, int whence);

    [LibraryImport("libc", EntryPoint = "dup", SetLastError = true)]
    private static partial int dup(int fd);

    [LibraryImport("libc", EntryPoint = "ftruncate64", SetLastError = true)]
    private static partial int ftruncate(int fd, long length);

    [LibraryImport("libc", EntryPoint = "fallocate64", SetLastError = true)]
    private static partial int fallocate(int fd, int mode, long offset, long length);

    /// <summary>fallocate(FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE): frees the blocks of a range; it reads as zeros and
    /// the file keeps its size (and every other offset its data).</summary>
    public static void PunchHole(int fd, long offset, long length) =>
        SyscallException.Check(fallocate(fd, 0x02 | 0x01, offset, length), "fallocate(FALLOC_FL_PUNCH_HOLE)");

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static partial int fcntl(int fd, int cmd, int arg);

    /// <summary>fcntl(F_DUPFD_CLOEXEC): a new fd for the same open file description that no child inherits.</summary>
    public static UnixFd DupCloexec(int fd) => new(SyscallException.Check(fcntl(fd, 1030, 0), "fcntl(F_DUPFD_CLOEXEC)"));

    /// <summary>dup(2): a new fd for the same open file description.</summary>
    public static UnixFd Dup(int fd) => new(SyscallException.Check(dup(fd), "dup"));

    public static void Truncate(int fd, long length) => SyscallException.Check(ftruncate(fd, length), "ftruncate");

    public static UnixFd Open(string path, int flags, uint mode = 0)
        => new(SyscallException.Check(open(path, flags | O_CLOEXEC, mode), $"open({path})"));

    public static UnixFd OpenAt(int dirFd, string path, int flags, uint mode = 0)
        => new(SyscallException.Check(openat(dirFd, path, flags | O_CLOEXEC, mode), $"openat({path})"));

    /// <summary>Renames <paramref name="from"/> to <paramref name="to"/> within the directory <paramref name="dirFd"/> (atomic replace).</summary>
    public static void RenameAt(int dirFd, string from, string to) =>
        SyscallException.Check(renameat(dirFd, from, dirFd, to), $"renameat({from}, {to})");

    /// <summary>Removes the file <paramref name="name"/> of the directory <paramref name="dirFd"/>; false when it was not there.</summary>
    public static bool UnlinkAt(int dirFd, string name)
    {
        if (unlinkat(dirFd, name, 0) == 0)
            return true;
        int errno = Marshal.GetLastPInvokeError();
        return errno == 2 ? false : throw new SyscallException($"unlinkat({name})", errno);
    }

    /// <summary>close(2) without throwing; for SafeHandle release. Returns 0 or -1.</summary>
    internal static int CloseRaw(int fd) => close(fd);

    public static void Close(int fd) => SyscallException.Check(close(fd), "close");

    public static int Read(int fd, Span<byte> buffer)
    {
        fixed (byte* p = buffer)
            return (int)SyscallException.Check((long)read(fd, p, (nuint)buffer.Length), "read");
    }

    public static int Write(int fd, ReadOnlySpan<byte> data)
    {
        fixed (byte* p = data)
            return (int)SyscallException.Check((long)write(fd, p, (nuint)data.Length), "write");
    }

    public static long PRead(int fd, Span<byte> buffer, long offset)
    {
        fixed (byte* p = buffer)
            return SyscallException.Check((long)pread(fd, p, (nuint)buffer.Length, offset), "pread");
    }

    public static long PWrite(int fd, ReadOnlySpan<byte> data, long offset)
    {
        fixed (byte* p = data)
            return SyscallException.Check((long)pwrite(fd, p, (nuint)data.Length, offset), "pwrite");
    }

    public static long Seek(int fd, long offset, int whence) => SyscallException.Check(lseek(fd, offset, whence), "lseek");

    /// <summary>Writes all of <paramref name="data"/>, looping over short writes.</summary>
    public static void WriteExactly(int fd, ReadOnlySpan<byte> data)
    {
        while (!data.IsEmpty)
            data = data[Write(fd, data)..];
    }

    /// <summary>Reads until the buffer is full or end of file; returns bytes read.</summary>
    public static long PReadFully(int fd, Span<byte> buffer, long offset)
    {
        long done = 0;
        while (done < buffer.Length)
        {
            long n = PRead(fd, buffer[(int)done..], offset + done);
            if (n == 0)
                break;
            done += n;
        }
        return done;
    }

    public static void PWriteExactly(int fd, ReadOnlySpan<byte> data, long offset)
    {
        long done = 0;
        while (done < data.Length)
            done += PWrite(fd, data[(int)done..], offset + done);
    }
}
