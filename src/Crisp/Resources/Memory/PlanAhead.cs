using Crisp.Linux.Proc;

namespace Crisp.Resources.Memory;

/// <summary>A chain dump's plan made on a second thread while the stop reads smaps (issue 17, frozen time: for a GiB
/// resident, smaps takes ~8 ms and the plan — a PAGEMAP_SCAN of every tracked VMA and tens of thousands of runs — ~6 ms,
/// one after the other on the tracer thread). The plan is made from the VMAs the copy's reset saw while the tree ran
/// (<see cref="CopiedTask.VmasBefore"/>) and the pages as they are now (the tree is frozen); it is used only when smaps
/// then shows the same VMAs as far as a plan can tell (bounds, readable, private file or anonymous, mapped by this task alone,
/// tracked since the parent), else the plan is made again from smaps' VMAs.</summary>
public sealed class PlanAhead
{
    private readonly Task<List<PlannedRun>> _plan;
    private readonly List<DumpedVma> _vmas;
    private readonly ChainPlanInputs _inputs;

    private PlanAhead(Task<List<PlannedRun>> plan, List<DumpedVma> vmas, ChainPlanInputs inputs) =>
        (_plan, _vmas, _inputs) = (plan, vmas, inputs);

    /// <summary>Starts the plan; null when the copy kept no VMAs to make it from.</summary>
    public static PlanAhead? Start(int pid, ChainPlanInputs inputs, CopiedTask copied)
    {
        if (copied.VmasBefore is not { } before)
            return null;
        int tracerCpu = Crisp.Linux.Sched.CurrentCpu();
        var plan = Task.Factory.StartNew(() =>
        {
            Crisp.Linux.Sched.UseProcessCpusBut(tracerCpu);
            using var pagemap = Pagemap.Open(pid);
            return inputs.Plan(pagemap, before, copied);
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        return new PlanAhead(plan, before, inputs);
    }

    /// <summary>The plan, when <paramref name="vmas"/> (smaps in the stop) plan as the VMAs it was made from; else null
    /// (also when making it failed: the caller makes it again and sees the error itself).</summary>
    public List<PlannedRun>? Take(List<DumpedVma> vmas, out string? why)
    {
        try
        {
            var plan = _plan.GetAwaiter().GetResult();
            why = SamePlanning(_vmas, vmas);
            return why is null ? plan : null;
        }
        catch (Exception e)
        {
            why = e.Message;
            return null;
        }
    }

    private string? SamePlanning(List<DumpedVma> before, List<DumpedVma> now)
    {
        using var a = before.Where(v => v.HasPrivatePages).GetEnumerator();
        using var b = now.Where(v => v.HasPrivatePages).GetEnumerator();
        while (true)
        {
            bool moreA = a.MoveNext(), moreB = b.MoveNext();
            if (!moreA || !moreB)
                return moreA == moreB ? null : "a VMA came or went since the copy";
            if (Key(a.Current) != Key(b.Current))
                return $"VMA {b.Current.Start:x}-{b.Current.End:x} changed since the copy";
        }
    }

    private (ulong, ulong, bool, bool, bool, bool) Key(DumpedVma v) =>
        (v.Start, v.End, v.Maps.CanRead, v.Is(VmaStatus.FilePrivate), v.AllExclusive, _inputs.Tracked(v));
}
