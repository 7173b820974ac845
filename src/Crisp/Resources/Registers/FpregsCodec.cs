using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Crisp.Images.Proto;

namespace Crisp.Resources.Registers;

/// <summary>Converts between the kernel's XSAVE area and CRIU's user_x86_fpregs_entry (legacy FXSAVE
/// fields plus the extended components it names).</summary>
public static class FpregsCodec
{
    public static user_x86_fpregs_entry Decode(ReadOnlySpan<byte> area)
    {
        var e = new user_x86_fpregs_entry
        {
            Cwd = U16(area, 0),
            Swd = U16(area, 2),
            Twd = U16(area, 4),
            Fop = U16(area, 6),
            Rip = BinaryPrimitives.ReadUInt64LittleEndian(area[8..]),
            Rdp = BinaryPrimitives.ReadUInt64LittleEndian(area[16..]),
            Mxcsr = BinaryPrimitives.ReadUInt32LittleEndian(area[24..]),
            MxcsrMask = BinaryPrimitives.ReadUInt32LittleEndian(area[28..]),
        };
        e.StSpace.AddRange(U32s(area.Slice(32, 128)));
        e.XmmSpace.AddRange(U32s(area.Slice(160, 256)));
        e.Padding.AddRange(U32s(area.Slice(416, 96)));
        if (area.Length <= XsaveLayout.HeaderOffset)
            return e;

        var x = new user_x86_xsave_entry { XstateBv = BinaryPrimitives.ReadUInt64LittleEndian(area[XsaveLayout.HeaderOffset..]) };
        x.YmmhSpace.AddRange(U32s(Component(area, XsaveLayout.Ymm)));
        x.BndregState.AddRange(U64s(Component(area, XsaveLayout.BndRegs)));
        x.BndcsrState.AddRange(U64s(Component(area, XsaveLayout.BndCsr)));
        x.OpmaskReg.AddRange(U64s(Component(area, XsaveLayout.Opmask)));
        x.ZmmUpper.AddRange(U64s(Component(area, XsaveLayout.ZmmHi256)));
        x.Hi16Zmm.AddRange(U64s(Component(area, XsaveLayout.Hi16Zmm)));
        x.Pkru.AddRange(U32s(Component(area, XsaveLayout.Pkru)));
        e.Xsave = x;
        return e;
    }

    /// <summary>Writes <paramref name="e"/> into <paramref name="area"/>, an XSAVE area of the kernel's size
    /// (e.g. the puppet's own, read first): legacy part, header, then each component the image has.</summary>
    public static void Encode(user_x86_fpregs_entry e, Span<byte> area)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(area, (ushort)e.Cwd);
        BinaryPrimitives.WriteUInt16LittleEndian(area[2..], (ushort)e.Swd);
        BinaryPrimitives.WriteUInt16LittleEndian(area[4..], (ushort)e.Twd);
        BinaryPrimitives.WriteUInt16LittleEndian(area[6..], (ushort)e.Fop);
        BinaryPrimitives.WriteUInt64LittleEndian(area[8..], e.Rip);
        BinaryPrimitives.WriteUInt64LittleEndian(area[16..], e.Rdp);
        BinaryPrimitives.WriteUInt32LittleEndian(area[24..], e.Mxcsr);
        BinaryPrimitives.WriteUInt32LittleEndian(area[28..], e.MxcsrMask);
        Put(area.Slice(32, 128), MemoryMarshal.AsBytes(e.StSpace.ToArray().AsSpan()));
        Put(area.Slice(160, 256), MemoryMarshal.AsBytes(e.XmmSpace.ToArray().AsSpan()));
        // The FXSAVE area's unused tail: CRIU writes no padding, so an empty field means zeros.
        if (e.Padding.Count == 0)
            area.Slice(416, 96).Clear();
        else
            Put(area.Slice(416, 96), MemoryMarshal.AsBytes(e.Padding.ToArray().AsSpan()));
        if (e.Xsave is not { } x || area.Length <= XsaveLayout.HeaderOffset)
            return;
        area.Slice(XsaveLayout.HeaderOffset, XsaveLayout.HeaderSize).Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(area[XsaveLayout.HeaderOffset..], x.XstateBv);
        PutComponent(area, XsaveLayout.Ymm, MemoryMarshal.AsBytes(x.YmmhSpace.ToArray().AsSpan()));
        PutComponent(area, XsaveLayout.BndRegs, MemoryMarshal.AsBytes(x.BndregState.ToArray().AsSpan()));
        PutComponent(area, XsaveLayout.BndCsr, MemoryMarshal.AsBytes(x.BndcsrState.ToArray().AsSpan()));
        PutComponent(area, XsaveLayout.Opmask, MemoryMarshal.AsBytes(x.OpmaskReg.ToArray().AsSpan()));
        PutComponent(area, XsaveLayout.ZmmHi256, MemoryMarshal.AsBytes(x.ZmmUpper.ToArray().AsSpan()));
        PutComponent(area, XsaveLayout.Hi16Zmm, MemoryMarshal.AsBytes(x.Hi16Zmm.ToArray().AsSpan()));
        PutComponent(area, XsaveLayout.Pkru, MemoryMarshal.AsBytes(x.Pkru.ToArray().AsSpan()));
    }

    private static uint U16(ReadOnlySpan<byte> s, int at) => BinaryPrimitives.ReadUInt16LittleEndian(s[at..]);

    private static ReadOnlySpan<byte> Component(ReadOnlySpan<byte> area, int n)
    {
        var (offset, size) = XsaveLayout.Component(n);
        return size == 0 || offset + size > area.Length ? [] : area.Slice(offset, size);
    }

    private static void PutComponent(Span<byte> area, int n, ReadOnlySpan<byte> data)
    {
        var (offset, size) = XsaveLayout.Component(n);
        if (size == 0 || data.Length == 0)
            return;
        if (data.Length != size || offset + size > area.Length)
            throw new CrispException($"xsave component {n} in the image has {data.Length} bytes; this CPU uses {size} at {offset}");
        data.CopyTo(area[offset..]);
    }

    private static void Put(Span<byte> dst, ReadOnlySpan<byte> src)
    {
        if (src.Length != dst.Length)
            throw new CrispException($"fpregs field has {src.Length} bytes, expected {dst.Length}");
        src.CopyTo(dst);
    }

    private static uint[] U32s(ReadOnlySpan<byte> s) => MemoryMarshal.Cast<byte, uint>(s).ToArray();
    private static ulong[] U64s(ReadOnlySpan<byte> s) => MemoryMarshal.Cast<byte, ulong>(s).ToArray();
}
