using Crisp.Tests.Support;

namespace Crisp.Tests.Workloads;

public class SeccompWorkloadTests
{
    private static string Hardened() => Support.Workloads.Build("hardened", "-lseccomp");

    private static void AssertHardenedStatus(Dictionary<string, string> s, string filters = "2")
    {
        Assert.Equal("1000\t1000\t1000\t1000", s["Uid"]);
        Assert.Equal("1000\t1000\t1000\t1000", s["Gid"]);
        Assert.Equal("", s["Groups"]);
        foreach (var cap in new[] { "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb" })
            Assert.True(s[cap] == "0000000000000000", $"{cap} is {s[cap]}");
        Assert.Equal("1", s["NoNewPrivs"]);
        Assert.Equal("2", s["Seccomp"]);
        Assert.Equal(filters, s["Seccomp_filters"]);
    }

    [RootFact]
    public void ProbeUnderHardenedSeesBothFiltersAndPasses()
    {
        string probe = Support.Workloads.Build("seccomp_probe");
        using var run = WorkloadRun.Start(Hardened(), ["--strict", "--", probe]);
        Assert.Equal("ready", run.WaitReady());
        AssertHardenedStatus(run.ProcStatus());
        run.SignalAndExpectPass();
    }

    [RootFact]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public void LoopModeCountsUnderTheFilters()
    {
        string probe = Support.Workloads.Build("seccomp_probe");
        string dir = Directory.CreateTempSubdirectory("crisp-probe-").FullName;
        try
        {
            File.SetUnixFileMode(dir, (UnixFileMode)0x1ff); // writable by uid 1000
            string file = Path.Combine(dir, "loop.txt");
            using var run = WorkloadRun.Start(Hardened(), ["--", probe, "--loop", file]);
            Assert.Equal("ready", run.WaitReady());
            AssertHardenedStatus(run.ProcStatus());
            Thread.Sleep(450);
            run.SignalAndExpectPass();
            string[] lines = File.ReadAllLines(file);
            Assert.True(lines.Length >= 3, $"only {lines.Length} lines");
            for (int i = 0; i < lines.Length; i++)
                Assert.Equal(i.ToString(), lines[i]);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [RootFact]
    public void ProbeFailsWithoutTheSecondFilter()
    {
        string probe = Support.Workloads.Build("seccomp_probe");
        using var run = WorkloadRun.Start(Hardened(), ["--no-second", "--", probe]);
        Assert.Null(run.ReadLine()); // fails its first checks: no ready line
        int rc = run.WaitExit();
        Assert.Equal(1, rc);
        Assert.Contains("FAIL: marker:", run.Stderr);
        Assert.Contains("FAIL: status: Seccomp_filters is '1', expected '2'", run.Stderr);
    }

    [RootFact]
    public void ShellToolsWorkUnderTheAllowlist()
    {
        using var run = WorkloadRun.Start(Hardened(), ["--strict", "--", "sh", "-c",
            "i=0; while [ $i -lt 3 ]; do i=$(expr $i + 1); sleep 0.05; echo $i | cat; done; id -u"]);
        Assert.Equal("1", run.ReadLine());
        Assert.Equal("2", run.ReadLine());
        Assert.Equal("3", run.ReadLine());
        Assert.Equal("1000", run.ReadLine());
        Assert.True(run.WaitExit() == 0, run.Stderr);
    }

    [RootFact]
    public void ForbiddenSyscallsFailWithEperm()
    {
        using var run = WorkloadRun.Start(Hardened(), ["--", "unshare", "-U", "true"]);
        Assert.NotEqual(0, run.WaitExit());
        Assert.Contains("Operation not permitted", run.Stderr);
    }

    [Fact]
    public void StrictModeAnswersAByteOnStdin()
    {
        string exe = Support.Workloads.Build("strict_mode");
        using var run = WorkloadRun.Start(exe, [], redirectStdin: true);
        Assert.Equal("ready", run.WaitReady());
        string seccomp = "";
        for (int i = 0; i < 100 && seccomp != "1"; i++) // it enters strict mode just after "ready"
        {
            seccomp = run.ProcStatus()["Seccomp"];
            if (seccomp != "1")
                Thread.Sleep(10);
        }
        Assert.Equal("1", seccomp);
        run.StandardInput.Write('x');
        run.StandardInput.Flush();
        Assert.Equal("alive", run.ReadLine());
        Assert.True(run.WaitExit() == 0, run.Stderr);
    }
}
