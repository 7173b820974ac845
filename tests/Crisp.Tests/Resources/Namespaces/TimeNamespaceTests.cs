using System.Diagnostics;
using System.Globalization;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Resources.Namespaces;

/// <summary>A tree in a time namespace of its own whose clocks run 1e6 s (monotonic) and 2e6 s (boottime) ahead of
/// the host's goes through two dump/restore cycles. Inside, neither clock ever steps back, and the largest step
/// forward is no more than the time the test measured from before the dump to after the restore; outside, the
/// restored root is in a new time namespace (not the host's) whose offsets are the dumped ones less that time.</summary>
public class TimeNamespaceTests(ITestOutputHelper output)
{
    private const long NsPerSec = 1_000_000_000;

    [RootFact]
    public void ClocksInATimeNamespaceGoOnFromTheirDumpedValuesAcrossTwoCycles()
    {
        using var box = new NsBox([]);
        Assert.Equal((NsBox.MonotonicOffset, NsBox.BoottimeOffset), Offsets(box.Root));
        for (int cycle = 1; cycle <= 2; cycle++)
        {
            Thread.Sleep(300);
            var down = Stopwatch.StartNew();
            string images = box.Dump($"images{cycle}");
            Thread.Sleep(500);   // the host's clocks run on while the tree is away
            int root = box.Restore(images);
            down.Stop();
            Live.AssertCritDecodesAll(images);
            Assert.NotEqual(PidNs(Environment.ProcessId, "time"), PidNs(root, "time"));
            var (mono, boot) = Offsets(root);
            output.WriteLine($"cycle {cycle}: down {down.ElapsedMilliseconds} ms, offsets {mono} s, {boot} s");
            long downSec = (long)Math.Ceiling(down.Elapsed.TotalSeconds) + 1;
            Assert.InRange(mono, NsBox.MonotonicOffset - downSec * cycle, NsBox.MonotonicOffset);
            Assert.InRange(boot, NsBox.BoottimeOffset - downSec * cycle, NsBox.BoottimeOffset);

            var r = box.Report();
            output.WriteLine($"report {cycle}: {string.Join(' ', r)}");
            long monoGap = long.Parse(r[0], CultureInfo.InvariantCulture), monoBack = long.Parse(r[1], CultureInfo.InvariantCulture);
            long bootGap = long.Parse(r[2], CultureInfo.InvariantCulture), bootBack = long.Parse(r[3], CultureInfo.InvariantCulture);
            Assert.Equal(0, monoBack);
            Assert.Equal(0, bootBack);
            long bound = (long)(down.Elapsed.TotalSeconds * NsPerSec) + 300_000_000;   // + the quiet time before the dump
            Assert.InRange(monoGap, 0, bound);
            Assert.InRange(bootGap, 0, bound);
            Assert.True(long.Parse(r[4], CultureInfo.InvariantCulture) >= NsBox.MonotonicOffset * NsPerSec, "monotonic fell back to the host's");
            Assert.True(long.Parse(r[5], CultureInfo.InvariantCulture) >= NsBox.BoottimeOffset * NsPerSec, "boottime fell back to the host's");
        }
    }

    private static string PidNs(int pid, string kind) => new FileInfo($"/proc/{pid}/ns/{kind}").LinkTarget!;

    /// <summary>Seconds of /proc/PID/timens_offsets (monotonic, boottime).</summary>
    internal static (long Mono, long Boot) Offsets(int pid)
    {
        long mono = 0, boot = 0;
        foreach (var line in File.ReadAllLines($"/proc/{pid}/timens_offsets"))
        {
            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            long v = long.Parse(f[1], CultureInfo.InvariantCulture);
            if (f[0] == "monotonic") mono = v; else if (f[0] == "boottime") boot = v;
        }
        return (mono, boot);
    }
}
