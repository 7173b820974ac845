using Crisp.Linux.Proc;
using Crisp.Resources.Memory;

namespace Crisp.Tests.Resources.Memory;

/// <summary>The plan of a dump after a copy made while the task ran (issue 17, <see cref="PagePlan.Make"/>), on a real
/// mapping of this process read through its pagemap: a page not written since the reset comes from the copy where it
/// holds it, is read where it was written before the reset, is PE_PARENT where the parent holds it, else read.
/// Soft-dirty tracking is asked for on a kernel without soft-dirty bits, so no page shows as written since.</summary>
public class PagePlanTests
{
    private const ulong Page = GuardedPages.Page;

    [Fact]
    public void UnwrittenPagesComeFromTheCopyThenAreReadWhereWrittenBeforeThenAreParentRuns()
    {
        using var pages = new GuardedPages(64);
        ulong start = pages.Start;
        var vma = pages.Vma;
        Assert.Equal(start + 64 * Page, vma.End);
        ParentCoverage Pages(params (int From, int To)[] runs) =>
            ParentCoverage.Of(runs.Select(r => (start + (ulong)r.From * Page, (ulong)(r.To - r.From) * Page)));

        using var pagemap = Pagemap.Open(Environment.ProcessId);
        var plan = PagePlan.Make(pagemap, [vma], _ => true, parent: Pages((15, 40), (50, 52)), softDirty: true,
            copy: Pages((0, 10), (30, 32)), writtenBefore: Pages((0, 20), (30, 32), (50, 51)));

        var expected = new (int From, int To, string Kind)[]
        {
            (0, 10, "copy"), (10, 20, "read"), (20, 30, "parent"), (30, 32, "copy"), (32, 40, "parent"),
            (40, 50, "read"), (50, 51, "read"), (51, 52, "parent"), (52, 64, "read"),
        };
        var actual = plan.Select(r => ((int)((r.Start - start) / Page), (int)((r.Start + r.Length - start) / Page),
            r.Copied ? "copy" : r.InParent ? "parent" : "read")).ToArray();
        // Touching runs of one kind are one run: (40, 50) and (50, 51) merge, as (52, 64) would with a read before it.
        Assert.Equal(new[] { expected[0], expected[1], expected[2], expected[3], expected[4], (40, 51, "read"), expected[7], expected[8] }, actual);
        Assert.All(plan, r => Assert.True(r.Readable));
    }
}
