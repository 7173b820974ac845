namespace Crisp.Resources.Memory;

/// <summary>Two page-batch buffers, one filled while the other drains on a second thread. Handed back
/// after each task and reused by the next one: touching fresh memory costs more than the copy itself
/// (docs/bench.md), so the same pages serve every task of a dump or restore.</summary>
internal sealed class BatchBuffers
{
    private static BatchBuffers? s_free;

    private readonly byte[][] _buffers;
    private int _next;

    private BatchBuffers(int size) =>
        _buffers = [GC.AllocateUninitializedArray<byte>(size, pinned: true), GC.AllocateUninitializedArray<byte>(size, pinned: true)];

    public static BatchBuffers Take(int size) =>
        Interlocked.Exchange(ref s_free, null) is { } b && b._buffers[0].Length == size ? b : new BatchBuffers(size);

    /// <summary>The buffer after the one last returned (the caller has waited for its previous user).</summary>
    public byte[] Next()
    {
        var b = _buffers[_next];
        _next ^= 1;
        return b;
    }

    public void Return()
    {
        _next = 0;
        Volatile.Write(ref s_free, this);
    }
}
