using System.Diagnostics;
using Crisp.Compel;
using Crisp.Dump;
using Crisp.Images;
using Crisp.Images.Pages;
using Crisp.Linux;
using Crisp.Linux.Proc;

namespace Crisp.Resources.Memory;

/// <summary>`dump --leave-running` of a tree with much memory (issue 18, freeze time): its pages are copied while it
/// runs. A first short stop only makes an async write-protect userfaultfd in every task, copied out and closed there
/// (only crisp holds it), and lets the tree go; then, while it runs, crisp registers every trackable VMA with it,
/// write-protects their pages and reads the present ones into the dump's spool. The dump's own stop stores from
/// that copy every page not written since (PAGEMAP_SCAN: not PAGE_IS_WRITTEN, in a VMA still registered and inside a
/// range registered then) and reads only the rest, so the tree is frozen for two collections of state and the pages
/// it wrote meanwhile, not for a copy of all its memory. A page copied before the tree wrote it is written, so read
/// again; a page unmapped and mapped anew is in a VMA that is not registered, so read again. The tracking ends when
/// crisp closes the fds (after the dump's stop, once the tree runs) or dies: nothing of it is left in the tree.</summary>
public sealed class RunningCopy : IDisposable
{
    /// <summary>Below this much memory a second stop of the tree costs more than copying while frozen saves.</summary>
    public const long MinimumBytes = 32L << 20;

    private readonly Dictionary<int, CopiedTask> _tasks = [];
    private ChainTracking? _chain;
    private Log? _log;
    private bool _kept;

    /// <summary>How long the first stop held the tree.</summary>
    public TimeSpan Frozen { get; private set; }

    /// <summary>Whether a dump with these options, of a tree of <paramref name="treeBytes"/>, copies while it runs: not a
    /// dump in a pre-dump chain or a lazy one (those track or serve pages themselves), not with a cgroup to freeze (the
    /// runtime's freezer decides when the tree runs), and only where async write-protection tracks writes.</summary>
    public static bool Applies(DumpOptions options, long treeBytes) =>
        treeBytes >= MinimumBytes && options.FreezeCgroup is null && !options.Lazy && !options.TrackMem
        && options.PrevImagesDir is null && DirtyTracking.Current == DirtyTrackingMethod.WriteProtect;

    /// <summary>Whether a dump in a pre-dump chain copies the pages written since the parent while the tree runs
    /// (<see cref="TakeInChain"/>): not a lazy one, not with a cgroup to freeze, and where async write-protection tracks.</summary>
    public static bool AppliesInChain(DumpOptions options) =>
        options.FreezeCgroup is null && !options.Lazy && DirtyTracking.Current == DirtyTrackingMethod.WriteProtect;

    /// <summary>The first stop and the copy while the tree runs. Null when the first stop failed: the tree was let go as
    /// it was, and the dump copies its pages while frozen as without this.</summary>
    public static RunningCopy? Take(DumpOptions options, Log log, ImageDirectory images, Tracer tracer, PageSpool spool, PageBatchPool batches)
    {
        var copy = new RunningCopy();
        var clock = Stopwatch.StartNew();
        using (var ctx = new DumpContext(options, log, images, tracer, FaultInjection.None))
        {
            try
            {
                DumpPipeline.Seize(ctx);
                long seized = Stopwatch.GetTimestamp();
                tracer.Run(() =>
                {
                    foreach (var task in ctx.Tasks)
                    {
                        // A task that cannot (one exiting, or mid-exec) is read whole by the dump's own stop.
                        try { copy.Arm(task); }
                        catch (Exception e) when (e is CrispException or SyscallException)
                        {
                            log.Debug($"copy while running: task {task.Pid}: {e.Message}: read while frozen");
                        }
                    }
                });
                TreeRelease.LetGo(ctx);
                copy.Frozen = Stopwatch.GetElapsedTime(seized);
            }
            catch (Exception e)
            {
                TreeRelease.LetGo(ctx);
                copy.Dispose();
                log.Info($"copy while running: {e.Message}: the pages are copied while the tree is frozen");
                return null;
            }
        }
        long copied = copy.CopyAll(spool, batches, log);
        PageTableSettle.Nudge(tracer, copy._tasks.Values.Where(t => t.Ranges.Count > 0).Select(t => t.Pid), log);
        log.Info($"copy while running: first stop {copy.Frozen.TotalMilliseconds:F1} ms, then {copied >> 20} MiB copied while the tree ran, in {clock.Elapsed.TotalMilliseconds:F0} ms");
        return copy;
    }

