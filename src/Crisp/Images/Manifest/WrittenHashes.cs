using System.Collections.Concurrent;

namespace Crisp.Images.Manifest;

/// <summary>Hashes of files hashed while a dump wrote them (pages-N.img: the bulk of a checkpoint), so the
/// manifest does not read them back. Each is kept with the length it had when written: a file changed since
/// (rewritten by another path, truncated) no longer matches and is hashed from disk instead.</summary>
public sealed class WrittenHashes(ManifestHash algorithm)
{
    private readonly ConcurrentDictionary<string, (byte[] Hash, long Length)> _byName = new(StringComparer.Ordinal);

    public ManifestHash Algorithm { get; } = algorithm;

    public void Record(string fileName, byte[] hash, long length) => _byName[fileName] = (hash, length);

    /// <summary>The hash recorded for <paramref name="path"/> if the file still has the length it was written with.</summary>
    public byte[]? Of(string path)
    {
        if (!_byName.TryGetValue(Path.GetFileName(path), out var h))
            return null;
        var info = new FileInfo(path);
        return info.Exists && info.Length == h.Length ? h.Hash : null;
    }
}

/// <summary>A write-only stream that hashes what goes through it into the file below, and records the hash
/// when closed.</summary>
internal sealed class HashingStream(Stream file, string fileName, WrittenHashes hashes) : Stream
{
    private readonly ManifestHash.Hasher _hasher = hashes.Algorithm.Start();
    private readonly System.Collections.Concurrent.ConcurrentQueue<int> _ahead = new();
    private long _written;
    private bool _disposed;

    /// <summary>Hashes the bytes the next write not yet hashed will carry (on another thread, ahead of it: see
    /// <see cref="Pages.IHashAheadSink"/>).</summary>
    public void HashAhead(ReadOnlySpan<byte> data)
    {
        _hasher.Append(data);
        _ahead.Enqueue(data.Length);
    }

    public override void Write(ReadOnlySpan<byte> data)
    {
        file.Write(data);
        if (_ahead.TryDequeue(out int hashed))
        {
            if (hashed != data.Length)
                throw new InvalidOperationException($"{fileName}: {data.Length} bytes written where {hashed} were hashed ahead");
        }
        else
            _hasher.Append(data);
        _written += data.Length;
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    protected override void Dispose(bool disposing)
    {
        if (disposing && !_disposed)
        {
            _disposed = true;
            file.Dispose();
            // Hashed ahead but never written (a failed dump): no hash, the manifest would name bytes not in the file.
            if (_ahead.IsEmpty)
                hashes.Record(fileName, _hasher.Finish(), _hasher.Length);
        }
        base.Dispose(disposing);
    }

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => !_disposed;
    public override long Length => _written;
    public override long Position { get => _written; set => throw new NotSupportedException(); }
    public override void Flush() => file.Flush();
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
}
