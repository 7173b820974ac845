namespace Crisp.Linux;

/// <summary>close_range(2).</summary>
public static class CloseRange
{
    public const uint CLOSE_RANGE_UNSHARE = 2, CLOSE_RANGE_CLOEXEC = 4;

    /// <summary>Closes (or with CLOSE_RANGE_CLOEXEC marks) fds first..last inclusive.</summary>
    public static void Close(uint first, uint last = uint.MaxValue, uint flags = 0)
        => RawSyscall.Call("close_range", Sysno.close_range, first, last, flags);
}
