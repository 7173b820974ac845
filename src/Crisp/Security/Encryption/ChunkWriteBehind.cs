using System.Buffers;
using System.Collections.Concurrent;
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

    private readonly BlockingCollection<(byte[] Buffer, int Length)> _queue = new(new ConcurrentQueue<(byte[], int)>(), Depth);
    private readonly BlockingCollection<byte[]> _free = new(new ConcurrentQueue<byte[]>());
    private readonly CancellationTokenSource _failed = new();
    private readonly List<byte[]> _rented = [];
    private Task? _writer;
    private int _inline;
    private Exception? _error;
    private bool _disposed;

    /// <summary>A buffer of <see cref="BufferSize"/> bytes to seal the next chunk into; waits while every buffer
    /// is queued or being written.</summary>
    public byte[] Take()
    {
        ThrowIfFailed();
        if (_free.TryTake(out var buffer))
            return buffer;
        if (_rented.Count < Depth + 2)
        {
            // Pooled: a dump opens one stream per image.
            buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
            _rented.Add(buffer);
            return buffer;
        }
        try
        {
            return _free.Take(_failed.Token);
        }
        catch (OperationCanceledException)
        {
            ThrowIfFailed();
            throw;
        }
    }

    /// <summary>Writes the first <paramref name="length"/> bytes of a buffer from <see cref="Take"/> after those
    /// before it, and takes the buffer back.</summary>
    public void Write(byte[] buffer, int length)
    {
        ThrowIfFailed();
        if (_writer is null && _inline < InlineChunks)
        {
            _inline++;
            try
            {
                file.Write(buffer, 0, length);
            }
            finally
            {
                _free.Add(buffer);
            }
            return;
        }
        // Its own thread, not a pool one: it blocks for the whole file (PagePipe's drain does the same).
        _writer ??= Task.Factory.StartNew(Run, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        try
        {
            _queue.Add((buffer, length), _failed.Token);
        }
        catch (OperationCanceledException)
        {
            _free.Add(buffer);
            ThrowIfFailed();
            throw;
        }
    }

    /// <summary>Waits until every queued chunk is written; rethrows a failed write.</summary>
    public void Complete()
    {
        _queue.CompleteAdding();
        try { _writer?.Wait(); } catch (AggregateException) { }
        ThrowIfFailed();
    }

    /// <summary>Stops the thread (what is queued after a failure is dropped) and gives the buffers back; the
    /// stream below is the caller's to close.</summary>
    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        if (!_queue.IsAddingCompleted)
        {
            _failed.Cancel();
            _queue.CompleteAdding();
        }
        try { _writer?.Wait(); } catch (AggregateException) { }
        foreach (var b in _rented)
            ArrayPool<byte>.Shared.Return(b);
        _rented.Clear();
        _queue.Dispose();
        _free.Dispose();
        _failed.Dispose();
    }

    private void Run()
    {
        try
        {
            foreach (var (buffer, length) in _queue.GetConsumingEnumerable(_failed.Token))
            {
                file.Write(buffer, 0, length);
                _free.Add(buffer);
            }
        }
        catch (OperationCanceledException) when (_failed.IsCancellationRequested && _error is null)
        {
            // Stopped by Dispose after the sealing side failed.
        }
        catch (Exception e)
        {
            _error = e;
            _failed.Cancel();
        }
    }

    private void ThrowIfFailed()
    {
        if (_error is { } e)
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e);
    }
}