    /// <summary>`dump -R --prev-images-dir` after a pre-dump (issue 17, frozen time): the pages written since the parent
    /// are copied while the tree runs, with no stop at all. The tracking the parent left in each task is reset from
    /// crisp (PAGEMAP_SCAN with PM_SCAN_WP_MATCHING on the running task: the written pages are reported and protected
    /// again in one pass), and the pages it reported are read into the spool. The dump's stop then stores, in each
    /// tracked VMA, the pages written since that reset (read now), the others the reset reported (from the copy, or
    /// read where the copy lacks them) and the rest as PE_PARENT (<see cref="PagePlan.Make"/>). Until the dump is
    /// done, <see cref="ChainTracking.ResetMark"/> in the parent says the tracking was reset; a dump that fails
    /// un-protects what its reset protected (with a copy of the task's tracker), so the pages read as written again
    /// and a retry stores them. Null when nothing is tracked or the mark cannot be written.</summary>
    public static RunningCopy? TakeInChain(ChainTracking chain, Log log, Tracer tracer, PageSpool spool, PageBatchPool batches)
    {
        if (chain.Held.Count == 0 || !chain.Mark(log))
            return null;
        var copy = new RunningCopy { _chain = chain, _log = log };
        try
        {
            return copy.CopyInChain(chain, log, tracer, spool, batches);
        }
        catch
        {
            copy.Dispose();   // undoes what was reset, takes the mark away
            throw;
        }
    }

    private RunningCopy CopyInChain(ChainTracking chain, Log log, Tracer tracer, PageSpool spool, PageBatchPool batches)
    {
        var clock = Stopwatch.StartNew();
        foreach (var t in chain.Held)
        {
            UnixFd tracker;
            try
            {
                using var pidfd = PidFd.Open(t.Pid);
                tracker = pidfd.GetFd(t.Fd);
            }
            catch (SyscallException e)
            {
                log.Debug($"copy while running: task {t.Pid}: {e.Message}: its written pages are read while frozen");
                continue;
            }
            var copied = new CopiedTask(t.Pid, t.StartTime, tracker) { WrittenBefore = [], Pages = [] };
            _tasks[t.Pid] = copied;
            ResetInChain(copied, t, log);
        }
        long written = _tasks.Values.Sum(t => t.Plan.Sum(r => (long)r.Length));
        long copiedBytes = CopyAll(spool, batches, log);
        PageTableSettle.Nudge(tracer, _tasks.Values.Where(t => t.WrittenBefore!.Count > 0).Select(t => t.Pid), log);
        log.Info($"copy while running: {written >> 20} MiB written since the parent, {copiedBytes >> 20} MiB of it copied while the tree ran, in {clock.Elapsed.TotalMilliseconds:F0} ms");
        return this;
    }

    /// <summary>The chain this copy reset the tracking of (null: a plain dump's copy).</summary>
    public ChainTracking? Chain => _chain;

    /// <summary>The dump is done: what the reset protected stays protected (the dump stored it).</summary>
    public void Keep() => _kept = true;

