using Crisp.Images;
using Crisp.Linux;
using Crisp.Linux.Proc;
using Microsoft.Win32.SafeHandles;

namespace Crisp.Resources.Memory;

/// <summary>Stores the private pages of a task in pagemap-PID.img + pages-N.img: in anonymous VMAs every
/// page that is present or swapped, in private file VMAs only the anonymous (copied-on-write) ones.
/// Pages are found with PAGEMAP_SCAN where the kernel has it (time follows populated pages, not VMA size),
/// read in large batches with process_vm_readv (/proc/PID/mem covers what it cannot read: PROT_NONE or
/// otherwise unreadable VMAs), and written by a second thread while the next batch is read.</summary>
public sealed class PrivatePagesDump(int pid, PagemapWriter writer)
{
    /// <summary>Bytes read per process_vm_readv batch.</summary>
    public const int BatchBytes = 32 << 20;

    private const ulong PageSize = Pagemap.PageSize;
    private const ulong PresentOrSwapped = 3UL << 62, FilePage = 1UL << 61;

    private readonly BatchBuffers _buffers = BatchBuffers.Take(BatchBytes);
    private List<RemoteRange> _batch = [];
    private int _batchBytes;
    private SafeFileHandle? _mem;
    private Task _writing = Task.CompletedTask;

    /// <summary>Pages stored so far (the count a stats counter reads).</summary>
    public long Pages => writer.PagesWritten;

    public void Dump(IEnumerable<DumpedVma> vmas)
    {
        using var pagemap = Pagemap.Open(pid);
        try
        {
            foreach (var vma in vmas)
            {
                if (!vma.HasPrivatePages)
                    continue;
                bool fileBacked = vma.Is(VmaStatus.FilePrivate);
                foreach (var run in Runs(pagemap, vma.Start, vma.End, fileBacked))
                    Add(run, vma.Maps.CanRead);
                Flush(vma.Maps.CanRead);   // a batch never mixes readable and unreadable VMAs
            }
            _writing.GetAwaiter().GetResult();
        }
        finally
        {
            // A failed read must not leave the writer thread using the buffers we hand back.
            try { _writing.Wait(); } catch (AggregateException) { }
            _mem?.Dispose();
            _buffers.Return();
        }
    }

    /// <summary>Runs of pages to store: PAGEMAP_SCAN (present or swapped, and not file pages where only
    /// anonymous copies are wanted) or, on older kernels, pagemap entries read in chunks.</summary>
    private static IEnumerable<RemoteRange> Runs(Pagemap pagemap, ulong start, ulong end, bool onlyAnonCopies) =>
        pagemap.ScanSupported
            ? pagemap.ScanRuns(start, end, excludeFile: onlyAnonCopies).Select(r => new RemoteRange(r.Start, r.Length))
            : ReadRuns(pagemap, start, end, onlyAnonCopies);

    private static IEnumerable<RemoteRange> ReadRuns(Pagemap pagemap, ulong start, ulong end, bool onlyAnonCopies)
    {
        var entries = new ulong[Math.Min((end - start) / PageSize, (ulong)Pagemap.MaxEntriesPerRead)];
        ulong runStart = 0, runEnd = 0;
        for (ulong at = start; at < end;)
        {
            int n = (int)Math.Min((end - at) / PageSize, (ulong)entries.Length);
            pagemap.ReadEntries(at, entries.AsSpan(0, n));
            for (int i = 0; i < n; i++)
            {
                ulong e = entries[i];
                bool wanted = (e & PresentOrSwapped) != 0 && !(onlyAnonCopies && (e & FilePage) != 0);
                ulong page = at + (ulong)i * PageSize;
                if (!wanted)
                    continue;
                if (page == runEnd)
                {
                    runEnd += PageSize;
                    continue;
                }
                if (runEnd > runStart)
                    yield return new RemoteRange(runStart, runEnd - runStart);
                runStart = page;
                runEnd = page + PageSize;
            }
            at += (ulong)n * PageSize;
        }
        if (runEnd > runStart)
            yield return new RemoteRange(runStart, runEnd - runStart);
    }

    private void Add(RemoteRange run, bool readable)
    {
        while (run.Length > 0)
        {
            if (_batchBytes == BatchBytes)
                Flush(readable);
            ulong take = Math.Min(run.Length, (ulong)(BatchBytes - _batchBytes));
            _batch.Add(run with { Length = take });
            _batchBytes += (int)take;
            run = new RemoteRange(run.Address + take, run.Length - take);
        }
    }

    /// <summary>Reads the batch into the free buffer, then hands it to the writer thread: reading the next
    /// batch overlaps writing this one (two cores: one copies out of the task, one into the page cache).</summary>
    private void Flush(bool readable)
    {
        if (_batch.Count == 0)
            return;
        var buffer = _buffers.Next();
        long done = readable ? ProcessVm.Read(pid, _batch.ToArray(), buffer.AsSpan(0, _batchBytes)) : 0;
        if (done < _batchBytes)
            ReadThroughProcMem(buffer, done);
        var runs = _batch;
        _writing.GetAwaiter().GetResult();   // the writer is done with the other buffer, and in order
        _writing = Task.Run(() => Write(buffer, runs));
        _batch = [];
        _batchBytes = 0;
    }

    private void Write(byte[] buffer, List<RemoteRange> runs)
    {
        int offset = 0;
        foreach (var r in runs)
        {
            writer.AddPages(r.Address, buffer.AsSpan(offset, (int)r.Length));
            offset += (int)r.Length;
        }
    }

    /// <summary>The rest of the batch from byte <paramref name="from"/> on, through /proc/PID/mem (FOLL_FORCE
    /// reads pages process_vm_readv refuses).</summary>
    private void ReadThroughProcMem(byte[] buffer, long from)
    {
        _mem ??= File.OpenHandle($"/proc/{pid}/mem", FileMode.Open, FileAccess.Read);
        long offset = 0;
        foreach (var r in _batch)
        {
            long rEnd = offset + (long)r.Length;
            if (rEnd > from)
            {
                long skip = Math.Max(0, from - offset);
                var span = buffer.AsSpan((int)(offset + skip), (int)((long)r.Length - skip));
                long addr = (long)r.Address + skip;
                int got = 0;
                while (got < span.Length)
                {
                    int n = RandomAccess.Read(_mem, span[got..], addr + got);
                    if (n <= 0)
                        throw new SyscallException($"pread(/proc/{pid}/mem, 0x{addr + got:x})", Errnos.EIO);
                    got += n;
                }
            }
            offset = rEnd;
        }
    }
}
