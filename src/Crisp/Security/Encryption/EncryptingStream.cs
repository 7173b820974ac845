using System.Buffers;
using System.Security.Cryptography;
using static Crisp.Security.Encryption.EncryptedFileFormat;

namespace Crisp.Security.Encryption;

/// <summary>Write-only stream that encrypts what an image writer hands it into the chunked format, as it goes
/// (no second pass over the pages): a chunk is sealed once it is full and more data follows, the last one on
/// Dispose. Large writes are encrypted straight from the caller's buffer.</summary>
internal sealed class EncryptingStream : Stream
{
    private readonly Stream _file;
    private readonly AesGcm _aes;
    private readonly byte[] _header;
    private readonly byte[] _aadMiddle, _aadLast;
    // Pooled: a dump opens one stream per task, and 2 MiB of fresh arrays for each would be garbage to collect.
    private readonly byte[] _plain = ArrayPool<byte>.Shared.Rent(ChunkSize);
    private readonly byte[] _sealed = ArrayPool<byte>.Shared.Rent(ChunkSize + TagSize);
    private readonly byte[] _nonce = new byte[NonceSize];
    private int _filled;
    private long _chunk;
    private bool _disposed;

    /// <param name="fileName">The image's name in its directory, bound into every chunk.</param>
    public EncryptingStream(Stream file, ImageKey key, string fileName)
    {
        _file = file;
        byte[] salt = RandomNumberGenerator.GetBytes(16);
        _header = Header(key, salt);
        _aes = new AesGcm(key.FileKey(salt), TagSize);
        _aadMiddle = Aad(_header, fileName, last: false);
        _aadLast = Aad(_header, fileName, last: true);
        _file.Write(_header);
    }

    public override void Write(ReadOnlySpan<byte> data)
    {
        while (!data.IsEmpty)
        {
            if (_filled == ChunkSize)
            {
                Seal(_plain, last: false);
                _filled = 0;
            }
            // A whole chunk with more after it goes straight from the caller's buffer.
            if (_filled == 0 && data.Length > ChunkSize)
            {
                Seal(data[..ChunkSize], last: false);
                data = data[ChunkSize..];
                continue;
            }
            int take = Math.Min(data.Length, ChunkSize - _filled);
            data[..take].CopyTo(_plain.AsSpan(_filled));
            _filled += take;
            data = data[take..];
        }
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    protected override void Dispose(bool disposing)
    {
        if (disposing && !_disposed)
        {
            _disposed = true;
            try
            {
                Seal(_plain.AsSpan(0, _filled), last: true);
            }
            finally
            {
                _aes.Dispose();
                _file.Dispose();
                ArrayPool<byte>.Shared.Return(_plain);
                ArrayPool<byte>.Shared.Return(_sealed);
            }
        }
        base.Dispose(disposing);
    }

    private void Seal(ReadOnlySpan<byte> plain, bool last)
    {
        Nonce(_nonce, _chunk++);
        _aes.Encrypt(_nonce, plain, _sealed.AsSpan(0, plain.Length), _sealed.AsSpan(plain.Length, TagSize), last ? _aadLast : _aadMiddle);
        _file.Write(_sealed, 0, plain.Length + TagSize);
    }

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => !_disposed;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() => _file.Flush();
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
}
