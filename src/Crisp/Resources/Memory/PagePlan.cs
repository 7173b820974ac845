using Crisp.Images;
using Crisp.Linux.Proc;

namespace Crisp.Resources.Memory;

/// <summary>One run of pages a dump with a parent stores: copied from the task, or kept in the parent images
/// (pagemap PE_PARENT); or (dump --lazy-pages) recorded lazy, served later from the seized task (PE_LAZY); or
/// <paramref name="Copied"/>: stored from the copy made while the task ran (<see cref="RunningCopy"/>). <paramref name="Exclusive"/>:
/// its VMA's pages were all mapped by this task alone (<see cref="DumpedVma.AllExclusive"/>), so reading it while the task
/// is still frozen needs no look at pagemap's exclusive bits (a running task may fork meanwhile: those look).</summary>
public readonly record struct PlannedRun(ulong Start, ulong Length, bool InParent, bool Readable, bool Lazy = false, bool Copied = false, bool Exclusive = false);

/// <summary>The address ranges a parent checkpoint (a pre-dump) has pages for, in one task: every pagemap run,
/// stored there or in its own parent (CRIU's check_pagehole_in_parent accepts either).</summary>
public sealed class ParentCoverage
{
    private readonly (ulong Start, ulong End)[] _runs;

    private ParentCoverage((ulong, ulong)[] runs) => _runs = runs;

    /// <summary>The task's pagemap in <paramref name="parent"/>; null when the parent has none for it (a task
    /// born since: all its pages are stored).</summary>
    public static ParentCoverage? Open(ImageDirectory parent, int virtualPid)
    {
        if (!parent.Exists(ImageFile.Pagemap(virtualPid)))
            return null;
        using var map = PagemapReader.Open(parent, ImageFile.Pagemap(virtualPid), throughParent: false);
        return Of(map.Runs.Where(r => (r.Flags & (PagemapFlags.Present | PagemapFlags.Parent)) != 0)
            .Select(r => (r.Vaddr, r.End - r.Vaddr)));
    }

    /// <summary>Coverage by runs given in address order (a parent's pagemap runs, or pages copied while the task ran,
    /// <see cref="RunningCopy"/>), touching or overlapping runs merged.</summary>
    public static ParentCoverage Of(IEnumerable<(ulong Start, ulong Length)> runs)
    {
        var merged = new List<(ulong Start, ulong End)>();
        foreach (var (start, length) in runs)
        {
            if (merged.Count > 0 && merged[^1].End >= start)
                merged[^1] = (merged[^1].Start, Math.Max(merged[^1].End, start + length));
            else
                merged.Add((start, start + length));
        }
        return new ParentCoverage([.. merged]);
    }

    /// <summary>A forward-only walk over the coverage for ranges asked in address order (a plan's): each answer is the
    /// piece from <c>at</c> to where coverage next starts or stops, without a search or an iterator per piece.</summary>
    public struct Cursor(ParentCoverage? coverage)
    {
        private int _i;

        /// <summary>Whether <paramref name="at"/> is covered, and where that answer ends (at most <paramref name="end"/>).</summary>
        public bool Piece(ulong at, ulong end, out ulong pieceEnd)
        {
            var runs = coverage?._runs;
            if (runs is null)
            {
                pieceEnd = end;
                return false;
            }
            while (_i < runs.Length && runs[_i].End <= at)
                _i++;
            if (_i < runs.Length && runs[_i].Start <= at)
            {
                pieceEnd = Math.Min(runs[_i].End, end);
                return true;
            }
            pieceEnd = _i < runs.Length ? Math.Min(runs[_i].Start, end) : end;
            return false;
        }
    }
}

/// <summary>What a dump in a pre-dump chain stores of one task: in VMAs tracked without a break since the parent,
/// the pages written since (PAGE_IS_WRITTEN, or PAGE_IS_SOFT_DIRTY where soft-dirty bits track) and those the parent lacks; the rest of their pages as PE_PARENT
/// runs; every other VMA whole (new or remapped since, or not trackable). After a copy made while the task ran, the
/// pages written before that copy's reset of the tracking (and not since) come from the copy, or are read.</summary>
public static class PagePlan
{
    private const ulong Data = Pagemap.PAGE_IS_PRESENT | Pagemap.PAGE_IS_SWAPPED;

