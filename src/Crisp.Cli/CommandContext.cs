using Crisp.Cli.CommandLine;
using Crisp.Linux.Proc;

namespace Crisp.Cli;

/// <summary>What a verb gets: its parsed arguments, the log, and where output goes.</summary>
public sealed class CommandContext(ParsedArguments args, Log log, TextWriter stdout)
{
    public ParsedArguments Args { get; } = args;
    public Log Log { get; } = log;
    public TextWriter Out { get; } = stdout;

    /// <summary>Positionals after the verb.</summary>
    public IReadOnlyList<string> Operands => Args.Positionals.Skip(1).ToList();

    /// <summary>The images dir as a full path, resolved before crisp entered the work dir (dump/restore).</summary>
    public string? ResolvedImagesDir { get; init; }

    /// <summary>The images dir held open (the CLI opens it once; the RPC's images_dir_fd): dump and restore open
    /// every image relative to it. Null when there is none yet.</summary>
    public Crisp.Linux.UnixFd? ImagesDirHandle { get; init; }

    /// <summary>crisp made the images dir for this dump (it did not exist).</summary>
    public bool CreatedImagesDir { get; init; }

    /// <summary>Told at every action point before the scripts run (the RPC service's NOTIFY); null on the command line.</summary>
    public Crisp.Scripts.IActionNotifier? Notifier { get; init; }

    /// <summary>Whether a progress line may be drawn on stderr (never in swrk/service mode: stderr is the caller's).</summary>
    public bool ShowProgress { get; init; } = true;

    /// <summary>Called once a restored tree runs (the RPC service answers with its root's pid).</summary>
    public Action<Crisp.Restore.RestoredTree>? OnRestored { get; init; }

    /// <summary>Started under the name `criu` (installed as CRIU, `crisp install --as-criu`): answers in CRIU's shape.</summary>
    public bool AsCriu { get; init; }

    /// <summary>crisp's current directory (it never changes it): relative paths of options such as --root are
    /// taken from there.</summary>
    public string StartDirectory { get; init; } = Environment.CurrentDirectory;

    /// <summary>The work dir (-W, default the images dir) of dump, pre-dump, page-server and restore; null for
    /// other verbs. Relative paths of the log, pidfile, stats, scripts, keys and libraries are taken from it.</summary>
    public WorkDirectory? WorkDir { get; init; }

    /// <summary>--external mnt[A]:B and --ext-mount-map A:B, as A → B (dump: mount point → key; restore: key →
    /// host path). Other kinds of --external are refused by name; mnt[] and auto are <see cref="AutoExternalMounts"/>.</summary>
    public IReadOnlyDictionary<string, string> ExternalMounts()
    {
        _ = AutoExternalMounts();
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        void Add(string a, string b, string given)
        {
            if (a.Length == 0 || b.Length == 0)
                throw new UsageException($"bad external mount '{given}': both sides must be given (mnt[A]:B)");
            if (!map.TryAdd(a, b) && map[a] != b)
                throw new UsageException($"external mount {a} is given twice, as {map[a]} and {b}");
        }
        foreach (string? v in Args.GetAll("external"))
        {
            if (v?.StartsWith("net[", StringComparison.Ordinal) == true || v?.StartsWith("veth[", StringComparison.Ordinal) == true
                || v?.StartsWith("mnt[]", StringComparison.Ordinal) == true)
                continue;   // the network namespace's (DumpOptions.External) and veth peers' (VethPairs)
            var m = System.Text.RegularExpressions.Regex.Match(v ?? "", @"^mnt\[(.*)\]:(.*)$");
            if (!m.Success)
                throw new UsageException($"--external '{v}': crisp takes only mnt[A]:B, net[INODE]:KEY and veth[IN]:OUT external resources yet");
            Add(m.Groups[1].Value, m.Groups[2].Value, v!);
        }
        foreach (string? v in Args.GetAll("ext-mount-map"))
        {
            int colon = (v ?? "").IndexOf(':');
            if (v == "auto")
                continue;
            if (colon < 0)
                throw new UsageException($"--ext-mount-map '{v}': crisp takes A:B or auto");
            Add(v![..colon], v[(colon + 1)..], v);
        }
        return map;
    }

