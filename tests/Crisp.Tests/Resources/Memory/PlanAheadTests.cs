using Crisp.Linux;
using Crisp.Linux.Proc;
using Crisp.Resources.Memory;

namespace Crisp.Tests.Resources.Memory;

/// <summary>The plan a chain dump makes on a second thread while its stop reads smaps (issue 17, <see cref="PlanAhead"/>),
/// on a real mapping of this process: it is the plan the stop would make itself when smaps shows the same VMAs, and it is
/// refused, naming why, when a VMA came, went or changed in a way a plan depends on.</summary>
public class PlanAheadTests
{
    private const ulong Page = GuardedPages.Page;

    [Fact]
    public void APlanMadeAheadIsTheStopsOwnWhenTheVmasPlanAlikeAndRefusedWhenOneChanged()
    {
        using var pages = new GuardedPages(32);
        ulong start = pages.Start;
        var vma = pages.Vma;
        Assert.True(vma.AllExclusive);
        // The copy holds pages 0-7 (their data is not read here); the parent holds 8-15.
        var copied = new CopiedTask(Environment.ProcessId, 0, new UnixFd(-1)) { WrittenBefore = [], Pages = [(start, 8 * Page, 0x1000)] };
        copied.Seal();
        copied.VmasBefore = [vma];
        var inputs = new ChainPlanInputs(null, false, false, ParentCoverage.Of([(start + 8 * Page, 8 * Page)]), false);

        using var pagemap = Pagemap.Open(Environment.ProcessId);
        var own = inputs.Plan(pagemap, [vma], copied);
        var ahead = PlanAhead.Start(Environment.ProcessId, inputs, copied)!.Take([vma], out string? why);
        Assert.Null(why);
        Assert.Equal(own, ahead);
        // Untracked (no previous dump's tracking): every present page is read, and needs no look at exclusive bits.
        Assert.Equal([new PlannedRun(start, 32 * Page, false, true, Exclusive: true)], ahead);

        Assert.Null(PlanAhead.Start(Environment.ProcessId, inputs, copied)!.Take([vma with { AllExclusive = false }], out why));
        Assert.Equal($"VMA {start:x}-{start + 32 * Page:x} changed since the copy", why);
        Assert.Null(PlanAhead.Start(Environment.ProcessId, inputs, copied)!.Take([], out why));
        Assert.Equal("a VMA came or went since the copy", why);
    }
}
