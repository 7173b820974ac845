using System.Diagnostics;
using Crisp.Compel.Freezer;
using Crisp.Linux.Proc;
using Crisp.Tests.Support;

namespace Crisp.Tests.Hardened;

/// <summary>crisp run without a privilege the dump needs (setpriv drops it from the bounding and
/// inheritable sets, so the exec'd crisp lacks it): the dump fails with one line naming the task, the
/// operation and the capability, before anything is stopped or frozen, and the tree runs on untouched.</summary>
[Collection("Hardened")]
public class PrivilegeTests : IDisposable
{
    private readonly Bench _bench = new();

    public void Dispose() => _bench.Dispose();

    [RootTheory]
    [InlineData("sys_admin", null, "CAP_SYS_ADMIN", "PTRACE_SECCOMP_GET_FILTER")]
    [InlineData("sys_admin", "/sys/fs/cgroup/unified", "CAP_SYS_ADMIN", "PTRACE_SECCOMP_GET_FILTER")]
    [InlineData("sys_ptrace", null, "CAP_SYS_PTRACE", "PTRACE_SEIZE")]
    [InlineData("sys_ptrace", "/sys/fs/cgroup/freezer", "CAP_SYS_PTRACE", "PTRACE_SEIZE")]
    public void MissingPrivilegeFailsBeforeTouchingTheTree(string drop, string? hierarchy, string capability, string operation)
    {
        if (!File.Exists("/usr/bin/setpriv"))
            Assert.Fail("setpriv (util-linux) is missing; tests/run installs it");
        string counter = Path.Combine(_bench.Work, "counter.txt");
        int pid = _bench.Start(Support.Workloads.Build("hardened", "-lseccomp"),
            ["hardened", "--", Support.Workloads.Build("seccomp_probe"), "--loop", counter]);
        Bench.WaitFor(() => Bench.Numbers(counter).Count >= 3 && ProcStatus.Read(pid).SeccompFilters == 2, "the probe to count");
        string? cgroup = hierarchy is null ? null : _bench.Cgroup(hierarchy, pid);
        string log = Path.Combine(_bench.Work, "dump.log");

        var args = new List<string> { "dump", "-t", pid.ToString(), "-D", _bench.Images, "-v4", "-o", log, "--leave-running" };
        if (cgroup is not null)
            args.AddRange(["--freeze-cgroup", cgroup]);
        var (rc, stderr) = RunCrispWithout(drop, args);

        Assert.NotEqual(0, rc);
        var lines = stderr.Trim().Split('\n');
        Assert.Single(lines);
        Assert.Contains($"task {pid}", lines[0]);
        Assert.Contains(operation, lines[0]);
        Assert.Contains(capability, lines[0]);
        Assert.DoesNotContain("   at ", stderr);
        // Nothing was touched: no seize and no freeze in the log, the cgroup never frozen, the probe
        // untraced and counting on with its filters.
        string logText = File.Exists(log) ? File.ReadAllText(log) : "";
        Assert.DoesNotContain("seized", logText);
        Assert.DoesNotContain("was not frozen", logText);
        if (cgroup is not null)
            Assert.False(CgroupFreezer.Open(cgroup).IsFrozen());
        Assert.Equal(0, ProcStatus.Read(pid).TracerPid);
        long now = Bench.Numbers(counter).Last();
        Bench.WaitFor(() => Bench.Numbers(counter).Last() >= now + 2, "the probe to carry on");
        var verdict = Bench.Verdict(pid);
        Assert.True(verdict.Exited && verdict.ExitCode == 0, $"probe: {verdict}; stderr: {_bench.Stderr}");
        Bench.AssertContinuous(counter);
    }

    private static (int ExitCode, string Stderr) RunCrispWithout(string cap, IEnumerable<string> args)
    {
        var psi = new ProcessStartInfo("/usr/bin/setpriv") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in (string[])[$"--inh-caps=-{cap}", $"--bounding-set=-{cap}", "--", CrispCli.Exe])
            psi.ArgumentList.Add(a);
        foreach (var a in args)
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromSeconds(60)))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException("crisp under setpriv did not finish in 60 s");
        }
        return (p.ExitCode, stderr.Result);
    }
}