    /// <summary>The reset of one task's tracking, VMA by VMA (those tracked since the parent): every page it reports
    /// written is recorded (<see cref="CopiedTask.WrittenBefore"/>), those with data planned for the copy. A VMA whose
    /// scan failed part way counts as written whole: no reset page may go unrecorded.</summary>
    private static void ResetInChain(CopiedTask copied, TrackedTask previous, Log log)
    {
        const ulong Data = Pagemap.PAGE_IS_PRESENT | Pagemap.PAGE_IS_SWAPPED;
        var written = copied.WrittenBefore!;
        List<DumpedVma> vmas;
        Pagemap pagemap;
        try
        {
            vmas = VmaCollector.Collect(copied.Pid, [], _ => 0, _ => 0);
            pagemap = Pagemap.Open(copied.Pid);
            copied.VmasBefore = vmas;
        }
        catch (Exception e) when (e is IOException or SyscallException or CrispException or UnauthorizedAccessException)
        {
            log.Debug($"copy while running: task {copied.Pid}: {e.Message}: its tracking is left as it is");
            return;
        }
        using (pagemap)
        {
            foreach (var vma in vmas.Where(v => v.HasPrivatePages && WriteTracker.TrackedSince(v, previous, held: true)))
            {
                bool anonOnly = vma.Is(VmaStatus.FilePrivate);
                int mark = written.Count, planned = copied.Plan.Count;
                try
                {
                    foreach (var r in pagemap.ScanRegions(vma.Start, vma.End, Pagemap.PM_SCAN_WP_MATCHING | Pagemap.PM_SCAN_CHECK_WPASYNC, 0, 0,
                        Pagemap.PAGE_IS_WRITTEN, Pagemap.PAGE_IS_WRITTEN | Data | Pagemap.PAGE_IS_FILE))
                    {
                        written.Add((r.Start, r.End));
                        if ((r.Categories & Data) != 0 && !(anonOnly && (r.Categories & Pagemap.PAGE_IS_FILE) != 0))
                            copied.Plan.Add(new PlannedRun(r.Start, r.End - r.Start, false, vma.Maps.CanRead));
                    }
                }
                catch (SyscallException e)
                {
                    log.Debug($"copy while running: task {copied.Pid}: {vma.Start:x}-{vma.End:x}: {e.Message}: stored whole");
                    written.RemoveRange(mark, written.Count - mark);
                    written.Add((vma.Start, vma.End));
                    copied.Plan.RemoveRange(planned, copied.Plan.Count - planned);
                }
            }
        }
    }

    /// <summary>The copy of a task seized again by the dump: the same process (pid and start time), its tracking still
    /// crisp's. Null for a task born since, or one whose copy failed (a plain dump's copy: a chain's is returned even
    /// empty, as its reset must be known).</summary>
    public CopiedTask? Of(DumpTask task) =>
        _tasks.TryGetValue(task.Pid, out var t) && t.StartTime == task.Stat.StartTime && t.Pages is not null ? t : null;

    /// <summary>In the first stop, all that needs the task itself: its tracking userfaultfd made there and handed to crisp.</summary>
    private void Arm(DumpTask task)
    {
        var tracker = WriteTracker.CreateHeldByCrisp(task);
        _tasks[task.Pid] = new CopiedTask(task.Pid, task.Stat.StartTime, tracker);
    }

    /// <summary>Once the tree runs again: every trackable VMA registered and write-protected from crisp, then the pages to
    /// copy chosen (every present page of them). Safe while the task runs: a page is copied only after it is protected,
    /// so either it is not written between the copy and the dump's stop, or it shows as written there and is read again;
    /// a VMA mapped anew meanwhile is not registered, so read whole then.</summary>
    private static void Track(CopiedTask copied, Log log)
    {
        long start = Stopwatch.GetTimestamp();
        var vmas = VmaCollector.Collect(copied.Pid, [], _ => 0, _ => 0);
        var registered = new List<DumpedVma>();
        foreach (var vma in vmas.Where(WriteTracker.Trackable))
        {
            long r = Userfaultfd.RegisterWriteProtect(copied.Tracker, vma.Start, vma.End - vma.Start);
            if (r < 0)
                log.Debug($"task {copied.Pid}: {vma.Start:x}-{vma.End:x} not tracked ({Errnos.Describe((int)-r)}): read while frozen");
            else
                registered.Add(vma);
        }
        using var pagemap = Pagemap.Open(copied.Pid);
        foreach (var vma in registered)
            pagemap.ResetWritten(vma.Start, vma.End);
        copied.Ranges.AddRange(registered.Select(v => (v.Start, v.End)));
        copied.Plan = PagePlan.Make(pagemap, registered.Where(v => v.HasPrivatePages), _ => false, null);
        log.Debug($"task {copied.Pid}: {registered.Count} VMAs tracked, {copied.Plan.Sum(r => (long)r.Length) >> 20} MiB to copy, in {Stopwatch.GetElapsedTime(start).TotalMilliseconds:F1} ms");
    }