    /// <param name="parent">What the parent images hold (null: no parent, nothing is PE_PARENT).</param>
    /// <param name="softDirty">Writes are tracked by soft-dirty bits (<see cref="DirtyTrackingMethod.SoftDirty"/>),
    /// not by async write-protection.</param>
    /// <param name="copy">Pages copied while the task ran, after the tracking was reset (<see cref="RunningCopy"/>): a
    /// page not written since is stored from the copy.</param>
    /// <param name="writtenBefore">Pages written before that reset: stored (from the copy, or read), never PE_PARENT.</param>
    public static List<PlannedRun> Make(Pagemap pagemap, IEnumerable<DumpedVma> vmas, Func<DumpedVma, bool> trackedSince, ParentCoverage? parent,
        bool softDirty = false, ParentCoverage? copy = null, ParentCoverage? writtenBefore = null)
    {
        var plan = new List<PlannedRun>();
        ulong written = softDirty ? Pagemap.PAGE_IS_SOFT_DIRTY : Pagemap.PAGE_IS_WRITTEN;
        var cursors = new Cursors(parent, copy, writtenBefore);
        foreach (var vma in vmas)
        {
            bool readable = vma.Maps.CanRead, exclusive = vma.AllExclusive;
            bool anonOnly = vma.Is(VmaStatus.FilePrivate);
            ulong file = anonOnly ? Pagemap.PAGE_IS_FILE : 0;
            bool tracked = (parent is not null || copy is not null) && trackedSince(vma);
            ulong returned = Data | file | (tracked ? written : 0);
            var regions = pagemap.ScanSupported ? pagemap.ScanRegions(vma.Start, vma.End, 0, file, file, Data, returned)
                : pagemap.EntryRegions(vma.Start, vma.End, file, file, Data, returned);
            foreach (var region in regions)
            {
                if (!tracked || (region.Categories & written) != 0)
                    Add(plan, new PlannedRun(region.Start, region.End - region.Start, false, readable, Exclusive: exclusive));
                else
                    AddUnwritten(plan, region.Start, region.End, readable, exclusive, ref cursors);
            }
        }
        return plan;
    }

    /// <summary>The plan's walks over its three coverages (regions come in address order).</summary>
    private struct Cursors(ParentCoverage? parent, ParentCoverage? copy, ParentCoverage? writtenBefore)
    {
        public ParentCoverage.Cursor Parent = new(parent), Copy = new(copy), WrittenBefore = new(writtenBefore);
    }

    /// <summary>Pages not written since the tracking's last reset: from the copy where it has them; else read where
    /// written before that reset; else PE_PARENT where the parent has them; else read.</summary>
    private static void AddUnwritten(List<PlannedRun> plan, ulong start, ulong end, bool readable, bool exclusive, ref Cursors cursors)
    {
        for (ulong at = start; at < end;)
        {
            ulong stop;
            if (cursors.Copy.Piece(at, end, out stop))
                Add(plan, new PlannedRun(at, stop - at, false, readable, Copied: true));
            else if (cursors.WrittenBefore.Piece(at, stop, out stop))
                Add(plan, new PlannedRun(at, stop - at, false, readable, Exclusive: exclusive));
            else
            {
                bool held = cursors.Parent.Piece(at, stop, out stop);
                Add(plan, new PlannedRun(at, stop - at, held, readable, Exclusive: exclusive && !held));
            }
            at = stop;
        }
    }

    private static void Add(List<PlannedRun> plan, PlannedRun run)
    {
        if (plan.Count > 0 && plan[^1] is var last && last.InParent == run.InParent && last.Lazy == run.Lazy && last.Copied == run.Copied && last.Readable == run.Readable && last.Exclusive == run.Exclusive && last.Start + last.Length == run.Start)
            plan[^1] = last with { Length = last.Length + run.Length };
        else
            plan.Add(run);
    }
}
