using System.Collections.Concurrent;

namespace Crisp.Resources.Memory;

/// <summary>Page batches from the thread that fills them to a second thread that drains them, in order: at dump
/// one thread copies out of the task while the other writes pages-N.img, at restore one reads the file while
/// the other writes into the puppet. A few small batches go round (<see cref="Depth"/> × <see cref="BatchBytes"/>):
/// the drain finds the next batch queued when it finishes one, so neither side waits on a thread wake-up per
/// batch, and crisp's memory does not grow with the tree (issue 24: peak RSS, not only speed, counts inside a
/// container's memory limit). The batches are kept for the whole process: touching fresh memory costs more
/// than the copy itself in this VM (docs/bench.md).</summary>
internal sealed class PagePipe : IDisposable
{
    /// <summary>Bytes per batch: large enough that one syscall moves many pages, small enough to stay in cache.</summary>
    public const int BatchBytes = 1 << 20;
    /// <summary>Batches in flight: one being filled, one being drained, the rest queued.</summary>
    public const int Depth = 4;

    private static readonly Stack<PageBatch> s_pool = new();

    private readonly BlockingCollection<PageBatch> _free = new(new ConcurrentQueue<PageBatch>(), Depth);
    private readonly BlockingCollection<PageBatch> _full = new(new ConcurrentQueue<PageBatch>(), Depth);
    private readonly CancellationTokenSource _failed = new();
    private readonly Action<PageBatch> _drain;
    private readonly Task _drainer;
    private readonly PageBatch[] _batches;
    private Exception? _drainError;
    private bool _disposed;

    public PagePipe(Action<PageBatch> drain)
    {
        _drain = drain;
        _batches = Take();
        foreach (var b in _batches)
            _free.Add(b);
        // Its own thread, not a pool one: it blocks for the whole task's memory, and a starved pool (many dumps in
        // one process) would only add threads slowly.
        _drainer = Task.Factory.StartNew(Drain, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    /// <summary>An empty batch to fill; waits while every batch is queued or being drained.</summary>
    public PageBatch Rent()
    {
        try
        {
            var batch = _free.Take(_failed.Token);
            batch.Clear();
            return batch;
        }
        catch (OperationCanceledException)
        {
            ThrowDrainFailure();
            throw;
        }
    }

    /// <summary>Queues a filled batch for the drain (batches are drained in the order they are submitted).</summary>
    public void Submit(PageBatch batch)
    {
        try
        {
            _full.Add(batch, _failed.Token);
        }
        catch (OperationCanceledException)
        {
            ThrowDrainFailure();
        }
    }

    /// <summary>Waits until every submitted batch is drained; rethrows the drain's failure.</summary>
    public void Complete()
    {
        _full.CompleteAdding();
        try { _drainer.Wait(); } catch (AggregateException) { }
        if (_drainError is not null)
            ThrowDrainFailure();
    }

    /// <summary>Stops the drain (after a failure of the filling side too) and hands the batches back; the drain
    /// never touches a batch after this returns.</summary>
    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        if (!_full.IsAddingCompleted)
        {
            _failed.Cancel();
            _full.CompleteAdding();
        }
        try { _drainer.Wait(); } catch (AggregateException) { }
        Give(_batches);
        _free.Dispose();
        _full.Dispose();
        _failed.Dispose();
    }

    private void Drain()
    {
        try
        {
            foreach (var batch in _full.GetConsumingEnumerable(_failed.Token))
            {
                _drain(batch);
                _free.Add(batch);
            }
        }
        catch (OperationCanceledException) when (_failed.IsCancellationRequested && _drainError is null)
        {
            // Stopped by Dispose after the filling side failed.
        }
        catch (Exception e)
        {
            _drainError = e;
            _failed.Cancel();
        }
    }

    /// <summary>The drain's own exception, its type and stack trace kept (ENOSPC must reach DumpOutput as it is).</summary>
    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private void ThrowDrainFailure()
    {
        if (_drainError is { } e)
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e);
        throw new ObjectDisposedException(nameof(PagePipe));
    }

    private static PageBatch[] Take()
    {
        var batches = new PageBatch[Depth];
        lock (s_pool)
            for (int i = 0; i < Depth; i++)
                batches[i] = s_pool.Count > 0 ? s_pool.Pop() : new PageBatch(BatchBytes);
        return batches;
    }

    private static void Give(PageBatch[] batches)
    {
        lock (s_pool)
            foreach (var b in batches)
                s_pool.Push(b);
    }
}