    /// <summary>While the tree runs: each task's tracking armed (<see cref="Track"/>), then its pages read into the spool, up to the room it has left beyond a
    /// sixteenth kept for the dump's own stop. Returns the bytes copied.</summary>
    private long CopyAll(PageSpool spool, PageBatchPool batches, Log log)
    {
        long total = 0;
        foreach (var task in _tasks.Values)
        {
            long room = ((long)(spool.Capacity - spool.Used) - (long)(spool.Capacity / 16)) & ~(long)(Mman.PageSize - 1);
            var sink = new CopiedPages(spool);
            try
            {
                if (_chain is null)
                    Track(task, log);
                var plan = Fit(task.Plan, room);
                using (var writer = new PagemapWriter(sink, null))
                    new PrivatePagesDump(task.Pid, writer, batches).Dump(plan, taskRuns: true);
            }
            catch (Exception e) when (e is SyscallException or IOException or CrispException)
            {
                log.Info($"copy while running: task {task.Pid}: {e.Message}: its pages are read while frozen");
                continue;
            }
            task.Pages = sink.Runs;
            task.Seal();
            total += sink.Runs.Sum(r => (long)r.Length);
        }
        return total;
    }

    /// <summary>The plan cut to <paramref name="room"/> bytes (the rest is read while frozen).</summary>
    private static List<PlannedRun> Fit(List<PlannedRun> plan, long room)
    {
        var fit = new List<PlannedRun>();
        foreach (var run in plan)
        {
            if (room <= 0)
                break;
            ulong take = Math.Min(run.Length, (ulong)room);
            fit.Add(run with { Length = take });
            room -= (long)take;
        }
        return fit;
    }

    /// <summary>A chain's copy not kept (the dump failed): every page its reset protected is un-protected, so it reads
    /// as written since the parent again; then the mark goes. Then the trackers are closed.</summary>
    public void Dispose()
    {
        if (_chain is not null)
        {
            if (!_kept)
                Undo();
            _chain.Unmark();
        }
        foreach (var t in _tasks.Values)
            t.TakeTracker()?.Dispose();
        _tasks.Clear();
    }

    private void Undo()
    {
        foreach (var t in _tasks.Values)
        {
            int failed = 0;
            foreach (var (start, end) in t.WrittenBefore ?? [])
                if (Userfaultfd.Unprotect(t.Tracker, start, end - start) < 0)
                    failed++;   // unmapped since, or the tracker closed: no later dump trusts that range
            if (failed > 0)
                _log?.Debug($"task {t.Pid}: {failed} range(s) written before the reset not un-protected (unmapped or untracked since)");
        }
    }
}

/// <summary>One task's copy made while it ran: its tracking userfaultfd (crisp's), the ranges registered with it, and
/// where in the spool each copied run of pages lies.</summary>
public sealed class CopiedTask(int pid, ulong startTime, UnixFd tracker)
{
    private UnixFd? _tracker = tracker;

