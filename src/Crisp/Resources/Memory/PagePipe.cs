using System.Collections.Concurrent;
using Crisp.Linux;

namespace Crisp.Resources.Memory;

/// <summary>The one batching of page data, for both directions: runs are packed into fixed batches; a full batch
/// is filled on the calling thread (dump: read out of the task; restore: read from the page source) and queued
/// for a second thread that drains it, in order (dump: into the page sink; restore: into the puppet). A few
/// small batches go round (<see cref="Depth"/> × <see cref="BatchBytes"/>): the drain finds the next batch queued
/// when it finishes one, so neither side waits on a thread wake-up per batch, the copy overlaps the I/O, and
/// crisp's memory does not grow with the tree (issue 24: peak RSS, not only speed, counts inside a container's
/// memory limit). Nothing is allocated per batch: batches come from the session's <see cref="PageBatchPool"/>.</summary>
internal sealed class PagePipe : IDisposable
{
    /// <summary>Bytes per batch: large enough that one syscall moves many pages, small enough to stay in cache.</summary>
    public const int BatchBytes = 1 << 20;
    /// <summary>Batches in flight: one being filled, one being drained, the rest queued.</summary>
    public const int Depth = 4;

    private readonly BlockingCollection<PageBatch> _free = new(new ConcurrentQueue<PageBatch>(), Depth);
    private readonly BlockingCollection<PageBatch> _full = new(new ConcurrentQueue<PageBatch>(), Depth);
    private readonly CancellationTokenSource _failed = new();
    private readonly PageBatchPool _pool;
    private readonly Action<PageBatch> _fill, _drain;
    private readonly Action<PageBatch>? _inOrder;
    // The ordered step's turn: batches queued and not yet through it (oldest first), and whether one is in it now.
    // Guarded by _turn, which is also pulsed when a batch comes back free (the filler may wait for either).
    private readonly Queue<PageBatch> _unstepped = new(Depth);
    private bool _stepping;
    private readonly object _turn = new();
    private Task? _drainer;
    private long _drainedInline;
    // Taken from the pool as the pipe first needs them (a small task's pages fit one batch: allocating all four
    // was most of a small restore's memory stage), given back on Dispose.
    private readonly List<PageBatch> _batches = new(Depth);
    private PageBatch? _batch;
    private Exception? _drainError;
    private bool _disposed;

    /// <param name="fill">Puts the batch's bytes in its buffer (its ranges are set); runs on the caller's thread.</param>
    /// <param name="drain">Takes a filled batch away; runs on the pipe's own thread, batches in order.</param>
    /// <param name="inOrder">A step each filled batch goes through once, in batch order, before its drain (dump: the
    /// page file's hash, one stream): on the filler's thread right after it fills the batch when the drain is the
    /// slower side (batches wait for it: the bytes are still in the filler's cache) or while the filler waits for a
    /// free batch, else on the drain's right before it drains the batch. Either side may be the
    /// longer one — reading out of a task and hashing against writing into the page cache, which turns with the
    /// machine and the disk — and the step goes to whichever has time (issue 18, plain-dump throughput).</param>
    public PagePipe(PageBatchPool pool, Action<PageBatch> fill, Action<PageBatch> drain, Action<PageBatch>? inOrder = null)
    {
        _pool = pool;
        _fill = fill;
        _drain = drain;
        _inOrder = inOrder;
        if (inOrder is not null)
            // Whichever side fails, the other may be waiting for its turn or a free batch: wake it to see the failure.
            _failed.Token.Register(() =>
            {
                lock (_turn)
                    Monitor.PulseAll(_turn);
            });
    }

    /// <summary>Every other batch is filled on the pipe's thread, right before it drains it, while the caller fills
    /// the next: for a sink that keeps the pages where they were read (dump -R's spool, <see cref="Images.Pages.IPageRoom"/>)
    /// the drain has nothing to copy, and the frozen copy runs on both cores (issue 18, freeze time). The fill must
    /// then be safe on two threads at once.</summary>
    public bool FillOnBothSides { get; init; }
    private long _flushes;

    /// <summary>Data drained on the calling thread before the drain thread starts: a small task's pages (most
    /// tasks of most trees) cost less to write in place than a thread start and its wake-ups (issue 18, small trees).</summary>
    public const long InlineBytes = 2 * BatchBytes;

