namespace Crisp.Dump;

/// <summary>What the user asked `crisp dump` to do.</summary>
public sealed record DumpOptions
{
    public required int RootPid { get; init; }
    public required string ImagesDir { get; init; }

    /// <summary>The images directory already open (the CLI opens it once; the RPC's images_dir_fd): images are opened
    /// relative to it; <see cref="ImagesDir"/> then names it in messages. Null: opened from the path.</summary>
    public Linux.UnixFd? ImagesDirHandle { get; init; }
    /// <summary>--external mnt[PATH]:KEY: mounts of the tree's mount namespace (by mount point) the caller provides.</summary>
    public IReadOnlyDictionary<string, string> ExternalMounts { get; init; } = new Dictionary<string, string>();
    /// <summary>--external mnt[]:FLAGS / --ext-mount-map auto: mounts bound from crisp's own namespace are found
    /// external by themselves (with --enable-external-masters/-sharing); null: not asked for.</summary>
    public Resources.Mounts.AutoExternalMounts? AutoExternalMounts { get; init; }
    /// <summary>Where the stage and the page bytes moved are counted for a progress display; null: not counted.</summary>
    public ProgressMeter? Progress { get; init; }
    /// <summary>The caller made <see cref="ImagesDir"/> for this dump: a failed dump removes it again (when empty).</summary>
    public bool ImagesDirCreated { get; init; }
    /// <summary>Let the tree run on after a successful dump (default: kill it).</summary>
    public bool LeaveRunning { get; init; }
    /// <summary>Allow a session leader / controlling terminal outside the tree.</summary>
    public bool ShellJob { get; init; }
    /// <summary>--orphan-pts-master: the tree's terminal is a pty whose master the caller holds (a container with a
    /// terminal: runc's console socket); its slave is dumped without the master.</summary>
    public bool OrphanPtsMaster { get; init; }
    /// <summary>Seize through this cgroup (v1 freezer or v2): frozen while tasks are attached, and put
    /// back in the freezer state it had afterwards.</summary>
    public string? FreezeCgroup { get; init; }
    /// <summary>Dump file locks (flock, POSIX, OFD) and re-take them on restore (--file-locks);
    /// without it a held lock fails the dump, as in CRIU.</summary>
    public bool FileLocks { get; init; }
    /// <summary>Largest deleted-but-open file whose contents are saved (--ghost-limit, CRIU's default 1 MiB).</summary>
    public long GhostLimit { get; init; } = 1 << 20;
    /// <summary>CRIU plugin libraries, *.so (--libdir); null: CRISP_LIBS_DIR, else built-in plugins only.</summary>
    public string? LibDir { get; init; }
    /// <summary>Seize time limit.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>Leave the tree stopped (SIGSTOP) after a successful dump instead of killing it (-s).</summary>
    public bool LeaveStopped { get; init; }
    /// <summary>--action-script hooks (pre-dump, post-dump, ...); null = none.</summary>
    public Scripts.ActionScripts? Scripts { get; init; }
    /// <summary>Dump established TCP connections through TCP_REPAIR (--tcp-established); without it they are refused.</summary>
    public bool TcpEstablished { get; init; }
    /// <summary>--skip-in-flight (CRIU's tcp_skip_in_flight): a listener's connections not yet accepted that cannot come
    /// back are dropped (logged) instead of failing the dump: a TCP listener's, and a unix listener's from clients
    /// outside the tree.</summary>
    public bool SkipInFlight { get; init; }
    /// <summary>--network-lock: how established connections are kept quiet from their dump to their restore.</summary>
    public Resources.Files.Sockets.Inet.NetworkLockMethod NetworkLock { get; init; } = Resources.Files.Sockets.Inet.NetworkLockMethod.Nftables;
    /// <summary>--ext-unix-sk: a datagram unix socket connected to a named socket outside the tree is dumped as an
    /// external peer (reconnected to that name at restore); without it such a socket fails the dump.</summary>
    public bool ExtUnixSk { get; init; }
    /// <summary>Modes of what the dump creates (--images-mode): private, 0600 files in a 0700 directory, by default.</summary>
    public Security.ImageModes ImagesMode { get; init; } = Security.ImageModes.Private;
    /// <summary>--sign-key: PEM file of an ECDSA P-256 private key; the manifest is signed with it (crisp-manifest.sig).</summary>
    public string? SignKey { get; init; }
    /// <summary>--encrypt-key: file holding a 32-byte key; pages-*.img are written AES-256-GCM encrypted with it.</summary>
    public string? EncryptKey { get; init; }
    /// <summary>--external values as given (net[INODE]:KEY: the tree's network namespace is the caller's).</summary>
    public IReadOnlyList<string> External { get; init; } = [];
    /// <summary>--empty-ns: CLONE_NEW* kinds whose contents are left to the caller (net: links other than lo are
    /// not refused, addresses and routes not dumped).</summary>
    public ulong EmptyNs { get; init; }
    /// <summary>--manage-cgroups and its mode; ignore when not asked for (CRIU's default would be soft).</summary>
    public Resources.Cgroups.CgroupMode CgroupMode { get; init; } = Resources.Cgroups.CgroupMode.Ignore;
    /// <summary>--cgroup-props / --cgroup-props-file: the properties dumped per controller.</summary>
    public Resources.Cgroups.CgroupPropsSpec CgroupProps { get; init; } = Resources.Cgroups.CgroupPropsSpec.Empty;
    /// <summary>--cgroup-dump-controller NAME…: only these hierarchies are dumped (none given: all).</summary>
    public IReadOnlyCollection<string> CgroupDumpControllers { get; init; } = [];
    /// <summary>--prev-images-dir: the previous pre-dump of a chain, as given (relative to the images dir, as CRIU
    /// takes it); the dump stores only pages written since and links it as DIR/parent.</summary>
    public string? PrevImagesDir { get; init; }
    /// <summary>--track-mem: leave memory tracking armed after this dump (pre-dump always does).</summary>
    public bool TrackMem { get; init; }
    /// <summary>--auto-dedup: once done, punch the pages this dump stored out of its parent images.</summary>
    public bool AutoDedup { get; init; }
    /// <summary>--page-server --address A --port P: task and shared-memory pages are sent to this CRIU-protocol page
    /// server instead of pagemap-*.img/pages-*.img (the other images still go to the images dir); null: no server.</summary>
    public (string Address, int Port)? PageServer { get; init; }
    /// <summary>--compress: offer LZ4 on the page server stream.</summary>
    public bool Compress { get; init; }
    /// <summary>--tls: the page server connection is TLS with these certificates (null: plain TCP).</summary>
    public Security.Tls.TlsSettings? Tls { get; init; }
    /// <summary>--lazy-pages --port P [--address A]: private anonymous pages are recorded PE_LAZY without data and served,
    /// once the images are written, from the still-seized tree to a lazy-pages daemon (PS_IOV_GET) until it says
    /// PS_IOV_CLOSE; then the tree is killed. A transfer that fails lets the tree run on. null: a plain dump.</summary>
    public (string Address, int Port)? LazyPages { get; init; }
    /// <summary>crisp migrate --lazy: private anonymous pages written since the parent (all of them without one) are
    /// recorded PE_LAZY as with <see cref="LazyPages"/>, the rest PE_PARENT; the dump's Handoff serves them over the
    /// migration's own connection (the lazy runs of the memory state). No listening socket of its own.</summary>
    public bool LazyHandoff { get; init; }
    /// <summary>Lazy runs are recorded (<see cref="LazyPages"/> or <see cref="LazyHandoff"/>).</summary>
    public bool Lazy => LazyPages is not null || LazyHandoff;
    /// <summary>Called once the images are written and the lazy pages are being served (the endpoint).</summary>
    public Action<string>? LazyServing { get; init; }
}
