using System.Buffers;
using static Crisp.Security.Encryption.EncryptedFileFormat;

namespace Crisp.Security.Encryption;

/// <summary>Writes an encrypted file's sealed chunks to the stream below (the file, hashed for the manifest on its
/// way) in order, on a thread of its own once the file passes <see cref="InlineChunks"/> chunks: the writer's thread
/// seals the next chunk while this one writes and hashes the last, so on two cores the cipher overlaps the copy
/// into the page cache instead of adding to it (docs/bench.md "Encryption at rest"). A few pooled chunk buffers go
/// round (<see cref="Depth"/> queued, one being written, one being sealed): memory does not grow with the file.
/// A failed write (ENOSPC) is rethrown as it is, type and stack kept, by the next <see cref="Take"/>,
/// <see cref="Write"/> or <see cref="Complete"/>.</summary>
internal sealed class ChunkWriteBehind(Stream file) : IDisposable
{
    /// <summary>Sealed chunks queued for the thread.</summary>
    public const int Depth = 2;
    /// <summary>Chunks written on the caller's thread before the thread starts: a small image (every image but the
    /// pages of a large task) costs less to write in place than a thread start.</summary>
    public const int InlineChunks = 2;
    public const int BufferSize = ChunkSize + TagSize;

    // A lock and Monitor.Wait, not BlockingCollection: its SemaphoreSlim spins before it blocks, and on two shared
    // cores that spinning took as much CPU as the writes (a 1 GiB file: 0.5 s of CPU became 1.1 s).
    private readonly object _lock = new();
    private readonly Queue<(byte[] Buffer, int Length)> _queue = new();
    private readonly Stack<byte[]> _free = new();
    private readonly List<byte[]> _rented = [];
    private Thread? _writer;
    private int _inline;
    private Exception? _error;
    private bool _completed, _stopped, _disposed;

    /// <summary>A buffer of <see cref="BufferSize"/> bytes to seal the next chunk into; waits while every buffer
    /// is queued or being written.</summary>
    public byte[] Take()
    {
        lock (_lock)
        {
            while (true)
            {
                ThrowIfFailed();
                if (_free.TryPop(out var buffer))
                    return buffer;
                if (_rented.Count < Depth + 2)
                {
                    // Pooled: a dump opens one stream per image.
                    buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
                    _rented.Add(buffer);
                    return buffer;
                }
                Monitor.Wait(_lock);
            }
        }
    }

    /// <summary>Writes the first <paramref name="length"/> bytes of a buffer from <see cref="Take"/> after those
    /// before it, and takes the buffer back.</summary>
    public void Write(byte[] buffer, int length)
    {
        if (_writer is null && _inline < InlineChunks)
        {
            _inline++;
            try
            {
                file.Write(buffer, 0, length);
            }
            finally
            {
                lock (_lock)
                    _free.Push(buffer);
            }
            return;
        }
        if (_writer is null)
        {
            // Its own thread, not a pool one: it blocks for the whole file.
            _writer = new Thread(Run) { IsBackground = true, Name = "crisp write-behind" };
            _writer.Start();
        }
        lock (_lock)
        {
            while (_queue.Count >= Depth && _error is null)
                Monitor.Wait(_lock);
            if (_error is not null)
                _free.Push(buffer);
            ThrowIfFailed();
            _queue.Enqueue((buffer, length));
            Monitor.PulseAll(_lock);
        }
    }

    /// <summary>Waits until every queued chunk is written; rethrows a failed write.</summary>
    public void Complete()
    {
        lock (_lock)
        {
            _completed = true;
            Monitor.PulseAll(_lock);
        }
        _writer?.Join();
        lock (_lock)
            ThrowIfFailed();
    }

    /// <summary>Stops the thread (what is queued after a failure is dropped) and gives the buffers back; the
    /// stream below is the caller's to close.</summary>
    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        lock (_lock)
        {
            _stopped = true;
            Monitor.PulseAll(_lock);
        }
        _writer?.Join();
        foreach (var b in _rented)
            ArrayPool<byte>.Shared.Return(b);
        _rented.Clear();
    }

    private void Run()
    {
        try
        {
            while (true)
            {
                (byte[] Buffer, int Length) chunk;
                lock (_lock)
                {
                    while (_queue.Count == 0 && !_completed && !_stopped)
                        Monitor.Wait(_lock);
                    if (_stopped || _queue.Count == 0)
                        return;
                    chunk = _queue.Dequeue();
                    Monitor.PulseAll(_lock);
                }
                file.Write(chunk.Buffer, 0, chunk.Length);
                lock (_lock)
                {
                    _free.Push(chunk.Buffer);
                    Monitor.PulseAll(_lock);
                }
            }
        }
        catch (Exception e)
        {
            lock (_lock)
            {
                _error = e;
                Monitor.PulseAll(_lock);
            }
        }
    }

    private void ThrowIfFailed()
    {
        if (_error is { } e)
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e);
    }
}
