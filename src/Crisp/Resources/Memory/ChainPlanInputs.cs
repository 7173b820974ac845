using Crisp.Dump;
using Crisp.Linux.Proc;

namespace Crisp.Resources.Memory;

/// <summary>What the plan of one task in a pre-dump chain rests on besides its VMAs and its pages: the tracking the
/// previous dump left (still held, and trusted unless a reset did not finish), what the parent images hold, and how
/// writes are tracked.</summary>
public sealed record ChainPlanInputs(TrackedTask? Previous, bool Held, bool Trusted, ParentCoverage? Parent, bool SoftDirty)
{
    public static ChainPlanInputs Of(DumpTask task, MemoryChain chain)
    {
        chain.Previous.TryGetValue(task.Pid, out var previous);
        bool held = WriteTracker.StillHeld(task, previous);
        var parent = chain.Parent is null ? null : ParentCoverage.Open(chain.Parent, task.VirtualPid);
        return new(previous, held, held && !chain.ResetUnfinished, parent, previous?.SoftDirty == true);
    }

    public bool Tracked(DumpedVma vma) => WriteTracker.TrackedSince(vma, Previous, Trusted);

    /// <summary>The plan of <paramref name="vmas"/> (<see cref="PagePlan.Make"/>), after <paramref name="copied"/> when
    /// the tree was copied while it ran.</summary>
    public List<PlannedRun> Plan(Pagemap pagemap, IEnumerable<DumpedVma> vmas, CopiedTask? copied) =>
        PagePlan.Make(pagemap, vmas.Where(v => v.HasPrivatePages), Tracked, Parent, SoftDirty, copied?.Coverage, copied?.WrittenBeforeCoverage);
}