    /// <summary>CRIU's autodetection of external mounts: --external mnt[] (optional flags after a colon: m for
    /// external masters, s for external sharing) or --ext-mount-map auto, with --enable-external-masters and
    /// --enable-external-sharing; null when neither form is given (the two flags alone do nothing, as in CRIU).</summary>
    public Crisp.Resources.Mounts.AutoExternalMounts? AutoExternalMounts()
    {
        bool auto = Args.GetAll("ext-mount-map").Contains("auto");
        bool masters = Args.Has("enable-external-masters"), sharing = Args.Has("enable-external-sharing");
        foreach (string? v in Args.GetAll("external"))
        {
            if (v?.StartsWith("mnt[]", StringComparison.Ordinal) != true)
                continue;
            string flags = v[5..];
            if (flags.Length > 0 && (flags[0] != ':' || flags[1..].Any(c => c is not ('m' or 's'))))
                throw new UsageException($"--external {v}: mnt[] takes the flags m (external masters) and s (external sharing), as mnt[]:ms");
            auto = true;
            masters |= flags.Contains('m');
            sharing |= flags.Contains('s');
        }
        return auto ? new(masters, sharing) : null;
    }

    public string ImagesDir => ResolvedImagesDir ?? Args.Get("images-dir") ?? ".";

    public string RequireImagesDir() =>
        ResolvedImagesDir ?? Args.Get("images-dir") ?? throw new UsageException("no images directory given (use -D DIR)");

    /// <summary>The --action-script programs, in the order given.</summary>
    public Crisp.Scripts.ActionScripts Scripts(string imagesDir) =>
        new(Args.GetAll("action-script").OfType<string>().ToList(), imagesDir, Log) { Notifier = Notifier, WorkDir = WorkDir };

    /// <summary>A path an option names, as a full path: a relative one is taken from the work dir (as CRIU, which
    /// has changed into it by then); null stays null.</summary>
    /// <summary>--encrypt-key for the verbs that only read images (show, decode, x, inspect): relative to crisp's directory.</summary>
    public Crisp.Security.Encryption.ImageKey? ReadKey() =>
        Args.Get("encrypt-key") is { } k ? Crisp.Security.Encryption.ImageKey.Load(InWorkDir(k)!) : null;

    public string? InWorkDir(string? path) => path is null ? null : WorkDir?.Resolve(path) ?? Path.GetFullPath(path);

    /// <summary>--images-mode OCTAL; private (0600 files, 0700 directory) without it.</summary>
    public Crisp.Security.ImageModes ImagesMode() => ImagesMode(Args);

    public static Crisp.Security.ImageModes ImagesMode(ParsedArguments args)
    {
        if (args.Get("images-mode") is not { } v)
            return Crisp.Security.ImageModes.Private;
        try
        {
            return Crisp.Security.ImageModes.Parse(v);
        }
        catch (CrispException e)
        {
            throw new UsageException(e.Message);
        }
    }

    /// <summary>--status-fd, checked to be an open descriptor before anything is done.</summary>
    public StatusFd? StatusFd() => Args.Get("status-fd") is { } v ? Cli.StatusFd.Parse(v) : null;

    /// <summary>--inherit-fd fd[N]:KEY, repeatable (CRIU's syntax).</summary>
    public IReadOnlyList<(int Fd, string Key)> InheritFds() => Args.GetAll("inherit-fd").Select(v =>
    {
        var m = System.Text.RegularExpressions.Regex.Match(v ?? "", @"^fd\[(\d+)\]:(.+)$");
        if (!m.Success || !int.TryParse(m.Groups[1].Value, out int fd))
            throw new UsageException($"bad --inherit-fd '{v}': fd[N]:KEY, e.g. fd[3]:pipe:[12345]");
        return (fd, m.Groups[2].Value);
    }).ToList();

    /// <summary>--empty-ns KIND: CLONE_NEW* flags; crisp knows net only (as CRIU).</summary>
    public ulong EmptyNs() => Args.GetAll("empty-ns").Aggregate(0UL, (flags, v) => v == "net"
        ? flags | Crisp.Linux.Clone3.CLONE_NEWNET
        : throw new UsageException($"--empty-ns {v}: only net can be made empty"));

