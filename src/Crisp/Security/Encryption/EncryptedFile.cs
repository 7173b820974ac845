using System.Buffers;
using System.Security.Cryptography;
using Microsoft.Win32.SafeHandles;
using static Crisp.Security.Encryption.EncryptedFileFormat;

namespace Crisp.Security.Encryption;

/// <summary>Reads the plaintext of an encrypted image file: each chunk a read touches is read whole, its tag
/// checked and decrypted — straight into the caller's buffer when the read covers the chunk, else into a
/// one-chunk cache. A chunk that fails its tag fails the read in one line naming the file and the chunk.
/// Read in order (a restore's pages, a large image), the stored chunks are read ahead on another thread
/// (<see cref="ChunkReadAhead"/>) while this one opens them.</summary>
internal sealed class EncryptedFile : StoredFile
{
    private readonly SafeFileHandle _handle;
    private readonly AesGcm? _aes;
    private readonly byte[] _aadMiddle, _aadLast;
    private readonly long _chunks;
    private byte[]? _sealed, _cache;
    private long _cached = -1;
    /// <summary>The chunk opened last: the next one after it starts the read-ahead.</summary>
    private long _opened = -1;
    private ChunkReadAhead? _readAhead;
    private readonly byte[] _nonce = new byte[NonceSize];

    public EncryptedFile(string path, SafeFileHandle handle, ReadOnlySpan<byte> head, ImageKey? key) : base(path)
    {
        _handle = handle;
        if (head.Length < HeaderSize || BitConverter.ToUInt32(head[8..]) != EncryptedFileFormat.Version || BitConverter.ToUInt32(head[12..]) != ChunkSize)
            throw new Images.ImageFormatException(path, 0, "encrypted image with an unknown header (version or chunk size)");
        byte[] header = head[..HeaderSize].ToArray();
        Length = PlainLength(RandomAccess.GetLength(handle));
        if (Length < 0)
            throw new Images.ImageFormatException(path, 0, "encrypted image of impossible length (truncated)");
        // As the writer seals them: whole chunks, then the rest as the last (an empty one when there is nothing).
        _chunks = Length > 0 && Length % ChunkSize == 0 ? Length / ChunkSize : Length / ChunkSize + 1;
        string name = System.IO.Path.GetFileName(path);
        _aadMiddle = Aad(header, name, last: false);
        _aadLast = Aad(header, name, last: true);
        KeyIdText = Convert.ToHexStringLower(KeyId(header));
        if (key is null)
            return;
        if (!KeyId(header).SequenceEqual(key.Id))
            throw new CrispException($"{path}: encrypted with another key (key id {Convert.ToHexStringLower(KeyId(header))}, not {key.IdText})");
        _aes = new AesGcm(key.FileKey(Salt(header)), TagSize);
    }

    public override long Length { get; }

    /// <summary>The id of the key the file was encrypted with (hex).</summary>
    public string KeyIdText { get; }

    /// <summary>Reads every chunk once, checking its tag (before a restore creates anything).</summary>
    public void Authenticate()
    {
        byte[] plain = ArrayPool<byte>.Shared.Rent(ChunkSize);
        try
        {
            for (long c = 0; c < _chunks; c++)
                Open(c, plain.AsSpan(0, ChunkLength(c)));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(plain, clearArray: true);
        }
    }

    public override void ReadExactly(Span<byte> buffer, long offset)
    {
        if (_aes is null)
            throw new CrispException($"{Path}: encrypted (AES-256-GCM); pass {ImageKey.Option} KEY to read it");
        if (offset < 0 || offset + buffer.Length > Length)
            throw new Images.ImageFormatException(Path, offset, "truncated image");
        while (!buffer.IsEmpty)
        {
            long chunk = offset / ChunkSize;
            int within = (int)(offset % ChunkSize);
            int chunkLen = ChunkLength(chunk);
            int take = Math.Min(buffer.Length, chunkLen - within);
            if (within == 0 && take == chunkLen)
                Open(chunk, buffer[..chunkLen]);
            else
            {
                if (_cached != chunk)
                {
                    _cache ??= ArrayPool<byte>.Shared.Rent(ChunkSize);
                    _cached = -1;
                    Open(chunk, _cache.AsSpan(0, chunkLen));
                    _cached = chunk;
                }
                _cache.AsSpan(within, take).CopyTo(buffer);
            }
            buffer = buffer[take..];
            offset += take;
        }
    }

    public override void Dispose()
    {
        _readAhead?.Dispose();   // first: its thread reads through the handle
        _readAhead = null;
        _aes?.Dispose();
        _handle.Dispose();
        // Pooled: a restore opens one of these per task.
        if (_cache is not null)
            ArrayPool<byte>.Shared.Return(_cache);
        if (_sealed is not null)
            ArrayPool<byte>.Shared.Return(_sealed);
        _cache = _sealed = null;
        _cached = -1;
    }

    private int ChunkLength(long chunk) => chunk < _chunks - 1 ? ChunkSize : (int)(Length - (_chunks - 1) * ChunkSize);

    /// <summary>Read-ahead pays for its thread when reads go in order and at least this many chunks follow.</summary>
    private const int ReadAheadAfter = 2;

    /// <summary>Reads, authenticates and decrypts one whole chunk into <paramref name="plain"/>.</summary>
    private void Open(long chunk, Span<byte> plain)
    {
        if (_readAhead is null && chunk == _opened + 1 && chunk > 0 && _chunks - chunk > ReadAheadAfter)
            _readAhead = new ChunkReadAhead(_chunks, chunk + 1, ChunkLength, ReadStored);
        _opened = chunk;
        if (_readAhead is null || !_readAhead.TryTake(chunk, out ReadOnlySpan<byte> sealedChunk))
        {
            _sealed ??= ArrayPool<byte>.Shared.Rent(ChunkSize + TagSize);
            ReadStored(chunk, _sealed.AsSpan(0, plain.Length + TagSize));
            sealedChunk = _sealed.AsSpan(0, plain.Length + TagSize);
        }
        Nonce(_nonce, chunk);
        bool last = chunk == _chunks - 1;
        try
        {
            _aes!.Decrypt(_nonce, sealedChunk[..plain.Length], sealedChunk[plain.Length..], plain, last ? _aadLast : _aadMiddle);
        }
        catch (AuthenticationTagMismatchException)
        {
            plain.Clear();
            throw new CrispException($"{Path}: chunk {chunk} (data at {chunk * ChunkSize}..{chunk * ChunkSize + plain.Length}) fails authentication: changed since the dump");
        }
    }

    /// <summary>Chunk <paramref name="chunk"/> as stored (ciphertext and tag), fed to the manifest check; on the
    /// read-ahead thread too.</summary>
    private void ReadStored(long chunk, Span<byte> into) => ReadRaw(_handle, into, HeaderSize + chunk * (ChunkSize + TagSize));
}
