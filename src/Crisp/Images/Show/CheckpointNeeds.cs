using System.Globalization;
using Crisp.Images.Proto;

namespace Crisp.Images.Show;

/// <summary>A kernel feature (by crisp's `check --feature` name) and the image that needs it.</summary>
public sealed record FeatureNeed(string Feature, string Image);

/// <summary>A resource outside the tree that the restore has to be told about, and the option that does it.</summary>
public sealed record ExternalNeed(string What, string Option);

/// <summary>
/// What restoring a checkpoint needs beyond its images, read from the images alone, so it can be shown
/// (`crisp show DIR`) and checked on another machine (`crisp restore --check-only`): plugins (inventory
/// plugins_entry), kernel features, resources outside the tree (external unix peers, TCP connections, the caller's
/// terminal, pipes whose other end was outside), and the regular files the restore opens by path.
/// </summary>
public sealed class CheckpointNeeds
{
    private const uint UskExtern = 1, IpprotoTcp = 6;

    public IReadOnlyList<string> Plugins { get; private init; } = [];
    public IReadOnlyList<FeatureNeed> Features { get; private init; } = [];
    public IReadOnlyList<ExternalNeed> External { get; private init; } = [];
    /// <summary>Paths of regular files, directories and devices opened by name (ghost files aside: their contents are in the images).</summary>
    public IReadOnlyList<string> Files { get; private init; } = [];

    /// <summary>Namespaces the tree has of its own (the root's ids differ from inventory root_ids, crisp's at dump):
    /// the restore makes new ones; the others are the restoring crisp's.</summary>
    public IReadOnlyList<string> OwnNamespaces { get; private init; } = [];

    public string Namespaces => OwnNamespaces.Count == 0
        ? "none (crisp restores the tree into its own pid, mount, net, ipc, uts, user, cgroup and time namespaces)"
        : $"new {string.Join(", ", OwnNamespaces)} namespace(s) for the tree (the others are crisp's own)";

    public static CheckpointNeeds Read(ImageDirectory dir)
    {
        var inventory = dir.ReadAll<inventory_entry>(ImageFile.Inventory).FirstOrDefault();
        var files = dir.ReadAll<file_entry>(ImageFile.Files);
        var tree = dir.ReadAll<pstree_entry>(ImageFile.Pstree);

        var features = new List<FeatureNeed>
        {
            new("clone3_set_tid", ImageFile.Pstree.FileName),
            new("ptrace_seize", ImageFile.Pstree.FileName),
            new("pidfd_getfd", ImageFile.Files.FileName),
        };
        if (tree.Count > 0 && dir.Exists(ImageFile.Mm(tree[0].Pid)))
            features.Add(new("prctl_mm_map", ImageFile.Mm(tree[0].Pid).FileName));
        if (dir.Exists(ImageFile.Seccomp))
            features.Add(new("seccomp_suspend", ImageFile.Seccomp.FileName));
        if (files.Any(f => f.Tfd is not null))
            features.Add(new("timerfd", ImageFile.Files.FileName));
        var tcpImages = dir.List().Where(f => f.File?.Kind == ImageKind.TcpStream).Select(f => f.FileName).ToList();
        if (tcpImages.Count > 0)
            features.Add(new("network_lock_nftables", tcpImages[0]));

        var external = new List<ExternalNeed>();
        foreach (var f in files)
        {
            if (f.Usk is { } u && (u.Uflags & UskExtern) != 0)
                external.Add(new($"unix socket peer {UnixName(u)} outside the tree (socket:[{u.Ino}])", "--ext-unix-sk"));
            if (f.Isk is { } i && i.Proto == IpprotoTcp && Crisp.Resources.Files.Sockets.Inet.TcpHalfClose.Restorable((int)i.State))
                external.Add(new($"established TCP connection {Endpoint(i.SrcAddr, i.SrcPort)} -> {Endpoint(i.DstAddr, i.DstPort)}", "--tcp-established"));
        }
        var ttys = dir.ReadAll<tty_info_entry>(ImageFile.TtyInfo);
        foreach (var slave in ttys.Where(t => (t.Id & 1) == 0 && !ttys.Any(m => m.Id == (t.Id | 1))))
            external.Add(new($"the caller's terminal (/dev/pts/{slave.Id >> 1} without its master; or --orphan-pts-master over RPC)", "--shell-job"));
        foreach (var pipe in OneEndedPipes(dir, files))
            external.Add(new($"pipe:[{pipe}] with its other end outside the tree (restored as a new pipe unless passed in)", $"--inherit-fd fd[N]:pipe:[{pipe}]"));

        var ghosts = dir.ReadAll<remap_file_path_entry>(ImageFile.RemapFpath).Select(r => r.OrigId).ToHashSet();
        var paths = files.Where(f => f.Reg is not null && !ghosts.Contains(f.Id)).Select(f => f.Reg.Name)
            .Concat(dir.ReadAll<reg_file_entry>(ImageFile.RegFiles).Where(r => !ghosts.Contains(r.Id)).Select(r => r.Name))
            .Where(p => p.StartsWith('/')).Distinct().Order(StringComparer.Ordinal).ToList();

        return new CheckpointNeeds
        {
            Plugins = inventory?.PluginsEntry?.Plugins.ToList() ?? [],
            OwnNamespaces = tree.Count > 0 && dir.Exists(ImageFile.Core(tree[0].Pid))
                ? OwnNamespacesOf(inventory?.RootIds, dir.ReadAll<task_kobj_ids_entry>(ImageFile.Ids(tree[0].Pid)).FirstOrDefault() ?? dir.ReadAll<core_entry>(ImageFile.Core(tree[0].Pid)).FirstOrDefault()?.Ids) : [],
            Features = features,
            External = external,
            Files = paths,
        };
    }

