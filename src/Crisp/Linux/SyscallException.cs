using System.Runtime.InteropServices;

namespace Crisp.Linux;

/// <summary>A failed system or libc call: names the call and the errno, so one log line says what went wrong.</summary>
public sealed class SyscallException : Exception
{
    public string Call { get; }
    public int Errno { get; }

    public SyscallException(string call, int errno)
        : base($"{call}: {Errnos.Describe(errno)}")
    {
        Call = call;
        Errno = errno;
    }

    /// <summary>Throws for a -1 result, reading errno from the last P/Invoke with SetLastError.</summary>
    public static long Check(long result, string call)
    {
        if (result == -1)
            throw new SyscallException(call, Marshal.GetLastPInvokeError());
        return result;
    }

    public static int Check(int result, string call)
    {
        if (result == -1)
            throw new SyscallException(call, Marshal.GetLastPInvokeError());
        return result;
    }
}
