using System.Buffers.Binary;
using K4os.Compression.LZ4;

namespace Crisp.Images.PageServer;

/// <summary>--compress: LZ4 on the page stream between a crisp dump and a crisp page server, negotiated per
/// pagemap so that a CRIU peer never sees it. The dump offers it with a bit in PS_IOV_OPEN2's upper 16 bits
/// (CRIU's server reads only the low 16 for OPEN2 and answers 0 or 1 as ever); a crisp server that was started
/// with --compress accepts by setting another bit in its one-byte answer (a CRIU dump never offers, so it never
/// gets that bit). Once accepted, the pages after each PS_IOV_ADD_F go as frames of at most 1 MiB: u32 stored
/// length, u32 page bytes, then the LZ4 block — or the pages as they are when they do not shrink.</summary>
public static class PageStreamCompression
{
    /// <summary>PS_IOV_OPEN2 flag (upper 16 bits of cmd): the dump can send LZ4 frames.</summary>
    public const uint Offer = 0x8000;
    /// <summary>Bit of the OPEN2 answer (bit 0 is has_parent): the server takes LZ4 frames for this pagemap.</summary>
    public const byte Accepted = 0x40;
    public const int FrameBytes = 1 << 20;
    public const int HeaderSize = 8;

    public static int MaxStored(int raw) => LZ4Codec.MaximumOutputSize(raw);

    /// <summary>Writes the frames of <paramref name="data"/> to <paramref name="output"/> through
    /// <paramref name="scratch"/> (at least <see cref="HeaderSize"/> + <see cref="MaxStored"/>(1 MiB)); returns the bytes written.</summary>
    public static long WriteFrames(Stream output, ReadOnlySpan<byte> data, byte[] scratch)
    {
        long written = 0;
        while (data.Length > 0)
        {
            int raw = Math.Min(data.Length, FrameBytes);
            var piece = data[..raw];
            int stored = LZ4Codec.Encode(piece, scratch.AsSpan(HeaderSize));
            bool packed = stored > 0 && stored < raw;
            if (!packed)
                stored = raw;
            BinaryPrimitives.WriteUInt32LittleEndian(scratch, (uint)stored);
            BinaryPrimitives.WriteUInt32LittleEndian(scratch.AsSpan(4), (uint)raw);
            if (packed)
                output.Write(scratch, 0, HeaderSize + stored);
            else
            {
                output.Write(scratch, 0, HeaderSize);
                output.Write(piece);
            }
            written += HeaderSize + stored;
            data = data[raw..];
        }
        return written;
    }

    /// <summary>One frame's header: (stored, raw), checked against what may follow; throws a one-line reason.</summary>
    public static (int Stored, int Raw) ReadHeader(ReadOnlySpan<byte> header, ulong bytesLeft)
    {
        uint stored = BinaryPrimitives.ReadUInt32LittleEndian(header), raw = BinaryPrimitives.ReadUInt32LittleEndian(header[4..]);
        if (raw == 0 || raw > FrameBytes || raw > bytesLeft || raw % PagemapWriter.PageSize != 0 || stored == 0 || stored > raw)
            throw new CrispException($"page server: a compressed frame of {stored} bytes for {raw} page bytes does not fit the run ({bytesLeft} bytes left): the pages received were removed");
        return ((int)stored, (int)raw);
    }

    /// <summary>Unpacks a frame's <paramref name="stored"/> bytes into exactly <paramref name="into"/>.</summary>
    public static void Unpack(ReadOnlySpan<byte> stored, Span<byte> into)
    {
        if (stored.Length == into.Length)
        {
            stored.CopyTo(into);
            return;
        }
        if (LZ4Codec.Decode(stored, into) != into.Length)
            throw new CrispException("page server: a compressed frame does not unpack to its page bytes: the pages received were removed");
    }
}
