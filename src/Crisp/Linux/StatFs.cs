using System.Runtime.InteropServices;

namespace Crisp.Linux;

/// <summary>fstatfs(2), for the filesystem type of an open file (struct statfs starts with f_type).</summary>
public static unsafe partial class StatFs
{
    /// <summary>POSIX message queues (mqueue fs): their fds look like regular files named "/NAME".</summary>
    public const long MQUEUE_MAGIC = 0x19800202;

    [LibraryImport("libc", EntryPoint = "fstatfs", SetLastError = true)]
    private static partial int fstatfs(int fd, byte* buf);

    public static long TypeOf(int fd)
    {
        byte* buf = stackalloc byte[120];   // sizeof(struct statfs) on x86-64
        SyscallException.Check(fstatfs(fd, buf), "fstatfs");
        return *(long*)buf;
    }

    /// <summary>f_type and f_bsize (hugetlbfs reports its huge page size as the block size).</summary>
    public static (long Type, long BlockSize) TypeAndBlockSizeOf(int fd)
    {
        byte* buf = stackalloc byte[120];
        SyscallException.Check(fstatfs(fd, buf), "fstatfs");
        return (*(long*)buf, *(long*)(buf + 8));
    }
}
