using System.Buffers;
using System.Buffers.Binary;
using Google.Protobuf;

namespace Crisp.Images;

/// <summary>
/// Writes one image file: the magics, then entries framed as a 32-bit LE length and the message,
/// optionally followed by raw extra bytes (pipes-data). Buffered; call Dispose to flush.
/// </summary>
public sealed class ImageWriter : IDisposable
{
    private readonly Stream _stream;
    private readonly byte[] _lengthBuf = new byte[4];

    private ImageWriter(string path, ImageKind kind, Stream stream)
    {
        Path = path;
        Kind = kind;
        _stream = stream;
    }

    public string Path { get; }
    public ImageKind Kind { get; }
    /// <summary>Bytes of the image written so far (its plaintext, when the stream encrypts).</summary>
    public long Position { get; private set; }

    /// <summary>A new image file; private (0600) unless <paramref name="mode"/> says otherwise, whatever the umask.</summary>
    public static ImageWriter Create(string path, ImageKind kind, UnixFileMode? mode = null) =>
        Create(Security.PrivateFile.Create(path, mode ?? Security.ImageModes.Private.File, 4096), path, kind);

    /// <summary>An image written to <paramref name="stream"/> (taken over): a new file, or an encrypting stream over one.</summary>
    public static ImageWriter Create(Stream stream, string path, ImageKind kind)
    {
        if (kind.IsRaw)
        {
            stream.Dispose();
            throw new ArgumentException($"{kind.Name} is a raw image; write it with a plain stream", nameof(kind));
        }
        var writer = new ImageWriter(path, kind, stream);
        if (kind.HasCommonMagic)
            writer.WriteUInt32(ImageMagic.ImgCommon);
        writer.WriteUInt32(kind.Magic);
        return writer;
    }

    /// <summary>Writes one entry.</summary>
    public void Write(IMessage entry) => Write(entry, ReadOnlySpan<byte>.Empty);

    /// <summary>Writes one entry and the raw bytes that follow it (pipes-data payloads).</summary>
    public void Write(IMessage entry, ReadOnlySpan<byte> extra)
    {
        int size = entry.CalculateSize();
        byte[] buf = ArrayPool<byte>.Shared.Rent(size);
        try
        {
            entry.WriteTo(buf.AsSpan(0, size));
            WriteUInt32((uint)size);
            _stream.Write(buf, 0, size);
            Position += size;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buf);
        }
        if (!extra.IsEmpty)
            _stream.Write(extra);
        Position += extra.Length;
    }

    public void Flush() => _stream.Flush();

    public void Dispose() => _stream.Dispose();

    private void WriteUInt32(uint value)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(_lengthBuf, value);
        _stream.Write(_lengthBuf, 0, 4);
        Position += 4;
    }
}
