using System.Runtime.InteropServices;

namespace Crisp.Linux;

/// <summary>struct iovec.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct Iovec
{
    public nint Base;
    public nuint Length;

    public Iovec(nint @base, nuint length)
    {
        Base = @base;
        Length = length;
    }
}

/// <summary>A range of another process's address space.</summary>
public readonly record struct RemoteRange(ulong Address, ulong Length)
{
    public ulong End => Address + Length;
}