    public int Pid { get; } = pid;
    public ulong StartTime { get; } = startTime;
    /// <summary>The tracking userfaultfd's number in crisp.</summary>
    public int Tracker => _tracker?.Fd ?? throw new ObjectDisposedException(nameof(CopiedTask));
    public List<(ulong Start, ulong End)> Ranges { get; } = [];
    internal List<PlannedRun> Plan { get; set; } = [];
    internal IReadOnlyList<(ulong Start, ulong Length, nint At)>? Pages { get; set; }
    /// <summary>A chain's copy (<see cref="RunningCopy.TakeInChain"/>): the ranges its reset found written, in address
    /// order; null for a plain dump's copy.</summary>
    internal List<(ulong Start, ulong End)>? WrittenBefore { get; init; }

    public bool InChain => WrittenBefore is not null;

    /// <summary>A chain's copy: the task's VMAs as its reset saw them (<see cref="PlanAhead"/> plans from them).</summary>
    internal List<DumpedVma>? VmasBefore { get; set; }

    /// <summary>The pages written between the parent and the reset (<see cref="PagePlan.Make"/>).</summary>
    public ParentCoverage WrittenBeforeCoverage => _writtenBefore ??= ParentCoverage.Of(WrittenBefore!.Select(r => (r.Start, r.End - r.Start)));

    private ParentCoverage? _coverage, _writtenBefore;

    /// <summary>The copy is complete: its coverages are worked out now, while the tree runs, not in the dump's stop
    /// (26,000 scattered pages took 8 ms).</summary>
    internal void Seal()
    {
        _coverage = ParentCoverage.Of(Pages!.Select(p => (p.Start, p.Length)));
        if (WrittenBefore is not null)
            _ = WrittenBeforeCoverage;
    }

    /// <summary>The VMA was tracked without a break since the first stop: registered now, and inside a range registered
    /// then (ranges in address order, not overlapping: a binary search, as a task may have thousands).</summary>
    public bool TrackedSince(DumpedVma vma)
    {
        if (!vma.WriteProtectRegistered)
            return false;
        int lo = 0, hi = Ranges.Count;
        while (lo < hi)
        {
            int mid = (lo + hi) >>> 1;
            if (Ranges[mid].End <= vma.Start)
                lo = mid + 1;
            else
                hi = mid;
        }
        return lo < Ranges.Count && Ranges[lo].Start <= vma.Start && vma.End <= Ranges[lo].End;
    }

    /// <summary>The ranges copied, for <see cref="PagePlan.Make"/> (its <see cref="PlannedRun.Copied"/> runs).</summary>
    public ParentCoverage Coverage => _coverage ??= ParentCoverage.Of(Pages!.Select(p => (p.Start, p.Length)));

    /// <summary>A forward walk over the copy for ranges asked in address order (a plan's copied runs): no search and no
    /// iterator per run (26,000 one-page runs searched one by one took ~1 ms of the stop).</summary>
    public CopyWalk Walk() => new(this, [.. Pages!]);

    /// <summary>See <see cref="Walk"/>.</summary>
    public sealed class CopyWalk(CopiedTask task, (ulong Start, ulong Length, nint At)[] pages)
    {
        private int _i;

        /// <summary>Where the copy of the piece of [<paramref name="at"/>, <paramref name="end"/>) that starts at
        /// <paramref name="at"/> lies, and where that piece ends (the copy must cover it).</summary>
        public nint Piece(ulong at, ulong end, out ulong pieceEnd)
        {
            while (_i < pages.Length && pages[_i].Start + pages[_i].Length <= at)
                _i++;
            if (_i == pages.Length || pages[_i].Start > at)
                throw new CrispException($"task {task.Pid}: no copy of the page at {at:x} (internal error)");
            var (start, length, data) = pages[_i];
            pieceEnd = Math.Min(start + length, end);
            return data + (nint)(at - start);
        }
    }

    /// <summary>The tracking fd, handed to whoever closes it (the dump, once the tree runs again).</summary>
    public UnixFd? TakeTracker()
    {
        var t = _tracker;
        _tracker = null;
        return t;
    }
}
