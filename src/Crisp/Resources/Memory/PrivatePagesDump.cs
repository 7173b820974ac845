using Crisp.Images;
using Crisp.Linux;
using Crisp.Linux.Proc;
using Microsoft.Win32.SafeHandles;

namespace Crisp.Resources.Memory;

/// <summary>Stores the private pages of a task in pagemap-PID.img + pages-N.img: in anonymous VMAs every
/// page that is present or swapped, in private file VMAs only the anonymous (copied-on-write) ones.
/// Pages are found with PAGEMAP_SCAN where the kernel has it (time follows populated pages, not VMA size),
/// read in batches with process_vm_readv (/proc/PID/mem covers what it cannot read: PROT_NONE or
/// otherwise unreadable VMAs), and handed to the page sink by a second thread while the next batches are read
/// (<see cref="PagePipe"/>: a few MiB whatever the task's size).</summary>
public sealed class PrivatePagesDump(int pid, PagemapWriter writer, PageBatchPool batches)
{
    private const ulong PageSize = Pagemap.PageSize;
    private const ulong PresentOrSwapped = 3UL << 62, FilePage = 1UL << 61;

    private SafeFileHandle? _mem;
    private readonly Lock _memLock = new();
    private bool _taskRuns;

    /// <summary>Pages stored so far (the count a stats counter reads).</summary>
    public long Pages => writer.PagesWritten;

    public void Dump(IEnumerable<DumpedVma> vmas)
    {
        _windowPages = 0;
        using var pagemap = Pagemap.Open(pid);
        var pipe = Pipe(b => writer.AddBatch(b.Ranges, b.Data, hashedAhead: true));
        try
        {
            var list = vmas as IReadOnlyList<DumpedVma> ?? vmas.ToList();
            for (int i = 0; i < list.Count;)
            {
                if (!list[i].HasPrivatePages)
                {
                    i++;
                    continue;
                }
                // A span of neighbouring VMAs that all hold private pages: one scan for all of them.
                int j = i;
                while (j + 1 < list.Count && list[j + 1].HasPrivatePages)
                    j++;
                var spanRuns = j > i && pagemap.ScanSupported ? RunsBySpan(pagemap, list, i, j) : null;
                for (int k = i; k <= j; k++)
                {
                    var vma = list[k];
                    foreach (var run in spanRuns?[k - i] ?? Runs(pagemap, vma.Start, vma.End, vma.Is(VmaStatus.FilePrivate)))
                        if (vma.AllExclusive && vma.Maps.CanRead)
                            pipe.Add(run, true);   // nothing shared: no pagemap entries to read (7.5 ms a GiB here)
                        else
                            AddKeepingShared(pipe, pagemap, run, vma.Maps.CanRead);
                    // Each VMA starts a batch: batches that ran on across VMAs (misaligned with a large VMA's pages) made
                    // 1 GiB dumps onto ext4 take 2-4x the kernel time (bench, 2026-12-04).
                    pipe.Flush();
                }
                i = j + 1;
            }
            pipe.Complete();
        }
        finally
        {
            pipe.Dispose();   // first: a failed read must not leave the writer thread using the batches
            _mem?.Dispose();
        }
    }

    /// <summary>Stores the runs of a plan (a dump with a parent): copied runs read from the task, PE_PARENT runs
    /// only recorded. <paramref name="taskRuns"/>: the task was let go before its pages are copied (pre-dump),
    /// so a run unmapped meanwhile is stored as zeros — no later dump refers to it, as a VMA mapped anew is not
    /// tracked (<see cref="WriteTracker.TrackedSince"/>).</summary>
    /// <param name="copied">The task's pages copied while it ran (<see cref="RunningCopy"/>): where the plan's
    /// <see cref="PlannedRun.Copied"/> runs are stored from.</param>
    public void Dump(IReadOnlyList<PlannedRun> plan, bool taskRuns, CopiedTask? copied = null)
    {
        _taskRuns = taskRuns;
        _windowPages = 0;
        using var pagemap = Pagemap.Open(pid);
        var pipe = Pipe(b => writer.AddBatch(b.Ranges, b.Data, b.ParentRuns, hashedAhead: true));
        var walk = copied?.Walk();
        try
        {
            foreach (var run in plan)
            {
                if (run.Copied)
                {
                    if (walk is null)
                        throw new CrispException($"task {pid}: a run planned from a copy without one (internal error)");
                    for (ulong at = run.Start, end = run.Start + run.Length; at < end;)
                    {
                        nint data = walk.Piece(at, end, out ulong stop);
                        pipe.AddHeld(new RemoteRange(at, stop - at), data);
                        at = stop;
                    }
                }
                else if (run.InParent || run.Lazy)
                    pipe.AddParentRun(new RemoteRange(run.Start, run.Length), run.Lazy ? PagemapFlags.Lazy : PagemapFlags.Parent);
                else if (run.Exclusive && run.Readable && !taskRuns)
                    pipe.Add(new RemoteRange(run.Start, run.Length), true);   // nothing shared, and frozen since smaps said so
                else
                    AddKeepingShared(pipe, pagemap, new RemoteRange(run.Start, run.Length), run.Readable);
            }
            pipe.Complete();
        }
        finally
        {
            pipe.Dispose();
            _mem?.Dispose();
        }
    }

