using Crisp.Dump;
using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Resources.Memory;
using Crisp.Restore;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Resources.Memory;

/// <summary>An AIO context (aio_ring: io_setup, six reads submitted, five reaped, so head 5 and tail 6) survives
/// two kill + restore cycles: mm.img has CRIU's aio_ring_entry and an AIORING VMA with the ring's pages, /proc
/// shows the [aio] mapping at the dumped address with the same size, and the workload checks the ring
/// header, reaps the pending event, submits and reaps a new read on the same context, and destroys it; a second
/// context whose tail has wrapped behind its head (the restore's full turn) gives its two waiting events in order.</summary>
public class AioRingTests(ITestOutputHelper output)
{
    private const string Name = "aio_ring";

    [RootFact]
    public void AnAioContextKeepsItsRingAddressAndEventsAcrossTwoKillRestoreCycles()
    {
        using var dir = new Live.TempDir();
        var w = Workload.Start(Support.Workloads.Build(Name), [Name], dir.Path);
        var ready = w.WaitReady($"{Name}'s ready line", p => p.Length == 4);
        int pid = int.Parse(ready[1]);
        ulong ctx = Convert.ToUInt64(ready[2], 16), len = ulong.Parse(ready[3]);
        try
        {
            RestoredTree? tree = null;
            for (int cycle = 1; cycle <= 2; cycle++)
            {
                string images = Path.Combine(dir.Path, $"c{cycle}");
                tree = Live.Cycle(output, new DumpOptions { RootPid = pid, ImagesDir = images }, [pid], i => AssertImages(i, pid, ctx, len));
                Assert.Equal((ctx, len), AioMapping(pid, ctx));
            }
            Live.SignalAndExpectPass(pid, dir.Path, () => Live.ExitCodeWithin(tree!));
        }
        finally
        {
            Live.KillAll([pid], pid);
        }
    }

    /// <summary>mm.img: one aio_ring_entry for the context (nr_req as CRIU estimates it) and its VMA marked AIORING
    /// alone; the pagemap holds the ring's pages.</summary>
    private void AssertImages(string images, int pid, ulong ctx, ulong len)
    {
        var img = ImageDirectory.Open(images);
        var mm = img.ReadAll<mm_entry>(ImageFile.Mm(pid)).Single();
        Assert.Equal(2, mm.Aios.Count);
        var aio = Assert.Single(mm.Aios, a => a.Id == ctx);
        output.WriteLine($"aio ring id 0x{aio.Id:x} len {aio.RingLen} nr_req {aio.NrReq}");
        Assert.Equal(ctx, aio.Id);
        Assert.Equal(len, aio.RingLen);
        Assert.Equal(((len - 32) / 32 - 2) / 2, aio.NrReq);
        var vma = Assert.Single(mm.Vmas, v => v.Start == ctx);
        Assert.Equal(VmaStatus.AioRing, vma.Status);
        Assert.Equal(ctx + len, vma.End);
        using var pages = img.OpenPagemap(pid);
        Assert.Equal(len, (ulong)pages.Resolve(ctx, ctx + len).Sum(r => (long)r.Length));
    }

    /// <summary>The [aio] mapping of the task at <paramref name="at"/>: its address and length.</summary>
    private static (ulong, ulong) AioMapping(int pid, ulong at)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/maps"))
        {
            if (!line.Contains("/[aio]"))
                continue;
            var range = line.Split(' ')[0].Split('-');
            ulong start = Convert.ToUInt64(range[0], 16), end = Convert.ToUInt64(range[1], 16);
            if (start == at)
                return (start, end - start);
        }
        return (0, 0);
    }
}
