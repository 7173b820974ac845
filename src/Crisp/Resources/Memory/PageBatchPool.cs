namespace Crisp.Resources.Memory;

/// <summary>The page batches of one dump or restore (<see cref="PagePipe"/>), kept from task to task: touching
/// fresh memory costs more than the copy itself in this VM (docs/bench.md), so each pipe takes the batches the
/// previous one gave back. Owned by the session, not the process: two sessions side by side share nothing.</summary>
/// <param name="populate">Batches are backed when made (restore: every batch is written into at once, and
/// populating a batch costs less than a quarter of faulting in the pages a small task fills, <see cref="MappedPages"/>).
/// A dump leaves them unbacked: with -R its pages go into the spool and a batch's own memory may never be used.</param>
public sealed class PageBatchPool(Log? log = null, bool populate = false)
{
    private readonly Stack<PageBatch> _free = new();

    /// <summary>The session's log, for the pipes that take batches from this pool.</summary>
    internal Log Log { get; } = log ?? Log.Null;

    internal PageBatch[] Take(int count, int bytes)
    {
        var batches = new PageBatch[count];
        lock (_free)
            for (int i = 0; i < count; i++)
                batches[i] = _free.Count > 0 ? _free.Pop() : new PageBatch(bytes, populate);
        return batches;
    }

    internal void Give(PageBatch[] batches)
    {
        lock (_free)
            foreach (var b in batches)
                _free.Push(b);
    }
}