    /// <summary>Kinds whose id differs between the root task and crisp at dump (both present), by /proc/PID/ns name.</summary>
    private static List<string> OwnNamespacesOf(task_kobj_ids_entry? crisp, task_kobj_ids_entry? root)
    {
        if (crisp is null || root is null)
            return [];
        (string Name, bool Differs)[] kinds =
        [
            ("pid", crisp.HasPidNsId && root.HasPidNsId && crisp.PidNsId != root.PidNsId),
            ("net", crisp.HasNetNsId && root.HasNetNsId && crisp.NetNsId != root.NetNsId),
            ("ipc", crisp.HasIpcNsId && root.HasIpcNsId && crisp.IpcNsId != root.IpcNsId),
            ("uts", crisp.HasUtsNsId && root.HasUtsNsId && crisp.UtsNsId != root.UtsNsId),
            ("time", crisp.HasTimeNsId && root.HasTimeNsId && crisp.TimeNsId != root.TimeNsId),
            ("mnt", crisp.HasMntNsId && root.HasMntNsId && crisp.MntNsId != root.MntNsId),
            ("user", crisp.HasUserNsId && root.HasUserNsId && crisp.UserNsId != root.UserNsId),
            ("cgroup", crisp.HasCgroupNsId && root.HasCgroupNsId && crisp.CgroupNsId != root.CgroupNsId),
        ];
        return [.. kinds.Where(k => k.Differs).Select(k => k.Name)];
    }

    /// <summary>Pipes used only for reading or only for writing by the tree: the other end was someone else's.</summary>
    private static IEnumerable<uint> OneEndedPipes(ImageDirectory dir, List<file_entry> files)
    {
        var pipes = files.Where(f => f.Pipe is not null).Select(f => f.Pipe)
            .Concat(dir.ReadAll<pipe_entry>(ImageFile.Pipes));
        return pipes.GroupBy(p => p.PipeId)
            .Where(g => g.Select(p => (p.Flags & 3) == 0 ? "r" : "w").Distinct().Count() == 1)
            .Select(g => g.Key).Order();
    }

    private static string UnixName(unix_sk_entry u) =>
        u.Name.Length == 0 ? "(unnamed)" : u.Name.Span[0] == 0 ? "@" + System.Text.Encoding.UTF8.GetString(u.Name.Span[1..]) : System.Text.Encoding.UTF8.GetString(u.Name.Span).TrimEnd('\0');

    private static string Endpoint(IReadOnlyList<uint> words, uint port)
    {
        string addr = words.Count == 0 ? "?" : CritFormat.Address(words);
        return words.Count > 1 ? $"[{addr}]:{port.ToString(CultureInfo.InvariantCulture)}" : $"{addr}:{port.ToString(CultureInfo.InvariantCulture)}";
    }

    /// <summary>The "restore needs" part of `crisp show DIR`.</summary>
    public string Render()
    {
        var sb = new System.Text.StringBuilder("restore needs:\n");
        sb.Append("  plugins: ").Append(Plugins.Count == 0 ? "none" : string.Join(", ", Plugins)).Append('\n');
        sb.Append("  namespaces: ").Append(Namespaces).Append('\n');
        sb.Append("  kernel features: ").Append(string.Join(", ", Features.Select(f => $"{f.Feature} ({f.Image})"))).Append('\n');
        sb.Append("  external resources:").Append(External.Count == 0 ? " none\n" : "\n");
        foreach (var e in External)
            sb.Append("    ").Append(e.What).Append(": ").Append(e.Option).Append('\n');
        // A runtime opens hundreds of files; the summary shows the first few (--check-only checks them all).
        const int Shown = 20;
        sb.Append(CultureInfo.InvariantCulture, $"  files opened by path: {Files.Count}\n");
        foreach (var f in Files.Take(Shown))
            sb.Append("    ").Append(f).Append('\n');
        if (Files.Count > Shown)
            sb.Append(CultureInfo.InvariantCulture, $"    ... and {Files.Count - Shown} more (restore --check-only checks them all)\n");
        return sb.ToString();
    }
}
