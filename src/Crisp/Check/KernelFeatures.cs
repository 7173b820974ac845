namespace Crisp.Check;

/// <summary>Every kernel feature crisp relies on, in the order <c>crisp check</c> reports them.</summary>
public static class KernelFeatures
{
    public static IReadOnlyList<IFeatureProbe> All { get; } =
    [
        new PtraceSeizeProbe(),
        new SuspendSeccompProbe(),
        new SeccompGetFilterProbe(),
        new SeccompGetMetadataProbe(),
        new RseqConfigurationProbe(),
        new Clone3SetTidProbe(),
        new PidFdProbe(),
        new ProcessVmReadvProbe(),
        new MapFilesProbe(),
        new MmMapProbe(),
        new TimerfdProbe(),
        new MemDirtyTrackProbe(),
        new PagemapScanProbe(),
        new PagemapScanGuardPagesProbe(),
        new FreezerV1Probe(),
        new FreezerV2Probe(),
        new MntIdProbe(),
        new FdinfoLockProbe(),
        new Openat2Probe(),
        new NsPidProbe(),
        new NamespaceProbe("timens", "time"),
        new NamespaceProbe("cgroupns", "cgroup"),
        new MemfdHugetlbProbe(),
        new NetworkLockProbe(),
        new AioRemapProbe(),
        new UffdProbe(),
        new UffdNoncoopProbe(),
        new LazyPagesProbe(),
        new UsernsProbe(),
        new LoginuidProbe(),
        new KcmpEpollProbe(),
        new TimerCrIdsProbe(),
        new AppArmorStackingProbe(),
        new CanMapVdsoProbe(),
        new CompatCrProbe(),
        new BreakpointsProbe(),
        new TunProbe(),
        NetnsIoctlProbe.Tun(),
        NetnsIoctlProbe.Socket(),
        new SkUnixFileProbe(),
        new TcpHalfClosedProbe(),
        new SockoptBufLockProbe(),
        new Ipv6FreebindProbe(),
        new NetDiagRawProbe(),
        new NsidProbe(),
        new LinkNsidProbe(),
        new NewIfindexProbe(),
        new NftablesProbe(),
        new IptLegacyProbe(),
        new ExternalNetNsProbe(),
        new AutofsProbe(),
        new MoveMountSetGroupProbe(),
        new OverlayfsMapsProbe(),
    ];

    /// <summary>CRIU's whole `check --feature` list (criu/cr-check.c feature_list). Every one is answered
    /// by a probe above (KernelFeaturesTests asserts it), so CRIU harnesses get a real yes or no.</summary>
    public static IReadOnlyList<string> CriuNames { get; } =
    [
        "mnt_id", "mem_dirty_track", "aio_remap", "timerfd", "tun", "tun_ns", "userns", "fdinfo_lock",
        "seccomp_suspend", "seccomp_filters", "loginuid", "cgroupns", "autofs", "tcp_half_closed", "compat_cr",
        "uffd", "uffd-noncoop", "can_map_vdso", "sk_ns", "sk_unix_file", "net_diag_raw", "nsid", "link_nsid",
        "kcmp_epoll", "timens", "external_net_ns", "clone3_set_tid", "newifindex", "nftables", "has_ipt_legacy",
        "pidfd_store", "ns_pid", "apparmor_stacking", "network_lock_nftables", "sockopt_buf_lock",
        "memfd_hugetlb", "move_mount_set_group", "openat2", "get_rseq_conf", "ipv6_freebind", "pagemap_scan",
        "timer_cr_ids", "overlayfs_maps", "breakpoints", "pagemap_scan_guard_pages",
    ];

    /// <summary>The two halves of mem_dirty_track, checkable alone by crisp's names; `crisp check` runs
    /// them once, inside <see cref="MemDirtyTrackProbe"/>.</summary>
    public static IReadOnlyList<IFeatureProbe> Parts { get; } = [new SoftDirtyProbe(), new PagemapScanWpProbe()];

    /// <summary>A probe by CRIU's feature name or crisp's own name (case-insensitive); null if unknown.</summary>
    public static IFeatureProbe? Find(string name) => All.Concat(Parts).FirstOrDefault(p =>
        string.Equals(p.CriuFeature, name, StringComparison.OrdinalIgnoreCase)
        || string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase)
        || (p is PidFdProbe && string.Equals(name, "pidfd_getfd", StringComparison.OrdinalIgnoreCase)));

    /// <summary>Names <c>--feature</c> accepts.</summary>
    public static IEnumerable<string> Names => All.Concat(Parts).SelectMany(p => p.CriuFeature is { } c && c != p.Name ? [c, p.Name] : new[] { p.Name });
}
