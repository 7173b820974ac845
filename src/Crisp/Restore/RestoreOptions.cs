namespace Crisp.Restore;

/// <summary>What the user asked `crisp restore` to do.</summary>
public sealed record RestoreOptions
{
    public required string ImagesDir { get; init; }

    /// <summary>The images directory already open (the CLI opens it once; the RPC's images_dir_fd): images are opened
    /// relative to it; <see cref="ImagesDir"/> then names it in messages. Null: opened from the path.</summary>
    public Linux.UnixFd? ImagesDirHandle { get; init; }
    /// <summary>--root: the root filesystem a tree with a mount namespace of its own gets its mounts built under.</summary>
    public string? Root { get; init; }
    /// <summary>--external mnt[KEY]:PATH: the host path bound where a mount dumped as external KEY was.</summary>
    public IReadOnlyDictionary<string, string> ExternalMounts { get; init; } = new Dictionary<string, string>();
    /// <summary>--external mnt[] / --ext-mount-map auto: mounts found external at dump are bound again from the host
    /// path written as their source; null: such images are refused.</summary>
    public Resources.Mounts.AutoExternalMounts? AutoExternalMounts { get; init; }
    /// <summary>Where the stage and the page bytes moved are counted for a progress display; null: not counted.</summary>
    public ProgressMeter? Progress { get; init; }
    /// <summary>Return once the tree runs instead of waiting for the root to exit (-d).</summary>
    public bool Detached { get; init; }
    public string? PidFile { get; init; }
    public bool ShellJob { get; init; }
    /// <summary>--orphan-pts-master: a dumped pty slave without its master gets a new pty whose master goes to the
    /// caller (RPC: the "orphan-pts-master" notify carries it; runc passes it to the console socket).</summary>
    public bool OrphanPtsMaster { get; init; }
    /// <summary>The restored root becomes a child of crisp's parent (--restore-sibling), not of crisp.</summary>
    public bool Sibling { get; init; }
    /// <summary>--action-script hooks (pre-restore, post-restore, pre-resume, post-resume, ...); null = none.</summary>
    public Scripts.ActionScripts? Scripts { get; init; }
    /// <summary>--tcp-established: established TCP connections in the images are re-made through TCP_REPAIR;
    /// without it images holding one are refused.</summary>
    public bool TcpEstablished { get; init; }
    /// <summary>--network-lock; null: the dump's method from the inventory (nftables unless it was skip).</summary>
    public Resources.Files.Sockets.Inet.NetworkLockMethod? NetworkLock { get; init; }
    /// <summary>--ext-unix-sk: sockets dumped with an outside peer are connected to its name again; without it
    /// images holding one are refused.</summary>
    public bool ExtUnixSk { get; init; }
    public bool FileLocks { get; init; }
    /// <summary>CRIU plugin libraries, *.so (--libdir); null: CRISP_LIBS_DIR, else built-in plugins only.</summary>
    public string? LibDir { get; init; }
    /// <summary>Use images without checking them against crisp-manifest.sha256 (images made by CRIU or other tools).</summary>
    public bool SkipImageVerify { get; init; }
    /// <summary>--inherit-fd: (crisp's fd, CRIU's key of the file it stands for: pipe:[INO], socket:[INO], a path).</summary>
    public IReadOnlyList<(int Fd, string Key)> InheritFds { get; init; } = [];
    /// <summary>--insecure-images: restore images others could have written (no StrictModes check).</summary>
    public bool InsecureImages { get; init; }
    /// <summary>--verify-key: PEM file of the public key the checkpoint must be signed with.</summary>
    public string? VerifyKey { get; init; }
    /// <summary>--encrypt-key: the key the checkpoint's pages were encrypted with.</summary>
    public string? EncryptKey { get; init; }
    /// <summary>--empty-ns: CLONE_NEW* kinds made new and empty (net: only lo, up as it was).</summary>
    public ulong EmptyNs { get; init; }
    /// <summary>--weak-sysctls: a namespace sysctl of the images this kernel lacks is skipped instead of failing the restore.</summary>
    public bool WeakSysctls { get; init; }

    /// <summary>--veth-pair IN=OUT[@BRIDGE] and --external veth[IN]:OUT[@BRIDGE]: where the outside peers of the
    /// restored namespace's veth links are made.</summary>
    public IReadOnlyList<Resources.Net.VethPair> VethPairs { get; init; } = [];
    /// <summary>--join-ns KIND:PATH: the restored tree enters these existing namespaces instead of new ones.</summary>
    public IReadOnlyList<(string Kind, string Path)> JoinNs { get; init; } = [];
    /// <summary>--manage-cgroups and its mode; ignore when not asked for (CRIU's default would be soft).</summary>
    public Resources.Cgroups.CgroupMode CgroupMode { get; init; } = Resources.Cgroups.CgroupMode.Ignore;
    /// <summary>--cgroup-root [CTRL:]PATH: where the tree's cgroups go instead of where they were ("" key: every controller).</summary>
    public IReadOnlyList<(string Controller, string Path)> CgroupRoots { get; init; } = [];
    /// <summary>--cgroup-yard PATH: the hierarchies are the ones the caller mounted below PATH, not crisp's.</summary>
    public string? CgroupYard { get; init; }
    /// <summary>restore --lazy-pages: the lazy-pages daemon's socket (WORKDIR/lazy-pages.socket); private anonymous
    /// memory is filled by it on fault and in the background while the tree runs. null: every page filled here.</summary>
    public string? LazyPagesSocket { get; init; }
}
