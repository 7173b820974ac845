namespace Crisp.Cli.CommandLine;

/// <summary>CRIU's option spellings (criu/config.c). Options crisp does not carry out yet are listed with
/// Supported = false so they are refused by name; anything not listed is an unknown option.</summary>
public static class CriuOptions
{
    private static OptionSpec Flag(string l, char? s, string help, bool supported = true) => new(l, s, ArgKind.None, help, supported);
    private static OptionSpec Value(string l, char? s, string help, bool supported = true) => new(l, s, ArgKind.Required, help, supported);
    private static OptionSpec Maybe(string l, char? s, string help, bool supported = true) => new(l, s, ArgKind.Optional, help, supported);

    /// <summary>CRIU's BOOL_OPT: "--X" and "--no-X" (the default, so always accepted).</summary>
    private static OptionSpec[] Bool(string l, char? s, string help, bool supported = true) =>
        [Flag(l, s, help, supported), Flag("no-" + l, null, $"the default: not --{l}") with { Negates = l }];

    /// <summary>Options CRIU takes that change nothing in what crisp does: accepted so callers written for
    /// CRIU (test harnesses, runtimes) run unchanged.</summary>
    private static OptionSpec Same(string l, ArgKind arg, string why) => new(l, null, arg, $"accepted; {why}");

