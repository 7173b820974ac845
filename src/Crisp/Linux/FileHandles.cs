using System.Buffers.Binary;

namespace Crisp.Linux;

/// <summary>open_by_handle_at(2): opens an inode from the file handle fdinfo shows (inotify/fanotify
/// marks), through any fd on the same filesystem. Needs CAP_DAC_READ_SEARCH.</summary>
public static unsafe class FileHandles
{
    /// <summary>MAX_HANDLE_SZ: a handle's bytes never exceed it.</summary>
    public const int MaxBytes = 128;

    public static UnixFd Open(int mountFd, int type, ReadOnlySpan<byte> handle, int flags)
    {
        if (handle.Length > MaxBytes)
            throw new ArgumentException($"file handle of {handle.Length} bytes");
        byte* fh = stackalloc byte[8 + MaxBytes];
        BinaryPrimitives.WriteUInt32LittleEndian(new Span<byte>(fh, 4), (uint)handle.Length);
        BinaryPrimitives.WriteInt32LittleEndian(new Span<byte>(fh + 4, 4), type);
        handle.CopyTo(new Span<byte>(fh + 8, MaxBytes));
        return new((int)RawSyscall.Call("open_by_handle_at", Sysno.open_by_handle_at, mountFd, (long)fh, flags | FileIo.O_CLOEXEC));
    }
}
