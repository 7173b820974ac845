namespace Crisp.Images.Pages;

/// <summary>Where a dump's page data goes: a pagemap's runs in address order, with the pages of the present
/// ones back to back. <see cref="PageFileSink"/> writes pagemap-*.img + pages-N.img (hashed as written),
/// <see cref="PageServerSink"/> sends them to a page server (CRIU's protocol). A PE_PARENT run names pages an
/// earlier checkpoint of the chain holds: it carries no data on any transport.</summary>
public interface IPageSink : IDisposable
{
    /// <summary>Takes runs and the data of their present runs, in order (<paramref name="data"/> is their
    /// concatenation). The data is the caller's again when this returns.</summary>
    void Write(ReadOnlySpan<PageRun> runs, ReadOnlySpan<byte> data);

    /// <summary>Every run is written: entries still held back (to merge with a next run) go out.</summary>
    void Complete();
}

/// <summary>A sink that hashes what it writes (for the manifest) and can be given a batch's hash ahead of the write, on
/// the thread that read the batch while it is still in that core's cache: a dump's writing thread then only writes
/// (issue 18, throughput: the hash was a tenth of the writer's time on the page cache).</summary>
public interface IHashAheadSink
{
    /// <summary>False where the bytes written are not the bytes given (an encrypted pages file hashes ciphertext).</summary>
    bool CanHashAhead { get; }

    /// <summary>Hashes the data of the next <see cref="IPageSink.Write"/> not hashed yet: every data write must come
    /// through here first, in the order of the writes.</summary>
    void HashAhead(ReadOnlySpan<byte> data);
}

/// <summary>A sink that holds page data in memory of its own (a <see cref="PageSpool"/>): the dump may read a batch
/// straight into room taken here, and a <see cref="IPageSink.Write"/> of data lying in that room keeps it where it is
/// instead of copying it (issue 18, freeze time: one copy of the tree's pages while it is frozen, not two).</summary>
public interface IPageRoom
{
    /// <summary>Room for <paramref name="length"/> bytes (whole pages), or false: the batch goes through crisp's own
    /// buffer as usual. Room taken must be handed back by a Write of exactly that memory, in batch order.</summary>
    bool TryTakeRoom(int length, out nint at);
}
