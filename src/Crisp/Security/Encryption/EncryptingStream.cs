using System.Buffers;
using System.Security.Cryptography;
using static Crisp.Security.Encryption.EncryptedFileFormat;

namespace Crisp.Security.Encryption;

/// <summary>Write-only stream that encrypts what an image writer hands it into the chunked format, as it goes
/// (no second pass over the pages). A whole chunk in the caller's buffer is sealed straight from it (the page
/// batches are chunk-sized), only pieces of chunks are gathered first; sealed chunks are written behind, on a
/// thread of their own for a large file (<see cref="ChunkWriteBehind"/>), while the next is sealed.
/// A full chunk is sealed as soon as it is complete but written only once more data follows it: when the stream
/// ends there instead, it is the last chunk, and is opened and sealed again as such (its first sealing never
/// leaves the process, so the reused nonce exposes nothing).</summary>
internal sealed class EncryptingStream : Stream
{
    private readonly Stream _file;
    private readonly AesGcm _aes;
    private readonly byte[] _header;
    private readonly byte[] _aadMiddle, _aadLast;
    private readonly ChunkWriteBehind _chunks;
    // Pooled: a dump opens one stream per image, and fresh 1 MiB arrays for each would be garbage to collect.
    private readonly byte[] _plain = ArrayPool<byte>.Shared.Rent(ChunkSize);
    private readonly byte[] _nonce = new byte[NonceSize];
    private int _filled;
    private long _chunk;
    /// <summary>The last full chunk, sealed as not the last, until more data or the end says which it is.</summary>
    private byte[]? _held;
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
        _chunks = new ChunkWriteBehind(file);
        _file.Write(_header);
    }

    public override void Write(ReadOnlySpan<byte> data)
    {
        while (!data.IsEmpty)
        {
            if (_held is not null)
                WriteHeld();   // data follows it: not the last chunk
            if (_filled == 0 && data.Length >= ChunkSize)
            {
                Hold(data[..ChunkSize]);
                data = data[ChunkSize..];
                continue;
            }
            int take = Math.Min(data.Length, ChunkSize - _filled);
            data[..take].CopyTo(_plain.AsSpan(_filled));
            _filled += take;
            data = data[take..];
            if (_filled == ChunkSize)
            {
                Hold(_plain);
                _filled = 0;
            }
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
                if (_held is not null && _filled == 0)
                    SealHeldAsLast();
                else
                {
                    if (_held is not null)
                        WriteHeld();
                    var buffer = _chunks.Take();
                    Seal(_plain.AsSpan(0, _filled), buffer, last: true);
                    _chunks.Write(buffer, _filled + TagSize);
                }
                _chunks.Complete();
            }
            finally
            {
                _chunks.Dispose();
                _aes.Dispose();
                _file.Dispose();
                ArrayPool<byte>.Shared.Return(_plain, clearArray: true);
            }
        }
        base.Dispose(disposing);
    }

    /// <summary>Seals a full chunk as not the last and holds it.</summary>
    private void Hold(ReadOnlySpan<byte> plain)
    {
        var buffer = _chunks.Take();
        Seal(plain, buffer, last: false);
        _held = buffer;
    }

    private void WriteHeld()
    {
        var held = _held!;
        _held = null;
        _chunks.Write(held, ChunkSize + TagSize);
    }

    /// <summary>The stream ended right after a full chunk: it is opened (into the free gathering buffer) and sealed
    /// again, as the last, under the same nonce; only this sealing is written.</summary>
    private void SealHeldAsLast()
    {
        var held = _held!;
        _held = null;
        Nonce(_nonce, --_chunk);
        _aes.Decrypt(_nonce, held.AsSpan(0, ChunkSize), held.AsSpan(ChunkSize, TagSize), _plain.AsSpan(0, ChunkSize), _aadMiddle);
        Seal(_plain.AsSpan(0, ChunkSize), held, last: true);
        _chunks.Write(held, ChunkSize + TagSize);
    }

    private void Seal(ReadOnlySpan<byte> plain, byte[] into, bool last)
    {
        Nonce(_nonce, _chunk++);
        _aes.Encrypt(_nonce, plain, into.AsSpan(0, plain.Length), into.AsSpan(plain.Length, TagSize), last ? _aadLast : _aadMiddle);
    }

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => !_disposed;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    /// <summary>Nothing to do: a chunk is written once it is sealed, and only whole chunks are.</summary>
    public override void Flush() { }
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
}