    public static readonly IReadOnlyList<OptionSpec> All =
    [
        .. Bool("force-irmap", null, "accepted; crisp always finds inotify/fanotify watch paths from their file handles"),
        Same("irmap-scan-path", ArgKind.Required, "crisp needs no scan path to find watched inodes"),
        Same("pre-dump-mode", ArgKind.Required, "splice or read: crisp copies pages its own way"),
        .. Bool("ghost-fiemap", null, "accepted; how ghost file contents are read changes nothing crisp writes"),
        .. Bool("weak-sysctls", null, "restore: skip a network namespace sysctl this kernel lacks instead of failing"),
        .. Bool("deprecated", null, "accepted; crisp reads no deprecated image kinds"),
        .. Bool("allow-uprobes", null, "accepted; crisp dumps uprobe pages as ordinary mappings"),
        Same("ms", ArgKind.None, "check: crisp probes mainstream kernel features only"),
        Flag("help", 'h', "show this help"),
        Flag("version", 'V', "print the version"),
        Maybe("verbosity", 'v', "log level: -v (one more), -vN / --verbosity=N (0 none .. 4 debug)"),
        Value("log-file", 'o', "write the log to FILE (relative to the work dir)"),
        Value("images-dir", 'D', "directory of image files"),
        Value("work-dir", 'W', "directory for logs and stats (default: images dir)"),
        Flag("no-default-config", null, "don't read configuration files (crisp reads none)"),
        Value("config", null, "configuration file", supported: false),
        Value("tree", 't', "pid of the root of the process tree to dump"),
        Flag("leave-running", 'R', "let the tree run on after dump"),
        Flag("leave-stopped", 's', "leave the tree stopped after dump"),
        .. Bool("orphan-pts-master", null, "a terminal whose pty master is the caller's: dump its slave alone; restore hands a new master to the RPC caller"),
        .. Bool("shell-job", 'j', "a tree attached to the caller's terminal: dump its terminal as external, restore it onto crisp's stdin"),
        Value("freeze-cgroup", null, "seize the tree through this (v1 freezer or v2) cgroup"),
        Value("timeout", null, "seize time limit in seconds (default 10)"),
        .. Bool("tcp-established", null, "checkpoint established TCP connections (TCP_REPAIR)"),
        Maybe("ext-unix-sk", 'x', "reconnect datagram unix sockets connected outside the tree (e.g. /dev/log)"),
        .. Bool("file-locks", 'l', "handle file locks"),
        Maybe("manage-cgroups", null, "cgroups mode: none, props, soft (the option alone), full, strict or ignore (without the option: cgroups are left alone)"),
        Value("cgroup-root", null, "[CTRL:]PATH — restore: the root task's cgroup (of CTRL, or of every controller) becomes PATH"),
        Value("libdir", 'L', "load CRIU plugin libraries (*.so) from DIR (default: $CRISP_LIBS_DIR)"),
        Value("pidfile", null, "write the restored root's pid to FILE"),
        Value("images-mode", null, "octal mode of the images, log and stats a dump writes (default 0600; a directory crisp creates gets 0700, or r→rx of it)"),
        Flag("insecure-images", null, "restore images that others could have written (skips the ownership/mode check)"),
        Value("sign-key", null, "dump: sign the checkpoint's manifest with this ECDSA P-256 private key (PEM)"),
        Value("verify-key", null, "restore: refuse a checkpoint not signed with this ECDSA P-256 public key (PEM)"),
        Value("encrypt-key", null, "dump/page-server: encrypt every image with AES-256-GCM under this 32-byte key file (raw, hex or base64); restore, show, decode, x, inspect: decrypt them"),
        Flag("compress", null, "dump/pre-dump --page-server and page-server: LZ4 on the page stream when both ends are crisp with --compress (a CRIU peer never sees it)"),
        Flag("show-secrets", null, "show/inspect: print payloads (pipe, socket, queue, tty and deleted-file contents), argv and environment values"),
        Flag("skip-image-verify", null, "restore/show images without checking crisp-manifest.sha256 (images from CRIU)"),
        .. Bool("restore-detached", 'd', "don't wait for the restored tree"),
        .. Bool("daemon", null, "same as --restore-detached"),
        .. Bool("restore-sibling", 'S', "restore the root as a sibling of crisp (needs -d)"),
        Value("inherit-fd", null, "fd[N]:KEY — restore the file KEY (pipe:[INO], socket:[INO], a path) as crisp's fd N"),
        Value("external", null, "mnt[PATH]:KEY at dump marks the tree's mount at PATH as provided by the caller; mnt[KEY]:PATH at restore binds PATH there; mnt[]:FLAGS finds mounts bound from crisp's namespace at dump (flags m, s: masters, sharing) and binds them again at restore; net[INODE]:KEY at dump: the tree's network namespace is the caller's (restore it with --inherit-fd fd[N]:KEY); veth[IN]:OUT[@BRIDGE] at restore: as --veth-pair IN=OUT[@BRIDGE]"),
        Value("root", 'r', "restore: the root filesystem a tree with its own mount namespace is rebuilt under and pivoted into"),
        Value("join-ns", 'J', "restore: net:PATH (or net:PID) — the tree goes into this existing network namespace"),
        Value("ext-mount-map", 'M', "CRIU's older spelling of --external mnt[A]:B, given as A:B (auto: --external mnt[])"),
        Value("empty-ns", null, "net — dump: leave links other than lo and addresses to the caller; restore: a new network namespace with only lo"),
        .. Bool("display-stats", null, "print dump/restore statistics"),
        Value("status-fd", null, "write a zero byte to FD when ready"),
        Value("action-script", null, "run this script at action points (may be repeated)"),
        Value("feature", null, "check one kernel feature by CRIU's name"),
        Flag("all", null, "check every feature"),
        .. Bool("extra", null, "check extra features too"),
        .. Bool("experimental", null, "check experimental features too"),
        .. Bool("evasive-devices", null, "allow a device to be opened by another path with the same device number (crisp always reopens devices by path)"),
        .. Bool("link-remap", null, "allow link remaps of deleted files", supported: false),
        Value("ghost-limit", null, "size limit of ghost files (bytes, or with K/M/G)"),
        Value("file-validation", null, "how to validate files on restore", supported: false),
        .. Bool("skip-file-rwx-check", null, "skip the permission check of restored files", supported: false),
        .. Bool("track-mem", null, "dump: keep tracking memory writes for a later dump (pre-dump always does)"),
        Value("prev-images-dir", null, "the previous pre-dump of the chain (relative to -D): store only pages written since"),
        .. Bool("page-server", null, "dump/pre-dump: send pages to a page server (--address, --port) instead of pages-*.img"),
        Value("address", null, "page server address (page-server: to listen on, default all); service: the unix socket to listen on"),
        Value("port", null, "page server port"),
        Flag("lazy-pages", null, "dump: serve private anonymous pages on --port after the dump (the tree stays stopped until they are all sent); restore: leave them to `crisp lazy-pages` (WORKDIR/lazy-pages.socket), filled on fault while the tree runs"),
        .. Bool("auto-dedup", null, "dump: punch the pages this dump stores out of its parent images; restore: accepted, the images are kept"),
        .. Bool("log-pid", null, "one log file per pid", supported: false),
        .. Bool("stream", null, "stream images through criu-image-streamer", supported: false),
        Value("network-lock", null, "how established TCP connections are locked: nftables (default) or skip"),
        Value("lsm-profile", null, "LSM profile for restore", supported: false),
        .. Bool("unprivileged", null, "run without CAP_SYS_ADMIN", supported: false),
        .. Bool("tls", null, "TLS for the page server and migrate/receive"),
        Value("ps-socket", null, "page server socket", supported: false),
        Flag("exec-cmd", null, "exec a command after restore", supported: false),
        .. Bool("skip-in-flight", null, "dump: drop connections not yet accepted on listening sockets (TCP; unix ones from clients outside the tree)"),
        .. Bool("tcp-close", null, "restore established TCP connections closed", supported: false),
        .. Bool("mntns-compat-mode", null, "restore mount namespaces the pre-4.0 way", supported: false),
        Value("close", null, "close this fd before restoring", supported: false),
        Value("veth-pair", null, "restore: IN=OUT[@BRIDGE]: the peer of the namespace's veth IN is made here as OUT (and added to BRIDGE, up)"),
        Maybe("cpu-cap", null, "CPU capabilities to check at restore", supported: false),
        Value("skip-mnt", null, "mount to skip", supported: false),
        Value("enable-fs", null, "filesystem to dump as external", supported: false),
        Flag("enable-external-sharing", null, "dump, with --external mnt[]: take shared mounts bound from crisp's namespace as external"),
        Flag("enable-external-masters", null, "dump, with --external mnt[]: take slave mounts bound from crisp's namespace as external"),
        Value("cgroup-props", null, "dump: the properties dumped per controller, in CRIU's simplified YAML"),
        Value("cgroup-props-file", null, "dump: as --cgroup-props, read from a file"),
        Value("cgroup-dump-controller", null, "dump: a cgroup controller to dump; the others are left out (repeatable)"),
        Value("cgroup-yard", null, "restore: a directory below which the caller mounted the cgroup hierarchies"),
        Value("lsm-mount-context", null, "LSM mount context for restore", supported: false),
        Value("tls-cacert", null, "TLS CA certificate for the page server"),
        Value("tls-cacrl", null, "TLS CA revocation list for the page server", supported: false),
        Value("tls-cert", null, "TLS certificate for the page server"),
        Value("tls-key", null, "TLS key for the page server"),
        Flag("tls-no-cn-verify", null, "don't verify the page server's CN"),
        Flag("check-only", null, "restore: check that this machine can restore the checkpoint, creating nothing"),
        // crit's spellings for the image tools (decode/encode take -o as their output there, not the log).
        Value("in", 'i', "decode/encode: input file (default stdin)"),
        Value("out", null, "decode/encode: output file, as -o (default stdout)"),
        Flag("pretty", null, "decode: indented, with crit's readable numbers (as show)"),
        Flag("update", null, "manifest: rewrite crisp-manifest.sha256 for the images as they are now"),
        Value("format", null, "inspect: tree (default) or json"),
        // crisp's own, for `crisp migrate` / `crisp receive`.
        Value("to", null, "migrate: the target, HOST[:PORT], where `crisp receive` listens"),
        Value("iterations", null, "migrate: at most N pre-dumps before the final dump (default 3)"),
        Value("until-dirty-below", null, "migrate: stop pre-dumping once one stores fewer than PAGES pages"),
        Flag("lazy", null, "migrate: post-copy: the final dump leaves the pages written since the last pre-dump in the stopped tree; the target runs the restored tree while they come, and the tree here is killed once all are there"),
        // crisp's own, for `crisp install`.
        Flag("as-criu", null, "install: also as `criu` (a symlink to crisp), for runc, Podman and scripts"),
        Value("prefix", null, "install: under DIR/bin (default /usr/local)"),
        Flag("undo", null, "install: take back what `crisp install` put there"),
    ];

    public static string Help(string verb) =>
        string.Join('\n', All.Where(o => o.Supported && o.Negates is null).Select(o =>
            $"  {(o.Display + (o.Arg == ArgKind.Required ? " ARG" : o.Arg == ArgKind.Optional ? "[=ARG]" : "")),-34} {o.Help}"));
}
