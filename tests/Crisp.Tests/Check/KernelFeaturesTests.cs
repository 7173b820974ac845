using Crisp.Tests.Support;
using Crisp.Check;

namespace Crisp.Tests.Check;

[Collection("compel")]
public sealed class KernelFeaturesTests
{
    /// <summary>What this machine (kernel 6.18 in docker, root) is known to lack: AppArmor is off, hardware
    /// breakpoints are not virtualized, there is no autofs and no iptables; crisp refuses --external.</summary>
    private static readonly HashSet<string> KnownMissingHere =
        ["apparmor_stacking", "breakpoints", "autofs", "has_ipt_legacy", "external_net_ns"];

    public static TheoryData<string> ProbeNames => new(KernelFeatures.All.Select(p => p.Name));

    [RootTheory]
    [MemberData(nameof(ProbeNames))]
    public void ProbeReportsOkHere(string name)
    {
        var probe = KernelFeatures.Find(name)!;
        var outcome = FeatureCheck.Run(probe);
        if (KnownMissingHere.Contains(name))
            Assert.False(probe.Required);
        else
            Assert.True(outcome.Result.Ok, $"{name}: {outcome.Result.Detail}");
        Assert.False(string.IsNullOrWhiteSpace(outcome.Result.Detail));
    }

    [Fact]
    public void FindAcceptsCriuAndCrispNames()
    {
        Assert.IsType<SeccompGetFilterProbe>(KernelFeatures.Find("seccomp_filters"));
        Assert.IsType<SuspendSeccompProbe>(KernelFeatures.Find("seccomp_suspend"));
        Assert.IsType<PidFdProbe>(KernelFeatures.Find("pidfd_store"));
        Assert.IsType<PidFdProbe>(KernelFeatures.Find("PIDFD_GETFD"));
        Assert.IsType<MemDirtyTrackProbe>(KernelFeatures.Find("mem_dirty_track"));
        Assert.Null(KernelFeatures.Find("no_such_feature"));
        Assert.Equal(KernelFeatures.All.Count, KernelFeatures.All.Select(p => p.Name).Distinct().Count());
    }

    private sealed class FakeProbe(string name, bool ok, bool required, string? criu = null) : IFeatureProbe
    {
        public string Name => name;
        public string? CriuFeature => criu;
        public bool Required => required;
        public ProbeResult Probe() => ok ? ProbeResult.Supported("fine") : throw new InvalidOperationException("boom\nsecond line");
    }

    [Fact]
    public void RunnerPrintsOneLinePerProbeThenLooksGood()
    {
        var output = new StringWriter();
        int rc = FeatureCheck.RunAll([new FakeProbe("alpha", true, true, "criu_alpha"), new FakeProbe("beta", false, false)], output);
        var lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(0, rc);
        Assert.Equal(3, lines.Length);
        Assert.Matches(@"^ok\s+alpha \[criu_alpha\]\s+fine$", lines[0]);
        Assert.Matches(@"^missing\s+beta \(optional\)\s+boom second line$", lines[1]);
        Assert.Equal("Looks good.", lines[2]);
    }

    [Fact]
    public void RunnerListsMissingRequiredFeaturesAndFails()
    {
        var output = new StringWriter();
        int rc = FeatureCheck.RunAll([new FakeProbe("alpha", true, true), new FakeProbe("gamma", false, true)], output);
        string text = output.ToString();
        Assert.Equal(1, rc);
        Assert.DoesNotContain("Looks good.", text);
        Assert.Contains("Missing required features:\n  gamma: boom second line", text.ReplaceLineEndings("\n"));
    }
}
