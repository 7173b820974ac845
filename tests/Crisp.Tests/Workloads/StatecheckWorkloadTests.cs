using Crisp.Tests.Support;

namespace Crisp.Tests.Workloads;

public class StatecheckWorkloadTests
{
    private static (int Pid, int Child) ParseReady(string line)
    {
        string[] parts = line.Split(' ');
        Assert.True(parts.Length == 3 && parts[0] == "ready", $"bad ready line '{line}'");
        return (int.Parse(parts[1]), int.Parse(parts[2]));
    }

    [Fact]
    public void PassesWithoutCheckpoint()
    {
        string exe = Support.Workloads.Build("statecheck");
        using var run = WorkloadRun.Start(exe, []);
        var (pid, child) = ParseReady(run.WaitReady());
        Assert.Equal(run.Pid, pid);
        Assert.NotEqual(pid, child);
        var childStatus = File.ReadAllLines($"/proc/{child}/status");
        Assert.Contains($"PPid:\t{pid}", childStatus);
        Assert.Contains("Name:\tstatechk", childStatus);
        var status = run.ProcStatus();
        Assert.Equal("statechk", status["Name"]);
        Assert.Equal("0027", status["Umask"]);
        run.SignalAndExpectPass();
        Assert.False(Directory.Exists($"/proc/{child}"), "child still exists after the verdict");
    }

    // Each deliberate corruption (applied by the workload after "ready") must be reported by the named check.
    [Theory]
    [InlineData("heap", "FAIL: heap:")]
    [InlineData("stack", "FAIL: stack:")]
    [InlineData("anon", "FAIL: anon_sparse:")]
    [InlineData("pipe_self", "FAIL: pipe_self:")]
    [InlineData("fd_rw", "FAIL: fd_rw:")]
    [InlineData("cwd", "FAIL: cwd:")]
    [InlineData("umask", "FAIL: umask:")]
    [InlineData("sigmask", "FAIL: sigmask:")]
    [InlineData("rlimit", "FAIL: rlimit:")]
    [InlineData("tls", "FAIL: tls:")]
    [InlineData("regs", "FAIL: regs:")]
    [InlineData("shared_anon", "FAIL: child: shared_anon:")]
    public void ReportsDeliberateCorruption(string what, string expectedLine)
    {
        string exe = Support.Workloads.Build("statecheck");
        using var run = WorkloadRun.Start(exe, [],
            new Dictionary<string, string> { ["CRISP_WORKLOAD_SELFTEST_BREAK"] = what });
        run.WaitReady();
        Thread.Sleep(200); // let the corruption land and the parent enter its wait loop
        run.Signal(WorkloadRun.SIGUSR1);
        int rc = run.WaitExit();
        string err = run.Stderr;
        Assert.True(rc == 1, $"expected exit 1, got {rc}; stderr:\n{err}");
        Assert.Contains(expectedLine, err);
        Assert.DoesNotContain("PASS", err);
    }
}
