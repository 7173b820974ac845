using Crisp.Tests.Support;

namespace Crisp.Tests.Check;

[Collection("compel")]
public sealed class CheckCommandTests
{
    [RootFact]
    public void CheckLooksGoodAndLeavesNothingBehind()
    {
        var result = CrispCli.Run("check");
        Assert.True(result.ExitCode == 0, result.Stdout + result.Stderr);
        var lines = result.Stdout.Trim().Split('\n');
        Assert.Equal("Looks good.", lines[^1]);
        Assert.Contains(lines, l => l.StartsWith("ok") && l.Contains("clone3_set_tid"));
        Assert.Contains(lines, l => l.StartsWith("ok") && l.Contains("seccomp_filters"));

        // No probe task survives crisp: none of ours (children of this test process included), none orphaned.
        Assert.Empty(ProbeTasksLeft());
        foreach (var root in new[] { "/sys/fs/cgroup/freezer", "/sys/fs/cgroup/unified", "/sys/fs/cgroup" })
            if (Directory.Exists(root))
                Assert.Empty(Directory.EnumerateDirectories(root, "crisp-check-*", SearchOption.AllDirectories));
    }

    /// <summary>Live tasks running the probe puppet (argv "crisp-check") or the rseq probe's "sleep 60"
    /// as a child of this test process or of init.</summary>
    private static List<string> ProbeTasksLeft()
    {
        var left = new List<string>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out int pid))
                continue;
            try
            {
                string cmdline = File.ReadAllText(Path.Combine(dir, "cmdline"));
                int ppid = Crisp.Linux.Proc.ProcStat.Read(pid).PPid;
                if (cmdline == "crisp-check\0"
                    || (cmdline == "sleep\060\0" && (ppid == 1 || ppid == Environment.ProcessId)))
                    left.Add($"{pid} {cmdline.Replace('\0', ' ')}(parent {ppid})");
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
            {
            }
        }
        return left;
    }

    [RootFact]
    public void KnownFeatureIsSupported()
    {
        var result = CrispCli.Run("check", "--feature", "seccomp_filters");
        Assert.Equal(0, result.ExitCode);
        Assert.StartsWith("seccomp_filters is supported", result.Stdout);
    }

    [Fact]
    public void UnknownFeatureIsOneClearLine()
    {
        var result = CrispCli.Run("check", "--feature", "no_such_feature");
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("Unknown feature no_such_feature", result.Stderr);
        Assert.Single(result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.Contains("crisp: error:"));
    }

    [RootFact]
    public void AllRunsEveryProbe()
    {
        var result = CrispCli.Run("check", "--all");
        Assert.Equal(0, result.ExitCode);
        Assert.Equal(Crisp.Check.KernelFeatures.All.Count + 1, result.Stdout.Trim().Split('\n').Length);
    }

    [RootTheory]
    [InlineData("seccomp_suspend")]
    [InlineData("clone3_set_tid")]
    [InlineData("get_rseq_conf")]
    [InlineData("pidfd_store")]
    [InlineData("timerfd")]
    [InlineData("mnt_id")]
    [InlineData("fdinfo_lock")]
    [InlineData("openat2")]
    [InlineData("ns_pid")]
    public void CriuFeatureNamesAreCheckedAsCriuReportsThem(string name)
    {
        var result = CrispCli.Run("check", "--feature", name);
        Assert.True(result.ExitCode == 0, result.Stdout + result.Stderr);
        Assert.StartsWith($"{name} is supported", result.Stdout);
    }

    [Fact]
    public void MissingFeatureExitsNonZeroWithTheReason()
    {
        // mem_dirty_track needs CONFIG_MEM_SOFT_DIRTY: whichever way this kernel has it, exit and line agree.
        var result = CrispCli.Run("check", "--feature=mem_dirty_track");
        Assert.True(result.ExitCode is 0 or 1, result.Stderr);
        Assert.StartsWith(result.ExitCode == 0 ? "mem_dirty_track is supported" : "mem_dirty_track is not supported: ", result.Stdout);
    }

    [Fact]
    public void NoCriuFeatureIsLeftUnchecked()
    {
        // Once "not checked by crisp: crisp does not use it"; now tun is probed like any other name.
        var result = CrispCli.Run("check", "--feature", "tun");
        Assert.True(result.ExitCode is 0 or 1, result.Stderr);
        Assert.DoesNotContain("not checked", result.Stdout + result.Stderr);
        Assert.StartsWith(result.ExitCode == 0 ? "tun is supported" : "tun is not supported: ", result.Stdout);
    }

    [Fact]
    public void FeatureListNamesEveryProbe()
    {
        var result = CrispCli.Run("check", "--feature", "list");
        Assert.Equal(0, result.ExitCode);
        foreach (var name in new[] { "seccomp_filters", "seccomp_suspend", "clone3_set_tid", "get_rseq_conf", "pidfd_store", "timerfd", "mem_dirty_track" })
            Assert.Contains(name, result.Stdout.Split(' ', '\n'));
    }
}
