using System.Runtime.InteropServices;

namespace Crisp.Linux;

/// <summary>fstat into an opaque x86-64 <c>struct stat</c>, for callers that hand it on to native code
/// (CRIU's HANDLE_DEVICE_VMA plugin hook takes one).</summary>
public static unsafe partial class FileStat
{
    /// <summary>sizeof(struct stat) on x86-64.</summary>
    public const int Size = 144;

    [LibraryImport("libc", EntryPoint = "fstat", SetLastError = true)]
    private static partial int fstat(int fd, byte* buf);

    public static void Fstat(int fd, Span<byte> buffer)
    {
        if (buffer.Length < Size)
            throw new ArgumentException("buffer smaller than struct stat", nameof(buffer));
        fixed (byte* p = buffer)
            SyscallException.Check(fstat(fd, p), "fstat");
    }
}