    /// <summary>A pipe whose batches are read out of the task (<see cref="Read"/>) and drained into the writer, hashed
    /// in between on whichever thread has time (the pipe's ordered step: one hash, in batch order, ahead of the
    /// write); read on both threads in turn where the sink keeps them in memory (the spool's own sink hashes later).</summary>
    private PagePipe Pipe(Action<PageBatch> drain) => writer.HoldsInMemory
        ? new(batches, Read, drain) { FillOnBothSides = true }
        : new(batches, Read, drain, writer.Hashes ? b => writer.HashAhead(b.Data) : null);

    /// <summary>dump --lazy-pages: the pages of <paramref name="lazy"/> VMAs recorded as PE_LAZY runs without data (the
    /// seized task serves them later), every other VMA's stored. Returns the lazy runs.</summary>
    public List<PlannedRun> DumpLazy(IEnumerable<DumpedVma> vmas, Func<DumpedVma, bool> lazy)
    {
        var plan = new List<PlannedRun>();
        using (var pagemap = Pagemap.Open(pid))
        {
            foreach (var vma in vmas.Where(v => v.HasPrivatePages))
            {
                bool isLazy = lazy(vma);
                foreach (var run in Runs(pagemap, vma.Start, vma.End, vma.Is(VmaStatus.FilePrivate)))
                    plan.Add(new PlannedRun(run.Address, run.Length, false, vma.Maps.CanRead, isLazy));
            }
        }
        Dump(plan, taskRuns: false);
        return plan.Where(r => r.Lazy).ToList();
    }

    private ulong[]? _entries;

    /// <summary>Queues a run, its pages that another task maps too (a forked parent or child, copy-on-write) to be
    /// read through /proc/PID/mem: process_vm_readv pins the pages it reads, and the kernel copies a shared anonymous
    /// page before pinning it, so reading them so would undo the sharing in the task (for good with --leave-running
    /// or a pre-dump, and in the memory the dump needs meanwhile). Pagemap's exclusive bit tells them apart.</summary>
    private void AddKeepingShared(PagePipe pipe, Pagemap pagemap, RemoteRange run, bool readable)
    {
        if (!readable)
        {
            pipe.Add(run, false);
            return;
        }
        // Sized by the largest run so far: most tasks' runs are a few pages, and a 512 KiB array zeroed per task cost
        // 128 page faults in a small dump.
        ulong runPages = run.Length / PageSize;
        if (_entries is null || (ulong)_entries.Length < Math.Min(runPages, EntriesPerRead))
            _entries = new ulong[Math.Clamp(runPages, WindowPages, EntriesPerRead)];
        ulong end = run.Address + run.Length, pieceStart = run.Address;
        bool pieceExclusive = true;
        for (ulong at = run.Address; at < end;)
        {
            int n = (int)Math.Min((end - at) / PageSize, (ulong)_entries.Length);
            var entries = Entries(pagemap, at, n);
            for (int i = 0; i < n; i++)
            {
                bool exclusive = new PagemapEntry(entries[i]).Exclusive;
                ulong page = at + (ulong)i * PageSize;
                if (page == pieceStart)
                    pieceExclusive = exclusive;
                else if (exclusive != pieceExclusive)
                {
                    pipe.Add(new RemoteRange(pieceStart, page - pieceStart), pieceExclusive);
                    pieceStart = page;
                    pieceExclusive = exclusive;
                }
            }
            at += (ulong)n * PageSize;
        }
        pipe.Add(new RemoteRange(pieceStart, end - pieceStart), pieceExclusive);
    }

    /// <summary>Entries for <paramref name="n"/> pages from <paramref name="at"/>, out of a window read ahead: a dump
    /// after a pre-dump stores many short runs close together (every tenth page written: 26,000 one-page runs in
    /// 1 GiB), and one pread per run took a third of its frozen memory stage.</summary>
    private ReadOnlySpan<ulong> Entries(Pagemap pagemap, ulong at, int n)
    {
        var entries = _entries!;
        if (at >= _windowStart && at + (ulong)n * PageSize <= _windowStart + (ulong)_windowPages * PageSize)
            return entries.AsSpan((int)((at - _windowStart) / PageSize), n);
        // Never past the 47-bit user address space, where pagemap reads come up short.
        int window = at + WindowPages * PageSize <= UserSpaceEnd ? Math.Max(n, (int)WindowPages) : n;
        window = Math.Min(window, entries.Length);
        try { pagemap.ReadEntries(at, entries.AsSpan(0, window)); }
        catch (SyscallException) when (_taskRuns)
        {
            entries.AsSpan(0, window).Clear();   // gone since it was let go: /proc/PID/mem's read stores zeros (Dump(plan))
        }
        (_windowStart, _windowPages) = (at, window);
        return entries.AsSpan(0, n);
    }

