using System.Runtime.InteropServices;

namespace Crisp.Linux;

/// <summary>Errno numbers crisp branches on, and their symbolic names for messages.</summary>
public static partial class Errnos
{
    public const int EPERM = 1, ENOENT = 2, ESRCH = 3, EINTR = 4, EIO = 5, EBADF = 9, ECHILD = 10,
        EAGAIN = 11, ENOMEM = 12, EACCES = 13, EFAULT = 14, EBUSY = 16, EEXIST = 17, EINVAL = 22,
        ENOSYS = 38, ENODATA = 61, EOPNOTSUPP = 95, EADDRINUSE = 98;

    private static readonly Dictionary<int, string> Names = new()
    {
        [EPERM] = "EPERM", [ENOENT] = "ENOENT", [ESRCH] = "ESRCH", [EINTR] = "EINTR", [EIO] = "EIO",
        [EBADF] = "EBADF", [ECHILD] = "ECHILD", [EAGAIN] = "EAGAIN", [ENOMEM] = "ENOMEM",
        [EACCES] = "EACCES", [EFAULT] = "EFAULT", [EBUSY] = "EBUSY", [EEXIST] = "EEXIST",
        [EINVAL] = "EINVAL", [ENOSYS] = "ENOSYS", [EOPNOTSUPP] = "EOPNOTSUPP", [EADDRINUSE] = "EADDRINUSE",
    };

    /// <summary>"EPERM (Operation not permitted)".</summary>
    public static string Describe(int errno)
    {
        string text = Marshal.PtrToStringUTF8(strerror(errno)) ?? "unknown error";
        return Names.TryGetValue(errno, out var name) ? $"{name} ({text})" : $"errno {errno} ({text})";
    }

    [LibraryImport("libc")]
    private static partial nint strerror(int errnum);
}
