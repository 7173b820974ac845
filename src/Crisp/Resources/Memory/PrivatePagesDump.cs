using Crisp.Images;
using Crisp.Linux;
using Crisp.Linux.Proc;
using Microsoft.Win32.SafeHandles;

namespace Crisp.Resources.Memory;

/// <summary>Stores the private pages of a task in pagemap-PID.img + pages-N.img: in anonymous VMAs every
/// page that is present or swapped, in private file VMAs only the anonymous (copied-on-write) ones.
/// Pages are read in large batches with process_vm_readv; /proc/PID/mem covers what it cannot read
/// (PROT_NONE or otherwise unreadable VMAs).</summary>
public sealed class PrivatePagesDump(int pid, PagemapWriter writer)
{
    /// <summary>Bytes read per process_vm_readv batch.</summary>
    public const int BatchBytes = 32 << 20;

    private const ulong PageSize = Pagemap.PageSize;
    private const ulong PresentOrSwapped = 3UL << 62, FilePage = 1UL << 61;

    private readonly byte[] _buffer = GC.AllocateUninitializedArray<byte>(BatchBytes);
    private readonly List<RemoteRange> _batch = [];
    private int _batchBytes;
    private SafeFileHandle? _mem;

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
        }
        finally
        {
            _mem?.Dispose();
        }
    }

    /// <summary>Runs of pages to store, from pagemap entries read in chunks (a VMA may be huge and sparse).</summary>
    private static IEnumerable<RemoteRange> Runs(Pagemap pagemap, ulong start, ulong end, bool onlyAnonCopies)
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

    private void Flush(bool readable)
    {
        if (_batch.Count == 0)
            return;
        var data = _buffer.AsSpan(0, _batchBytes);
        long done = readable ? ProcessVm.Read(pid, _batch.ToArray(), data) : 0;
        if (done < _batchBytes)
            ReadThroughProcMem(done);
        int offset = 0;
        foreach (var r in _batch)
        {
            writer.AddPages(r.Address, data.Slice(offset, (int)r.Length));
            offset += (int)r.Length;
        }
        _batch.Clear();
        _batchBytes = 0;
    }

    /// <summary>The rest of the batch from byte <paramref name="from"/> on, through /proc/PID/mem (FOLL_FORCE
    /// reads pages process_vm_readv refuses).</summary>
    private void ReadThroughProcMem(long from)
    {
        _mem ??= File.OpenHandle($"/proc/{pid}/mem", FileMode.Open, FileAccess.Read);
        long offset = 0;
        foreach (var r in _batch)
        {
            long rEnd = offset + (long)r.Length;
            if (rEnd > from)
            {
                long skip = Math.Max(0, from - offset);
                var span = _buffer.AsSpan((int)(offset + skip), (int)((long)r.Length - skip));
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