    private const ulong WindowPages = 512, UserSpaceEnd = 0x7ffffffff000;
    private ulong _windowStart;
    private int _windowPages;

    /// <summary>Runs of pages to store: PAGEMAP_SCAN (present or swapped, and not file pages where only
    /// anonymous copies are wanted) or, on older kernels, pagemap entries read in chunks.</summary>
    private static IEnumerable<RemoteRange> Runs(Pagemap pagemap, ulong start, ulong end, bool onlyAnonCopies) =>
        pagemap.ScanSupported
            ? pagemap.Scan(start, end, excludeFile: onlyAnonCopies).Select(r => new RemoteRange(r.Start, r.Length))
            : ReadRuns(pagemap, start, end, onlyAnonCopies);

    /// <summary>Pagemap entries per pread on kernels without PAGEMAP_SCAN: 512 KiB of entries, 256 MiB of address space.</summary>
    private const ulong EntriesPerRead = 1 << 16;

    /// <summary>The runs of VMAs first..last (neighbours in address order) from one scan, clipped to each VMA: what
    /// <see cref="Runs"/> gives VMA by VMA (a private file mapping keeps only its anonymous copies).</summary>
    private static List<RemoteRange>[] RunsBySpan(Pagemap pagemap, IReadOnlyList<DumpedVma> vmas, int first, int last)
    {
        var runs = new List<RemoteRange>[last - first + 1];
        for (int k = 0; k < runs.Length; k++)
            runs[k] = [];
        int v = first;
        foreach (var region in pagemap.PresentRegions(vmas[first].Start, vmas[last].End))
        {
            while (v <= last && vmas[v].End <= region.Start)
                v++;
            for (int k = v; k <= last && vmas[k].Start < region.End; k++)
            {
                var vma = vmas[k];
                if (vma.Is(VmaStatus.FilePrivate) && (region.Categories & Pagemap.PAGE_IS_FILE) != 0)
                    continue;
                ulong start = Math.Max(region.Start, vma.Start), end = Math.Min(region.End, vma.End);
                if (start >= end)
                    continue;
                var list = runs[k - first];
                if (list.Count > 0 && list[^1].Address + list[^1].Length == start)
                    list[^1] = new RemoteRange(list[^1].Address, end - list[^1].Address);
                else
                    list.Add(new RemoteRange(start, end - start));
            }
        }
        return runs;
    }

    private static IEnumerable<RemoteRange> ReadRuns(Pagemap pagemap, ulong start, ulong end, bool onlyAnonCopies)
    {
        var entries = new ulong[Math.Min((end - start) / PageSize, EntriesPerRead)];
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

    /// <summary>Reads a batch out of the task (on the dumping thread, while the pipe's thread writes the batches
    /// before it: two cores, one copies out of the task, one into the page sink; or on both threads in turn when
    /// the sink keeps pages in memory).</summary>
    private void Read(PageBatch batch)
    {
        // A sink that holds pages in memory (dump -R's spool) gets them read straight into it: one copy while frozen.
        if (batch.Bytes > 0 && writer.TryTakeRoom(batch.Bytes, out nint room))
            batch.UseRoom(room);
        long done = batch.Accessible && batch.Bytes > 0 ? ProcessVm.Read(pid, batch.Ranges, batch.Data) : 0;
        if (done < batch.Bytes)
            ReadThroughProcMem(batch, done);
    }

    /// <summary>The rest of the batch from byte <paramref name="from"/> on, through /proc/PID/mem (FOLL_FORCE
    /// reads pages process_vm_readv refuses).</summary>
    private void ReadThroughProcMem(PageBatch batch, long from)
    {
        lock (_memLock)   // batches may be read on two threads (PagePipe.FillOnBothSides)
            _mem ??= File.OpenHandle(Procfs.Host.Path(pid, "mem"), FileMode.Open, FileAccess.Read);
        long offset = 0;
        foreach (var r in batch.Ranges)
        {
            long rEnd = offset + (long)r.Length;
            if (rEnd > from)
            {
                long skip = Math.Max(0, from - offset);
                var span = batch.Data.Slice((int)(offset + skip), (int)((long)r.Length - skip));
                long addr = (long)r.Address + skip;
                int got = 0;
                while (got < span.Length)
                {
                    int n;
                    try { n = RandomAccess.Read(_mem, span[got..], addr + got); }
                    catch (IOException) when (_taskRuns) { n = 0; }
                    if (n <= 0 && _taskRuns)
                    {
                        span[got..].Clear();   // unmapped since the task was let go (see Dump(plan))
                        break;
                    }
                    if (n <= 0)
                        throw new SyscallException($"pread({Procfs.Host.Path(pid, "mem")}, 0x{addr + got:x})", Errnos.EIO);
                    got += n;
                }
            }
            offset = rEnd;
        }
    }
}
