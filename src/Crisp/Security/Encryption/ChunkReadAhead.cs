using System.Buffers;

namespace Crisp.Security.Encryption;

/// <summary>Reads an encrypted file's sealed chunks ahead of its reader, in file order, on a thread of its own:
/// while the reader's thread opens (authenticates and decrypts) chunk i, this one reads chunks i+1… from the page
/// cache and feeds them to the manifest check, so on two cores the cipher overlaps the copy out of the page cache
/// (docs/bench.md "Encryption at rest"). At most <see cref="Depth"/> chunks are held. Nothing is authenticated
/// here: a chunk is accepted or refused by the reader when it opens it, as without read-ahead; a chunk the
/// reader never asks for is never judged, and a read that failed here (a file cut short) fails the reader only
/// when it reaches that chunk, with the same exception it would have met itself.</summary>
internal sealed class ChunkReadAhead : IDisposable
{
    /// <summary>Chunks read ahead of the one the reader is at.</summary>
    public const int Depth = 3;

    private readonly Action<long, Span<byte>> _read;
    private readonly Func<long, int> _length;
    /// <summary>Chunks to read: the file's, or up to a failed read.</summary>
    private long _end;
    private readonly Slot[] _slots = new Slot[Depth];
    private readonly object _lock = new();
    private readonly Thread _thread;
    /// <summary>Chunks before <see cref="_from"/> are done with; the thread reads <see cref="_next"/> next, while it
    /// is below _from + Depth. Chunk c lives in slot c % Depth.</summary>
    private long _from, _next;
    /// <summary>Bumped when the reader jumps elsewhere: a read in flight from before is dropped.</summary>
    private int _generation;
    private bool _stopped;

    private sealed class Slot
    {
        public readonly byte[] Buffer = ArrayPool<byte>.Shared.Rent(EncryptedFileFormat.ChunkSize + EncryptedFileFormat.TagSize);
        public long Chunk = -1;
        public bool Ready;
        public Exception? Error;
    }

    /// <param name="read">Reads chunk c's stored bytes (the length <paramref name="length"/> gives) into the span.</param>
    /// <param name="from">The first chunk to read ahead.</param>
    public ChunkReadAhead(long chunks, long from, Func<long, int> length, Action<long, Span<byte>> read)
    {
        _end = chunks;
        _from = _next = from;
        _length = length;
        _read = read;
        for (int i = 0; i < Depth; i++)
            _slots[i] = new Slot();
        _thread = new Thread(Run) { IsBackground = true, Name = "crisp read-ahead" };
        _thread.Start();
    }

    /// <summary>Chunk <paramref name="chunk"/>'s stored bytes when they were read ahead (waiting for a read in
    /// flight), valid until the next call; false when the reader must read it itself (it was not read ahead:
    /// the thread then goes on after it). Rethrows what reading it here threw.</summary>
    public bool TryTake(long chunk, out ReadOnlySpan<byte> stored)
    {
        stored = default;
        lock (_lock)
        {
            if (chunk < _from || chunk >= _next)
            {
                if (chunk >= _next)
                {
                    // A jump forward (or the thread fell behind): it goes on after this chunk, what it held is dropped.
                    _generation++;
                    foreach (var s in _slots)
                        s.Ready = false;
                    _from = _next = chunk + 1;
                    Monitor.PulseAll(_lock);
                }
                return false;
            }
            if (chunk > _from)
            {
                _from = chunk;   // the slots of the chunks before are free again
                Monitor.PulseAll(_lock);
            }
            var slot = _slots[chunk % Depth];
            while (!(slot.Ready && slot.Chunk == chunk))
                Monitor.Wait(_lock);
            if (slot.Error is { } e)
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e);
            stored = slot.Buffer.AsSpan(0, _length(chunk) + EncryptedFileFormat.TagSize);
            return true;
        }
    }

    /// <summary>Stops the thread (after the read in flight) and gives the buffers back.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            _stopped = true;
            Monitor.PulseAll(_lock);
        }
        _thread.Join();
        foreach (var s in _slots)
            ArrayPool<byte>.Shared.Return(s.Buffer);
    }

    private void Run()
    {
        Crisp.Linux.Sched.UseProcessCpus();
        while (true)
        {
            long chunk;
            int generation;
            Slot slot;
            lock (_lock)
            {
                while (!_stopped && (_next >= _end || _next >= _from + Depth))
                    Monitor.Wait(_lock);
                if (_stopped)
                    return;
                chunk = _next++;
                generation = _generation;
                slot = _slots[chunk % Depth];
                slot.Chunk = chunk;
                slot.Ready = false;
                slot.Error = null;
            }
            Exception? error = null;
            try
            {
                _read(chunk, slot.Buffer.AsSpan(0, _length(chunk) + EncryptedFileFormat.TagSize));
            }
            catch (Exception e)
            {
                error = e;
            }
            lock (_lock)
            {
                if (generation == _generation)
                {
                    slot.Error = error;
                    slot.Ready = true;
                    if (error is not null)
                        _end = chunk + 1;   // nothing after a failed read: the reader meets the failure first
                }
                Monitor.PulseAll(_lock);
            }
        }
    }
}
