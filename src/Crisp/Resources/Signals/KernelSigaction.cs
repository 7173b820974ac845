using System.Buffers.Binary;
using Crisp.Images.Proto;

namespace Crisp.Resources.Signals;

/// <summary>The kernel's struct sigaction on x86-64 (what rt_sigaction reads and writes, not glibc's):
/// handler, flags, restorer, mask — four 64-bit words.</summary>
public readonly record struct KernelSigaction(ulong Handler, ulong Flags, ulong Restorer, ulong Mask)
{
    public const int Size = 32;
    /// <summary>sizeof(kernel sigset_t), the last argument of rt_sigaction.</summary>
    public const int SigsetSize = 8;

    public static KernelSigaction Read(ReadOnlySpan<byte> b) => new(
        BinaryPrimitives.ReadUInt64LittleEndian(b),
        BinaryPrimitives.ReadUInt64LittleEndian(b[8..]),
        BinaryPrimitives.ReadUInt64LittleEndian(b[16..]),
        BinaryPrimitives.ReadUInt64LittleEndian(b[24..]));

    public void Write(Span<byte> b)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(b, Handler);
        BinaryPrimitives.WriteUInt64LittleEndian(b[8..], Flags);
        BinaryPrimitives.WriteUInt64LittleEndian(b[16..], Restorer);
        BinaryPrimitives.WriteUInt64LittleEndian(b[24..], Mask);
    }

    public sa_entry ToEntry() => new() { Sigaction = Handler, Flags = Flags, Restorer = Restorer, Mask = Mask };

    public static KernelSigaction FromEntry(sa_entry e) => new(e.Sigaction, e.Flags, e.Restorer, e.Mask);
}
