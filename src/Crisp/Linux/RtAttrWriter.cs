using System.Buffers.Binary;
using System.Text;

namespace Crisp.Linux;

/// <summary>Builds an rtnetlink request body (the bytes after nlmsghdr): a fixed header, then attributes, nested
/// ones closed by <see cref="End"/> (their length is patched in then).</summary>
public sealed class RtAttrWriter(int headerLength)
{
    private readonly List<byte> _bytes = [.. new byte[headerLength]];
    private readonly Stack<int> _open = [];

    public int Length => _bytes.Count;

    public RtAttrWriter U32At(int offset, uint value)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, value);
        for (int i = 0; i < 4; i++)
            _bytes[offset + i] = b[i];
        return this;
    }

    public RtAttrWriter Attr(int type, ReadOnlySpan<byte> data)
    {
        Span<byte> head = stackalloc byte[4];
        BinaryPrimitives.WriteUInt16LittleEndian(head, (ushort)(4 + data.Length));
        BinaryPrimitives.WriteUInt16LittleEndian(head[2..], (ushort)type);
        _bytes.AddRange(head);
        _bytes.AddRange(data);
        Pad();
        return this;
    }

    public RtAttrWriter U32(int type, uint value)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, value);
        return Attr(type, b);
    }

    /// <summary>A NUL-terminated string attribute (as iproute2 sends names).</summary>
    public RtAttrWriter String(int type, string value) => Attr(type, Encoding.UTF8.GetBytes(value + "\0"));

    /// <summary>Opens a nested attribute; <see cref="End"/> closes it.</summary>
    public RtAttrWriter Begin(int type)
    {
        _open.Push(_bytes.Count);
        return Attr(type, []);
    }

    /// <summary>Raw bytes inside the current nest (e.g. the peer's ifinfomsg of VETH_INFO_PEER).</summary>
    public RtAttrWriter Raw(ReadOnlySpan<byte> data)
    {
        _bytes.AddRange(data);
        Pad();
        return this;
    }

    public RtAttrWriter End()
    {
        int at = _open.Pop();
        ushort len = (ushort)(_bytes.Count - at);
        _bytes[at] = (byte)len;
        _bytes[at + 1] = (byte)(len >> 8);
        return this;
    }

    public byte[] ToArray() => [.. _bytes];

    private void Pad()
    {
        while (_bytes.Count % 4 != 0)
            _bytes.Add(0);
    }
}
