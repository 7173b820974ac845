using System.Buffers.Binary;
using Google.Protobuf;
using Google.Protobuf.Reflection;

namespace Crisp.Images;

/// <summary>
/// Reads one image file: validates its magics, then returns entries one at a time with bounds
/// checks, so a damaged file gives an <see cref="ImageFormatException"/> and never a large allocation.
/// </summary>
public sealed class ImageReader : IDisposable
{
    private readonly Stream _stream;
    private readonly long _length;
    private readonly byte[] _word = new byte[4];

    private ImageReader(string path, ImageKind kind, Stream stream)
    {
        Path = path;
        Kind = kind;
        _stream = stream;
        _length = stream.Length;
    }

    public string Path { get; }
    public ImageKind Kind { get; }
    public long Position => _stream.Position;
    public bool AtEnd => _stream.Position >= _length;
    /// <summary>Bytes left after the current position (a ghost file's raw contents).</summary>
    public long Remaining => _length - _stream.Position;

    /// <summary>Opens a file, taking its kind from its name (core-1.img → CORE).</summary>
    public static ImageReader Open(string path)
    {
        var file = ImageKind.FromFileName(path)
            ?? throw new ImageFormatException(path, 0, "not a known image file name");
        return Open(path, file.Kind);
    }

    /// <summary>Opens a file by path; decrypted with <paramref name="key"/> when it is encrypted (`crisp show FILE`).</summary>
    public static ImageReader Open(string path, ImageKind kind, Security.Encryption.ImageKey? key = null)
    {
        if (kind.IsRaw)
            throw new ImageFormatException(path, 0, $"{kind.Name} is a raw image without entries");
        Microsoft.Win32.SafeHandles.SafeFileHandle handle;
        try
        {
            handle = File.OpenHandle(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ImageFormatException(path, 0, e is FileNotFoundException or DirectoryNotFoundException ? "file not found" : $"cannot open: {e.Message}", e);
        }
        return Open(Security.Encryption.StoredFile.OpenStream(handle, path, key), path, kind);
    }

    /// <summary>Reads an image from <paramref name="stream"/> (taken over), the file itself or its decrypted contents.</summary>
    public static ImageReader Open(Stream stream, string path, ImageKind kind)
    {
        if (kind.IsRaw)
        {
            stream.Dispose();
            throw new ImageFormatException(path, 0, $"{kind.Name} is a raw image without entries");
        }
        var reader = new ImageReader(path, kind, stream);
        try
        {
            reader.CheckMagics();
            return reader;
        }
        catch
        {
            reader.Dispose();
            throw;
        }
    }

    /// <summary>Reads the next entry as <typeparamref name="T"/>; null at the end of the file.</summary>
    public T? Read<T>() where T : class, IMessage<T>, new()
    {
        long offset = _stream.Position;
        byte[]? payload = ReadPayload();
        if (payload is null)
            return null;
        var message = new T();
        Parse(message, payload, offset);
        return message;
    }

    /// <summary>Reads the next entry as the message <paramref name="type"/> describes; null at the end.</summary>
    public IMessage? Read(MessageDescriptor type)
    {
        long offset = _stream.Position;
        byte[]? payload = ReadPayload();
        if (payload is null)
            return null;
        var message = type.Parser.ParseFrom(ReadOnlySpan<byte>.Empty);
        Parse(message, payload, offset);
        return message;
    }

    /// <summary>Reads every remaining entry as <typeparamref name="T"/>.</summary>
    public List<T> ReadAll<T>() where T : class, IMessage<T>, new()
    {
        var all = new List<T>();
        while (Read<T>() is { } entry)
            all.Add(entry);
        return all;
    }

    /// <summary>Reads the raw bytes that follow an entry (e.g. pipe data of pipe_data_entry.bytes).</summary>
    public byte[] ReadExtra(long length)
    {
        long offset = _stream.Position;
        if (length < 0 || length > _length - offset)
            throw new ImageFormatException(Path, offset, $"extra payload of {length} bytes exceeds the {_length - offset} bytes left in the file");
        var data = new byte[length];
        _stream.ReadExactly(data);
        return data;
    }

    public void Dispose() => _stream.Dispose();

    private void CheckMagics()
    {
        if (_length == 0)
            throw new ImageFormatException(Path, 0, $"empty file, expected {Kind.Name} magic");
        uint first = ReadWord("magic");
        if (Kind.HasCommonMagic)
        {
            if (first != ImageMagic.ImgCommon && first != ImageMagic.ImgService)
                throw WrongMagic(0, first, ImageMagic.ImgCommon, "IMG_COMMON");
            first = ReadWord("magic");
        }
        if (first != Kind.Magic)
            throw WrongMagic(_stream.Position - 4, first, Kind.Magic, Kind.Name);
    }

    private ImageFormatException WrongMagic(long offset, uint found, uint expected, string expectedName)
    {
        string what = ImageKind.FromMagic(found)?.Name is { } n ? $" ({n})" : "";
        return new ImageFormatException(Path, offset, $"wrong magic 0x{found:x8}{what}, expected 0x{expected:x8} ({expectedName})");
    }

    private uint ReadWord(string what)
    {
        long offset = _stream.Position;
        long left = _length - offset;
        if (left < 4)
            throw new ImageFormatException(Path, offset, $"truncated {what}: {left} bytes left, need 4");
        _stream.ReadExactly(_word);
        return BinaryPrimitives.ReadUInt32LittleEndian(_word);
    }

    private byte[]? ReadPayload()
    {
        if (AtEnd)
            return null;
        long offset = _stream.Position;
        int size = (int)ReadWord("entry length");
        long left = _length - _stream.Position;
        if (size < 0 || size > left)
            throw new ImageFormatException(Path, offset, $"entry length {(uint)size} exceeds the {left} bytes left in the file (truncated or corrupt entry)");
        var payload = new byte[size];
        _stream.ReadExactly(payload);
        return payload;
    }

    private void Parse(IMessage message, byte[] payload, long offset)
    {
        try
        {
            message.MergeFrom(payload);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new ImageFormatException(Path, offset, $"bad {message.Descriptor.Name} entry: {e.Message.Split('\n')[0]}", e);
        }
    }
}