    /// <summary>--veth-pair IN=OUT[@BRIDGE] and --external veth[IN]:OUT[@BRIDGE] (CRIU's two spellings of one thing).</summary>
    public IReadOnlyList<Crisp.Resources.Net.VethPair> VethPairs()
    {
        try
        {
            return [.. Args.GetAll("veth-pair").Select(v => Crisp.Resources.Net.VethPair.ParsePair(v ?? "")),
                .. Args.GetAll("external").Select(v => Crisp.Resources.Net.VethPair.ParseExternal(v ?? "")).OfType<Crisp.Resources.Net.VethPair>()];
        }
        catch (CrispException e)
        {
            throw new UsageException(e.Message);
        }
    }

    /// <summary>--join-ns KIND:PATH (CRIU's KIND:PID is /proc/PID/ns/KIND).</summary>
    public IReadOnlyList<(string Kind, string Path)> JoinNs() => Args.GetAll("join-ns").Select(v =>
    {
        int colon = (v ?? "").IndexOf(':');
        if (colon <= 0 || colon == v!.Length - 1)
            throw new UsageException($"bad --join-ns '{v}': KIND:PATH, e.g. net:/run/netns/pod");
        string kind = v[..colon], target = v[(colon + 1)..];
        return (kind, target.All(char.IsAsciiDigit) ? Procfs.Host.Path($"{target}/ns/{kind}") : target);
    }).ToList();

    /// <summary>--manage-cgroups[=MODE] (alone: soft); without it crisp leaves cgroups alone (ignore), as it always
    /// has — CRIU's default would be soft (runtimes pass the option explicitly).</summary>
    public Crisp.Resources.Cgroups.CgroupMode CgroupMode()
    {
        if (!Args.Has("manage-cgroups"))
            return Crisp.Resources.Cgroups.CgroupMode.Ignore;
        try { return Crisp.Resources.Cgroups.CgroupModes.Parse(Args.Get("manage-cgroups")); }
        catch (CrispException e) { throw new UsageException(e.Message); }
    }

    /// <summary>--cgroup-props-file FILE then --cgroup-props TEXT, as one spec (CRIU's simplified YAML).</summary>
    public Crisp.Resources.Cgroups.CgroupPropsSpec CgroupProps()
    {
        string? file = InWorkDir(Args.Get("cgroup-props-file")), text = Args.Get("cgroup-props");
        if (file is null && text is null)
            return Crisp.Resources.Cgroups.CgroupPropsSpec.Empty;
        string all;
        try { all = (file is null ? "" : File.ReadAllText(file) + "\n") + (text ?? ""); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new UsageException($"--cgroup-props-file {file}: {e.Message}"); }
        try { return Crisp.Resources.Cgroups.CgroupPropsSpec.Parse(all, file is null ? "--cgroup-props" : text is null ? $"--cgroup-props-file {file}" : $"--cgroup-props-file {file} + --cgroup-props"); }
        catch (CrispException e) { throw new UsageException(e.Message); }
    }

    /// <summary>--cgroup-root [CTRL:]PATH ("" controller: every one not named).</summary>
    public IReadOnlyList<(string Controller, string Path)> CgroupRoots() => Args.GetAll("cgroup-root").Select(v =>
    {
        string s = v ?? "";
        int colon = s.IndexOf(':');
        var (ctrl, path) = colon < 0 ? ("", s) : (s[..colon], s[(colon + 1)..]);
        if (!path.StartsWith('/'))
            throw new UsageException($"bad --cgroup-root '{v}': [CONTROLLER:]/PATH");
        return (ctrl, path);
    }).ToList();

    /// <summary>-x/--ext-unix-sk; CRIU's form with an inode list is refused.</summary>
    public bool ExtUnixSk() => Args.GetAll("ext-unix-sk") switch
    {
        [] => false,
        var all when all.All(v => v is null) => true,
        _ => throw new UsageException("--ext-unix-sk with an inode list is not supported: pass it without a value"),
    };

    /// <summary>--network-lock nftables|iptables|skip (CRIU's names). iptables, CRIU's default, locks the same
    /// connections the same way (their packets dropped from dump to restore): crisp does it with nftables.</summary>
    public Crisp.Resources.Files.Sockets.Inet.NetworkLockMethod? NetworkLock() => Args.Get("network-lock") switch
    {
        null => null,
        "skip" => Crisp.Resources.Files.Sockets.Inet.NetworkLockMethod.Skip,
        "nftables" or "iptables" => Crisp.Resources.Files.Sockets.Inet.NetworkLockMethod.Nftables,
        var v => throw new UsageException($"bad --network-lock '{v}': iptables, nftables or skip"),
    };
}
