using Crisp.Linux;
using Crisp.Resources.Memory;

namespace Crisp.Tests.Resources.Memory;

/// <summary>The page pipe's ordered step (a dump's page-file hash): every batch goes through it once, in the order
/// batches were added, before it is drained, on whichever thread has time — the filler's when the drain is the
/// slower side, the drain's when the filler is. Real threads, real batches; the "slow" side sleeps per batch.</summary>
public class PagePipeOrderedStepTests
{
    private const int Batches = 24;

    private sealed class Run
    {
        public readonly List<(long Seq, int Thread)> Steps = [];
        public readonly List<long> Drained = [];
        public readonly List<string> Faults = [];
        public int FillerThread;
    }

    private static Run Pump(int fillSleepMs, int drainSleepMs, Action<long, bool>? stepHook = null, long failDrainAt = -1)
    {
        var run = new Run { FillerThread = Environment.CurrentManagedThreadId };
        long filled = 0;
        var pipe = new PagePipe(new PageBatchPool(),
            fill: b =>
            {
                // The batch carries its sequence number in its first bytes: the step and the drain check them.
                BitConverter.TryWriteBytes(b.Data, filled++);
                if (fillSleepMs > 0)
                    Thread.Sleep(fillSleepMs);
            },
            drain: b =>
            {
                long seq = BitConverter.ToInt64(b.Data);
                lock (run)
                {
                    if (!b.Stepped)
                        run.Faults.Add($"batch {seq} drained before its step");
                    run.Drained.Add(seq);
                }
                if (drainSleepMs > 0)
                    Thread.Sleep(drainSleepMs);
                if (seq == failDrainAt)
                    throw new IOException("No space left on device");
            },
            inOrder: b =>
            {
                long seq = BitConverter.ToInt64(b.Data);
                stepHook?.Invoke(seq, Environment.CurrentManagedThreadId == run.FillerThread);
                lock (run)
                    run.Steps.Add((seq, Environment.CurrentManagedThreadId));
            });
        try
        {
            for (int i = 0; i < Batches; i++)
            {
                pipe.Add(new RemoteRange(0x10000000UL + (ulong)i * PagePipe.BatchBytes, PagePipe.BatchBytes), accessible: true);
                pipe.Flush();
            }
            pipe.Complete();
        }
        finally
        {
            pipe.Dispose();
        }
        return run;
    }

    private static void AssertOrderedOnce(Run run)
    {
        Assert.Empty(run.Faults);
        var expected = Enumerable.Range(0, Batches).Select(i => (long)i).ToList();
        Assert.Equal(expected, run.Steps.Select(s => s.Seq).ToList());
        Assert.Equal(expected, run.Drained);
    }

    [Fact]
    public void ASlowDrainLeavesTheStepToTheFiller()
    {
        var run = Pump(fillSleepMs: 0, drainSleepMs: 3);
        AssertOrderedOnce(run);
        // The filler runs ahead until every batch is taken, then steps the queued ones while it waits.
        Assert.True(run.Steps.Count(s => s.Thread == run.FillerThread) >= Batches / 2,
            $"filler stepped {run.Steps.Count(s => s.Thread == run.FillerThread)} of {Batches}");
    }

    [Fact]
    public void ASlowFillerLeavesTheStepToTheDrain()
    {
        var run = Pump(fillSleepMs: 3, drainSleepMs: 0);
        AssertOrderedOnce(run);
        // Past the batches drained inline (on the filler, before the drain thread starts), the drain is always waiting.
        int inline = (int)(PagePipe.InlineBytes / PagePipe.BatchBytes);
        Assert.True(run.Steps.Count(s => s.Thread != run.FillerThread) >= (Batches - inline) / 2,
            $"drain stepped {run.Steps.Count(s => s.Thread != run.FillerThread)} of {Batches - inline}");
    }

    [Fact]
    public void AFailingStepOnTheFillerSideStopsThePipeWithItsError()
    {
        var e = Assert.Throws<InvalidOperationException>(() => RunWithin(() => Pump(0, 3, (seq, onFiller) =>
        {
            if (seq >= 6 && onFiller)
                throw new InvalidOperationException("step failed on the filler");
        })));
        Assert.Equal("step failed on the filler", e.Message);
    }

    [Fact]
    public void AFailingStepOnTheDrainSideReachesTheFiller()
    {
        // The filler's steps are slow, so the drain soon finds the next batch un-stepped and steps it itself — and
        // fails while the filler waits for a free batch or its turn: it must wake and fail too.
        var e = Assert.Throws<InvalidOperationException>(() => RunWithin(() => Pump(0, 0, (seq, onFiller) =>
        {
            if (onFiller)
                Thread.Sleep(5);
            else
                throw new InvalidOperationException("step failed on the drain");
        })));
        Assert.Equal("step failed on the drain", e.Message);
    }

    [Fact]
    public void AFailingDrainReachesAFillerWaitingForAFreeBatch()
    {
        // A slow drain (a full disk answers slowly too): the filler has stepped every queued batch and waits for a
        // free one when the write fails.
        var e = Assert.Throws<IOException>(() => RunWithin(() => Pump(0, 20, failDrainAt: 8)));
        Assert.Equal("No space left on device", e.Message);
    }

    /// <summary>Runs <paramref name="pump"/>; a pipe that hangs instead of failing fails the test (after 30 s; the test host then holds a stuck thread).</summary>
    private static void RunWithin(Func<Run> pump)
    {
        var task = Task.Factory.StartNew(pump, TaskCreationOptions.LongRunning);
        if (!((IAsyncResult)task).AsyncWaitHandle.WaitOne(TimeSpan.FromSeconds(30)))
            Assert.Fail("the pipe hung after a failure");
        task.GetAwaiter().GetResult();
    }
}
