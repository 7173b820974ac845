using Crisp.Check;
using Crisp.Linux;
using Crisp.Tests.Support;

namespace Crisp.Tests.Check;

/// <summary>`crisp check --feature NAME` answers every name of CRIU's list, truthfully for this machine.</summary>
[Collection("compel")]
public sealed class CriuFeatureNamesTests
{
    public static TheoryData<string> CriuNames => new(KernelFeatures.CriuNames);

    [Fact]
    public void EveryCriuNameIsAnsweredByAProbeOfThatName()
    {
        foreach (string name in KernelFeatures.CriuNames)
        {
            var probe = KernelFeatures.Find(name);
            Assert.True(probe is not null, $"no probe answers {name}");
            Assert.True(probe.CriuFeature == name, $"{name} answered by {probe.Name}");
        }
        Assert.Equal(KernelFeatures.CriuNames.Count, KernelFeatures.CriuNames.Distinct().Count());
    }

    [Fact]
    public void FeatureListHasEveryCriuName()
    {
        var names = KernelFeatures.Names.ToHashSet();
        Assert.All(KernelFeatures.CriuNames, n => Assert.Contains(n, names));
    }

    /// <summary>The probe itself (not the catching runner) returns ok or missing with a reason.</summary>
    [RootTheory]
    [MemberData(nameof(CriuNames))]
    public void EveryCriuNameGivesADefiniteAnswer(string name)
    {
        var result = KernelFeatures.Find(name)!.Probe();
        Assert.False(string.IsNullOrWhiteSpace(result.Detail));
        Assert.DoesNotContain("not checked", result.Detail);
        Assert.DoesNotContain("unknown", result.Detail, StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>mem_dirty_track is ok exactly when one of its halves (crisp's own names) is.</summary>
    [RootFact]
    public void MemDirtyTrackIsSoftDirtyOrWriteProtectScan()
    {
        bool soft = KernelFeatures.Find("soft_dirty")!.Probe().Ok;
        bool wp = KernelFeatures.Find("pagemap_scan_wp")!.Probe().Ok;
        var result = KernelFeatures.Find("mem_dirty_track")!.Probe();
        Assert.Equal(soft || wp, result.Ok);
        Assert.Contains($"soft-dirty: {(soft ? "yes" : "no")}", result.Detail);
        Assert.Contains($"PAGEMAP_SCAN write-protect: {(wp ? "yes" : "no")}", result.Detail);
    }

    [Fact]
    public void TimerCrIdsAgreesWithPrctl()
    {
        long r = RawSyscall.TryCall(Sysno.prctl, 77, 2);   // PR_TIMER_CREATE_RESTORE_IDS, _GET
        Assert.Equal(r >= 0, KernelFeatures.Find("timer_cr_ids")!.Probe().Ok);
    }

    [RootFact]
    public void UffdAgreesWithUserfaultfd()
    {
        long fd = RawSyscall.TryCall(Sysno.userfaultfd, FileIo.O_CLOEXEC);
        if (fd >= 0)
            FileIo.Close((int)fd);
        Assert.Equal(fd >= 0, KernelFeatures.Find("uffd")!.Probe().Ok);
    }

    [RootFact]
    public void NftablesAgreesWithNftListTables()
    {
        string? nft = new[] { "/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft", "/usr/local/sbin/nft" }.FirstOrDefault(File.Exists);
        bool works = nft is not null && CrispCli.RunProcess(nft, TimeSpan.FromSeconds(60), null, "list", "tables").ExitCode == 0;
        Assert.Equal(works, KernelFeatures.Find("nftables")!.Probe().Ok);
    }

    [Fact]
    public void AppArmorStackingNeedsAppArmor()
    {
        var result = KernelFeatures.Find("apparmor_stacking")!.Probe();
        if (!Directory.Exists("/sys/kernel/security/apparmor"))
            Assert.False(result.Ok);
        Assert.False(string.IsNullOrWhiteSpace(result.Detail));
    }

    [Fact]
    public void ExternalNetNsIsRefusedAsCrispRefusesExternal()
    {
        var result = CrispCli.Run("check", "--feature", "external_net_ns");
        Assert.Equal(1, result.ExitCode);
        Assert.StartsWith("external_net_ns is not supported: ", result.Stdout);
    }

    /// <summary>Probes that mount, unshare or open kernel objects leave crisp as they found it: no scratch
    /// mount (their source is "crisp-check"), same namespaces, no AIO ring, tun, userfaultfd or foreign
    /// netns fd, no temp file.</summary>
    [RootFact]
    public void ProbesLeaveNothingBehind()
    {
        string netns = new FileInfo("/proc/self/ns/net").LinkTarget!;
        string mntns = new FileInfo("/proc/self/ns/mnt").LinkTarget!;
        string[] names = ["autofs", "move_mount_set_group", "overlayfs_maps", "link_nsid", "loginuid", "aio_remap",
            "mem_dirty_track", "pagemap_scan_guard_pages", "uffd", "tun", "tun_ns", "sk_ns", "nftables",
            "has_ipt_legacy", "tcp_half_closed", "breakpoints"];
        foreach (string name in names)
            KernelFeatures.Find(name)!.Probe();
        Assert.DoesNotContain(File.ReadLines("/proc/self/mountinfo"), l => l.Contains(" crisp-check "));
        Assert.Equal(netns, new FileInfo("/proc/self/ns/net").LinkTarget);
        Assert.Equal(mntns, new FileInfo("/proc/self/ns/mnt").LinkTarget);
        Assert.DoesNotContain(File.ReadLines("/proc/self/maps"), l => l.Contains("[aio]"));
        Assert.Empty(Directory.GetFiles(Path.GetTempPath(), $"crisp-check-{Environment.ProcessId}-*"));
        var links = Directory.GetFiles("/proc/self/fd").Select(f => { try { return new FileInfo(f).LinkTarget; } catch (IOException) { return null; } });
        Assert.DoesNotContain(links, l => l is "/dev/net/tun" or "anon_inode:[userfaultfd]" || (l is not null && l.StartsWith("net:[") && l != netns));
    }

    /// <summary>Through the CLI: exit 0 and "is supported" exactly when the probe says ok, else 1 and the reason.</summary>
    [RootTheory]
    [InlineData("timer_cr_ids")]
    [InlineData("uffd")]
    [InlineData("tun")]
    [InlineData("nftables")]
    [InlineData("apparmor_stacking")]
    [InlineData("breakpoints")]
    [InlineData("autofs")]
    [InlineData("link_nsid")]
    [InlineData("overlayfs_maps")]
    [InlineData("has_ipt_legacy")]
    public void CliExitMatchesTheProbe(string name)
    {
        bool ok = KernelFeatures.Find(name)!.Probe().Ok;
        var result = CrispCli.Run("check", "--feature", name);
        Assert.True(result.ExitCode == (ok ? 0 : 1), result.Stdout + result.Stderr);
        Assert.StartsWith(ok ? $"{name} is supported (" : $"{name} is not supported: ", result.Stdout);
        Assert.Equal("", result.Stderr);
    }
}