    private void StartDrainer() =>
        // Its own thread, not a pool one: it blocks for the whole task's memory, and a starved pool (many dumps in
        // one process) would only add threads slowly.
        _drainer = Task.Factory.StartNew(Drain, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    /// <summary>Adds a run of pages. <paramref name="accessible"/>: readable by process_vm_readv (dump) or writable
    /// by process_vm_writev (restore); a batch never mixes the two.</summary>
    public void Add(RemoteRange run, bool accessible)
    {
        if (_batch is { IsEmpty: false } open && open.Accessible != accessible)
            Flush();
        while (run.Length > 0)
        {
            if (_batch is { Room: 0 })
                Flush();
            _batch ??= Rent();
            if (_batch.IsEmpty)
                _batch.Accessible = accessible;
            ulong take = Math.Min(run.Length, (ulong)_batch.Room);
            _batch.Add(run with { Length = take });
            run = new RemoteRange(run.Address + take, run.Length - take);
        }
    }

    /// <summary>Dump: a run whose pages are held in memory at <paramref name="at"/> already (<see cref="RunningCopy"/>),
    /// queued in address order as batches of their own, up to <see cref="HeldBytes"/> each: nothing is read. A run
    /// whose data follows the open held batch's joins it: a copy of scattered pages (every tenth page written after a
    /// pre-dump) lies back to back in memory, and a batch per page cost a hand-off each.</summary>
    public void AddHeld(RemoteRange run, nint at)
    {
        if (_batch is { Held: true } open && open.HeldEnd == at && (ulong)open.Bytes + run.Length <= HeldBytes)
        {
            open.HoldMore(run);
            return;
        }
        Flush();
        while (run.Length > 0)
        {
            ulong take = Math.Min(run.Length, HeldBytes);
            if (_batch is not null)
                Flush();
            var batch = Rent();
            batch.Hold(run with { Length = take }, at);
            _batch = batch;   // left open: the next held run may join it
            run = new RemoteRange(run.Address + take, run.Length - take);
            at += (nint)take;
        }
    }

    /// <summary>The most bytes of one held batch (<see cref="AddHeld"/>).</summary>
    public const ulong HeldBytes = 64 << 20;

    /// <summary>Dump: a run recorded without data (the parent images hold it, or it is lazy), kept in address order.</summary>
    public void AddParentRun(RemoteRange run, Images.PagemapFlags flags = Images.PagemapFlags.Parent)
    {
        _batch ??= Rent();
        _batch.AddParentRun(run, flags);
    }

    /// <summary>Fills the open batch and queues it for the drain.</summary>
    public void Flush()
    {
        if (_batch is not { HasNothing: false } batch)
            return;
        _batch = null;
        // A held batch drains without a copy: inline whatever its size, while no drain thread runs (order kept).
        bool inline = _drainer is null && (batch.Held || _drainedInline + batch.Bytes <= InlineBytes);
        // Not with an ordered step: the filler could take a batch for the step before the drain has filled it.
        batch.FillOnDrain = !inline && FillOnBothSides && _inOrder is null && !batch.Held && (_flushes++ & 1) == 1;
        if (!batch.FillOnDrain && !batch.Held)
            _fill(batch);
        if (inline)
        {
            _drainedInline += batch.Held ? 0 : batch.Bytes;
            try
            {
                if (_inOrder is not null)
                {
                    _inOrder(batch);
                    batch.Stepped = true;
                }
                _drain(batch);
            }
            finally
            {
                _free.Add(batch);
            }
            return;
        }
        if (_drainer is null)
            StartDrainer();
        if (_inOrder is not null)
            StepOrQueue(batch);
        try
        {
            _full.Add(batch, _failed.Token);
        }
        catch (OperationCanceledException)
        {
            ThrowDrainFailure();
        }
    }

    /// <summary>Flushes the open batch and waits until every batch is drained; rethrows the drain's failure.</summary>
    public void Complete()
    {
        Flush();
        _full.CompleteAdding();
        try { _drainer?.Wait(); } catch (AggregateException) { }
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
        try { _drainer?.Wait(); } catch (AggregateException) { }
        _pool.Give([.. _batches]);
        _free.Dispose();
        _full.Dispose();
        _failed.Dispose();
    }

    /// <summary>An empty batch to fill; waits while every batch is queued or being drained.</summary>
    private PageBatch Rent()
    {
        try
        {
            if (!_free.TryTake(out var batch))
            {
                if (_batches.Count < Depth)
                {
                    batch = _pool.Take(1, BatchBytes)[0];
                    _batches.Add(batch);
                }
                else
                    batch = _inOrder is null ? _free.Take(_failed.Token) : TakeFreeStepping();
            }
            batch.Clear();
            return batch;
        }
        catch (OperationCanceledException)
        {
            ThrowDrainFailure();
            throw;
        }
    }

    /// <summary>Waits for a free batch, putting queued batches through the ordered step meanwhile: the drain is
    /// behind, so the step is better done here than on its thread.</summary>
    private PageBatch TakeFreeStepping()
    {
        while (true)
        {
            if (_free.TryTake(out var batch))
                return batch;
            if (TryStepNext())
                continue;
            lock (_turn)
                if (_free.Count == 0 && !CanStepNext && !_failed.IsCancellationRequested)
                    Monitor.Wait(_turn);
            _failed.Token.ThrowIfCancellationRequested();
        }
    }

    private bool CanStepNext => !_stepping && _unstepped.Count > 0;

    /// <summary>A batch just filled: stepped here at once while its bytes are in this core's cache, when the drain has
    /// batches queued still (it is the slower side) and every batch before has been through the step; else queued
    /// for the step — the drain's before it writes it, or this thread's while it waits for a free batch.</summary>
    private void StepOrQueue(PageBatch batch)
    {
        lock (_turn)
        {
            if (_full.Count == 0 || _stepping || _unstepped.Count > 0)
            {
                _unstepped.Enqueue(batch);
                return;
            }
            _stepping = true;
        }
        Step(batch);
    }

    /// <summary>Puts the oldest batch not yet through the ordered step through it, if none is in it now.</summary>
    private bool TryStepNext()
    {
        PageBatch batch;
        lock (_turn)
        {
            if (!CanStepNext)
                return false;
            batch = _unstepped.Dequeue();
            _stepping = true;
        }
        Step(batch);
        return true;
    }

    /// <summary>Runs the step; a batch whose step failed stays un-stepped, so the drain never takes it (the failure
    /// stops the pipe: the filler's through Dispose, the drain's through its own catch).</summary>
    private void Step(PageBatch batch)
    {
        bool done = false;
        try
        {
            _inOrder!(batch);
            done = true;
        }
        finally
        {
            lock (_turn)
            {
                batch.Stepped = done;
                _stepping = false;
                Monitor.PulseAll(_turn);
            }
        }
    }

    /// <summary>The drain's side of the ordered step: <paramref name="batch"/> goes through it here unless the filler
    /// has taken it (then the drain waits for it). Every batch before it has been through already (the drain
    /// takes them in order and each waited for its own).</summary>
    private void StepBeforeDrain(PageBatch batch)
    {
        lock (_turn)
        {
            while (!batch.Stepped)
            {
                if (!_stepping && _unstepped.TryPeek(out var next) && next == batch)
                {
                    _unstepped.Dequeue();
                    _stepping = true;
                    break;
                }
                _failed.Token.ThrowIfCancellationRequested();
                Monitor.Wait(_turn);
            }
            if (batch.Stepped)
                return;
        }
        Step(batch);
    }

    private void Drain()
    {
        Crisp.Linux.Sched.UseProcessCpus();
        if (_pool.Log.Enabled(LogLevel.Debug))
            _pool.Log.Debug($"page pipe: drains on CPUs {string.Join(',', Crisp.Linux.Sched.Cpus(Crisp.Linux.Sched.GetAffinity(0)))}");
        try
        {
            foreach (var batch in _full.GetConsumingEnumerable(_failed.Token))
            {
                if (batch.FillOnDrain)
                    _fill(batch);
                if (_inOrder is not null)
                    StepBeforeDrain(batch);
                _drain(batch);
                _free.Add(batch);
                if (_inOrder is not null)
                    lock (_turn)
                        Monitor.PulseAll(_turn);   // a filler waiting for a free batch takes it
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
}
