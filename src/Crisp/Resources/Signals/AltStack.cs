using System.Buffers.Binary;
using Crisp.Images.Proto;

namespace Crisp.Resources.Signals;

/// <summary>stack_t on x86-64: ss_sp (8), ss_flags (int, padded to 8), ss_size (8).</summary>
public static class AltStack
{
    public const int Size = 24;
    public const uint SS_ONSTACK = 1, SS_DISABLE = 2;

    public static thread_sas_entry Read(ReadOnlySpan<byte> b) => new()
    {
        SsSp = BinaryPrimitives.ReadUInt64LittleEndian(b),
        SsFlags = BinaryPrimitives.ReadUInt32LittleEndian(b[8..]),
        SsSize = BinaryPrimitives.ReadUInt64LittleEndian(b[16..]),
    };

    /// <summary>The stack_t to hand to sigaltstack: SS_ONSTACK is a report (the thread was running on
    /// it), not a flag one may set.</summary>
    public static byte[] Encode(thread_sas_entry sas)
    {
        var b = new byte[Size];
        BinaryPrimitives.WriteUInt64LittleEndian(b, sas.SsSp);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(8), sas.SsFlags & ~SS_ONSTACK);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(16), sas.SsSize);
        return b;
    }
}
