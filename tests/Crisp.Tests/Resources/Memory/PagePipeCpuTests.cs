using Crisp.Linux;
using Crisp.Tests.Support;

namespace Crisp.Tests.Resources.Memory;

/// <summary>Dump and restore stages run on the tracer thread, which pins itself to the CPU of the task it works on
/// (a ptrace round trip is ~30× cheaper there), and a thread inherits the CPU mask of the thread that starts it. The
/// .NET runtime of the tests gives every new thread the process's mask back; the NativeAOT CLI does not: there the
/// page pipe's drain ran on the tracer's one CPU, and a 1 GiB dump's reading and writing took turns on one core
/// (memory stage ~300 ms, ~200 ms on both). So this runs the shipped CLI: the drain of a 16 MiB task must run on
/// every CPU crisp was given.</summary>
public class PagePipeCpuTests
{
    [RootFact]
    public void CliDumpDrainsPagesOnEveryCpuItMayUse()
    {
        var mine = Sched.Cpus(Sched.GetAffinity(0));
        using var w = MemWorkload.Start(bigMiB: 16);
        var dump = CrispCli.Run("dump", "-t", w.Pid.ToString(), "-D", w.ImagesDir, "-v4", "-o", "dump.log");
        Assert.True(dump.ExitCode == 0, $"dump: {dump.Stderr}");
        w.WaitGone();
        var drains = File.ReadAllLines(Path.Combine(w.ImagesDir, "dump.log"))
            .Where(l => l.Contains("page pipe: drains on CPUs ", StringComparison.Ordinal))
            .Select(l => l[(l.IndexOf("CPUs ", StringComparison.Ordinal) + 5)..].Split(',').Select(int.Parse).ToList())
            .ToList();
        Assert.NotEmpty(drains);   // 16 MiB is more than a pipe drains inline: its thread started
        Assert.All(drains, cpus => Assert.Equal(mine, cpus));
    }
}
