namespace Crisp.Cli.CommandLine;

/// <summary>CRIU's option spellings (criu/config.c). Options crisp does not carry out yet are listed with
/// Supported = false so they are refused by name; anything not listed is an unknown option.</summary>
public static class CriuOptions
{
    private static OptionSpec Flag(string l, char? s, string help, bool supported = true) => new(l, s, ArgKind.None, help, supported);
    private static OptionSpec Value(string l, char? s, string help, bool supported = true) => new(l, s, ArgKind.Required, help, supported);
    private static OptionSpec Maybe(string l, char? s, string help, bool supported = true) => new(l, s, ArgKind.Optional, help, supported);

    public static readonly IReadOnlyList<OptionSpec> All =
    [
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
        Flag("shell-job", 'j', "a tree attached to the caller's terminal: dump its terminal as external, restore it onto crisp's stdin"),
        Value("freeze-cgroup", null, "seize the tree through this (v1 freezer or v2) cgroup"),
        Value("timeout", null, "seize time limit in seconds (default 10)"),
        Flag("tcp-established", null, "checkpoint established TCP connections (TCP_REPAIR)"),
        Maybe("ext-unix-sk", 'x', "reconnect datagram unix sockets connected outside the tree (e.g. /dev/log)"),
        Flag("file-locks", 'l', "handle file locks"),
        Maybe("manage-cgroups", null, "dump/restore cgroups", supported: false),
        Value("cgroup-root", null, "cgroup root for restore", supported: false),
        Value("libdir", 'L', "load plugin assemblies (*.dll) from DIR (default: $CRISP_LIBS_DIR)"),
        Value("pidfile", null, "write the restored root's pid to FILE"),
        Value("images-mode", null, "octal mode of the images, log and stats a dump writes (default 0600; a directory crisp creates gets 0700, or r→rx of it)"),
        Flag("insecure-images", null, "restore images that others could have written (skips the ownership/mode check)"),
        Value("sign-key", null, "dump: sign the checkpoint's manifest with this ECDSA P-256 private key (PEM)"),
        Value("verify-key", null, "restore: refuse a checkpoint not signed with this ECDSA P-256 public key (PEM)"),
        Value("encrypt-key", null, "dump: encrypt pages-*.img with AES-256-GCM under this 32-byte key file (raw, hex or base64); restore: decrypt them"),
        Flag("skip-image-verify", null, "restore/show images without checking crisp-manifest.sha256 (images from CRIU)"),
        Flag("restore-detached", 'd', "don't wait for the restored tree"),
        Flag("daemon", null, "same as --restore-detached"),
        Flag("restore-sibling", 'S', "restore the root as a sibling of crisp (needs -d)"),
        Value("inherit-fd", null, "fd[N]:KEY — restore the file KEY (pipe:[INO], socket:[INO], a path) as crisp's fd N"),
        Value("external", null, "external resource", supported: false),
        Value("root", 'r', "root directory for restore", supported: false),
        Value("join-ns", 'J', "join an existing namespace", supported: false),
        Value("ext-mount-map", 'M', "external mount mapping", supported: false),
        Value("empty-ns", null, "create an empty namespace", supported: false),
        Flag("display-stats", null, "print dump/restore statistics"),
        Value("status-fd", null, "write a zero byte to FD when ready"),
        Value("action-script", null, "run this script at action points (may be repeated)"),
        Value("feature", null, "check one kernel feature by CRIU's name"),
        Flag("all", null, "check every feature"),
        Flag("extra", null, "check extra features too"),
        Flag("experimental", null, "check experimental features too"),
        Flag("evasive-devices", null, "allow devices to be opened by another name", supported: false),
        Flag("link-remap", null, "allow link remaps of deleted files", supported: false),
        Value("ghost-limit", null, "size limit of ghost files (bytes, or with K/M/G)"),
        Value("file-validation", null, "how to validate files on restore", supported: false),
        Flag("skip-file-rwx-check", null, "skip the permission check of restored files", supported: false),
        Flag("track-mem", null, "track memory changes", supported: false),
        Value("prev-images-dir", null, "images of a previous pre-dump", supported: false),
        Flag("page-server", null, "send pages to a page server", supported: false),
        Value("address", null, "page server address", supported: false),
        Value("port", null, "page server port", supported: false),
        Flag("lazy-pages", null, "restore pages lazily", supported: false),
        Flag("auto-dedup", null, "deduplicate pages with the parent", supported: false),
        Flag("log-pid", null, "one log file per pid", supported: false),
        Flag("stream", null, "stream images through criu-image-streamer", supported: false),
        Value("network-lock", null, "how established TCP connections are locked: nftables (default) or skip"),
        Value("lsm-profile", null, "LSM profile for restore", supported: false),
        Flag("unprivileged", null, "run without CAP_SYS_ADMIN", supported: false),
        Flag("tls", null, "TLS for the page server", supported: false),
        Value("ps-socket", null, "page server socket", supported: false),
        Flag("exec-cmd", null, "exec a command after restore", supported: false),
    ];

    public static string Help(string verb) =>
        string.Join('\n', All.Where(o => o.Supported).Select(o =>
            $"  {(o.Display + (o.Arg == ArgKind.Required ? " ARG" : o.Arg == ArgKind.Optional ? "[=ARG]" : "")),-34} {o.Help}"));
}
