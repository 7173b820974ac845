using Crisp.Tests.Support;

namespace Crisp.Tests.Workloads;

public class CounterWorkloadTests
{
    [Fact]
    public void CountsWithoutGapsAndPassesItsOwnCheck()
    {
        string exe = Support.Workloads.Build("counter");
        string dir = Directory.CreateTempSubdirectory("crisp-counter-").FullName;
        try
        {
            string file = Path.Combine(dir, "count.txt");
            using var run = WorkloadRun.Start(exe, [file, "20"]);
            Assert.Equal("ready", run.WaitReady());
            Thread.Sleep(300);
            run.SignalAndExpectPass();
            string[] lines = File.ReadAllLines(file);
            Assert.True(lines.Length >= 5, $"only {lines.Length} lines in 300 ms at 20 ms");
            for (int i = 0; i < lines.Length; i++)
                Assert.Equal(i.ToString(), lines[i]);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
