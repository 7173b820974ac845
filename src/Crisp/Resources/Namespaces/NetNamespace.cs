using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Crisp.Dump;
using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux.Proc;
using Crisp.Linux;
using Crisp.Resources.Net;
using Crisp.Restore;

namespace Crisp.Resources.Namespaces;

/// <summary>A network namespace of the tree's own. Dump, as CRIU: netns-ID.img (only ext_key when the caller named
/// it external with --external net[INODE]:KEY), netdev-ID.img with its links (lo and veth ends; any other kind is
/// refused by name unless --empty-ns net leaves them to the caller), ifaddr-ID.img and route[6]-ID.img as `ip
/// addr/route save` write them (the main table; routes of other tables and policy rules other than the kernel's
/// are refused), nftables-ID.img (`nft list ruleset`), and the namespace's and each link's sysctls in netns/netdev
/// as CRIU keeps them (<see cref="NetSysctls"/>). Restore: crisp holds the namespace the tree goes into —
/// a new one it makes and fills in CRIU's order (links with their index, name, MTU, MAC and flags, a veth whose
/// peer was outside getting it back in crisp's namespace under the name --veth-pair / --external veth[…] gives,
/// the sysctls around them in CRIU's order; then addresses, routes, the nftables ruleset; with --empty-ns net only
/// lo), one joined by --join-ns net:PATH, or the external one handed over with --inherit-fd fd[N]:KEY — and creates the tree's sockets in it; the root
/// puppet enters it by setns before it clones anyone.</summary>
public sealed partial class NetNamespace : INamespaceContent
{
    private const int ARPHRD_LOOPBACK = 772, IFF_UP = 1, RT_TABLE_MAIN = 254, RT_TABLE_LOCAL = 255, RTA_TABLE = 15, RTM_F_CLONED = 0x200;
    private const int AF_INET = 2, AF_INET6 = 10;

    public NamespaceKind Kind => NamespaceKind.Net;

    public bool MadeByClone => false;

    public void Dump(DumpContext ctx, DumpTask root, uint id)
    {
        ulong inode = Kind.InodeOf(root.Pid)!.Value;
        if (ExternalKey(ctx.Options.External, inode) is { } key)
        {
            ctx.Images.Write(ImageFile.Netns(id), new netns_entry { ExtKey = key });
            ctx.Log.Info($"network namespace {id} (net:[{inode}]) is external: {key}");
            return;
        }
        bool empty = (ctx.Options.EmptyNs & Clone3.CLONE_NEWNET) != 0;
        using var ns = FileIo.Open(Procfs.Host.Path(root.Pid, "ns/net"), FileIo.O_RDONLY | FileIo.O_CLOEXEC);
        using var nl = RtNetlink.Open(ns);
        var devices = new List<net_device_entry>();
        foreach (var m in nl.Dump(RtNetlink.RTM_GETLINK, 0, 16))
        {
            var link = NetLink.Parse(m);
            if (link.ArpType == ARPHRD_LOOPBACK)
                devices.Add(link.Entry(nd_type.Loopback));
            else if (empty)
                ctx.Log.Info($"network namespace {id}: link {link.Name} left to the caller (--empty-ns net)");
            else if (link.InfoKind == "veth" && link.Master == 0)
                devices.Add(link.VethEntry(id));
            else
                throw new CrispException($"task {root.Pid}'s network namespace has link {link.Name} ({link.KindName}{(link.Master != 0 ? $", enslaved to link {link.Master}" : "")}): " +
                    $"crisp dumps only lo and veth links (give the namespace as --external net[{inode}]:KEY, or --empty-ns net)");
        }
        var netns = new netns_entry();
        // As CRIU: the namespace's sysctls only when it is dumped whole (not with --empty-ns).
        if (!empty)
            NetNamespaces.Run(ns, () => { NetSysctls.Read(netns, devices); return 0; });
        ctx.Images.Write(ImageFile.Netdev(id), [.. devices]);
        if (!empty)
        {
            NetRules.RefuseOthersThanKernels(nl, root.Pid);
            LegacyIptables.Refuse(root.Pid);
            var indexes = devices.Select(d => (int)d.Ifindex).ToHashSet();
            var addrs = nl.Dump(RtNetlink.RTM_GETADDR, 0, 8).Where(a => indexes.Contains(BinaryPrimitives.ReadInt32LittleEndian(a.Payload.AsSpan(4))));
            WriteRaw(ctx, ImageFile.Ifaddr(id), IprouteSave.Write(IprouteSave.AddrMagic, addrs));
            WriteRaw(ctx, ImageFile.Route(id), IprouteSave.Write(IprouteSave.RouteMagic, MainRoutes(nl, AF_INET, root.Pid)));
            WriteRaw(ctx, ImageFile.Route6(id), IprouteSave.Write(IprouteSave.RouteMagic, MainRoutes(nl, AF_INET6, root.Pid)));
            WriteRaw(ctx, ImageFile.Nftables(id), NftRuleset.List(ns));
        }
        ctx.Images.Write(ImageFile.Netns(id), netns);
        ctx.Log.Debug($"network namespace {id}: {string.Join(", ", devices.Select(d => $"{d.Name} ({d.Type}) flags 0x{d.Flags:x}"))}");
    }

    /// <summary>Routes of the main table as `ip route save` keeps them (not the kernel's cached clones); those of
    /// table local are the kernel's own, made again with the addresses; any other table's are refused.</summary>
    private static List<NetlinkMessage> MainRoutes(RtNetlink nl, byte family, int pid) =>
        nl.Dump(RtNetlink.RTM_GETROUTE, family, 12).Where(r =>
        {
            uint table = r.Payload[4];
            foreach (var (type, data) in r.Attributes(12))
                if (type == RTA_TABLE && data.Length >= 4)
                    table = BinaryPrimitives.ReadUInt32LittleEndian(data);
            if ((BinaryPrimitives.ReadUInt32LittleEndian(r.Payload.AsSpan(8)) & RTM_F_CLONED) != 0 || table == RT_TABLE_LOCAL)
                return false;
            if (table != RT_TABLE_MAIN)
                throw new CrispException($"task {pid}'s network namespace has a route to {Describe(r)} in table {table}: crisp carries the main table only");
            return true;
        }).ToList();

    private static void WriteRaw(DumpContext ctx, ImageFile file, byte[] bytes)
    {
        using var f = ctx.Images.CreateFile(file, Math.Max(bytes.Length, 1));
        f.Write(bytes);
    }

    public void Prepare(RestoreContext ctx, uint id)
    {
        var state = ctx.Namespaces.Net;
        var join = ctx.Options.JoinNs.Where(j => j.Kind == Kind.Name).Select(j => j.Path).LastOrDefault();
        if (join is not null)
        {
            if ((ctx.Options.EmptyNs & Clone3.CLONE_NEWNET) != 0)
                throw new CrispException("--join-ns net and --empty-ns net contradict each other");
            state.Namespace = OpenNamespace(join, $"--join-ns net:{join}");
            ctx.Log.Info($"the tree joins the network namespace {join}");
            return;
        }
        var netnsFile = ImageFile.Netns(id);
        // CRIU writes no netns image for a namespace dumped with --empty-ns net (runc's default for the namespace it
        // made) and restores such a tree into a new one, as this does.
        var netns = ctx.Images.Exists(netnsFile) ? ctx.Images.ReadOne<netns_entry>(netnsFile) : null;
        if (netns is null)
            ctx.Log.Info($"{netnsFile.FileName}: none (a CRIU dump with --empty-ns net): the tree gets a new network namespace");
        if (netns is { HasExtKey: true, ExtKey.Length: > 0 })
        {
            var inherited = ctx.Options.InheritFds.Where(i => i.Key == netns.ExtKey).Select(i => (int?)i.Fd).LastOrDefault()
                ?? throw new CrispException($"{netnsFile.FileName}: the tree's network namespace is external ({netns.ExtKey}): give it with --inherit-fd fd[N]:{netns.ExtKey}");
            state.Namespace = OpenNamespace($"/proc/self/fd/{inherited}", $"--inherit-fd fd[{inherited}]:{netns.ExtKey}");
            ctx.Log.Info($"the tree goes into the external network namespace {netns.ExtKey} (fd {inherited})");
            return;
        }
        bool empty = (ctx.Options.EmptyNs & Clone3.CLONE_NEWNET) != 0;
        var devices = ctx.Images.Exists(ImageFile.Netdev(id)) ? ctx.Images.ReadAll<net_device_entry>(ImageFile.Netdev(id)) : [];
        var lo = devices.FirstOrDefault(d => d.Type == nd_type.Loopback);
        var links = empty ? null : NetLinksPlan.Make(ImageFile.Netdev(id).FileName, id, devices, ctx.Options.VethPairs);
        List<NetlinkMessage> addrs = [], routes = [];
        byte[] nftables = [];
        if (!empty)
        {
            var indexes = devices.Select(d => (int)d.Ifindex).ToHashSet();
            addrs = ReadRaw(ctx, ImageFile.Ifaddr(id), IprouteSave.AddrMagic);
            routes = [.. ReadRaw(ctx, ImageFile.Route(id), IprouteSave.RouteMagic), .. ReadRaw(ctx, ImageFile.Route6(id), IprouteSave.RouteMagic)];
            foreach (var a in addrs)
                if (a.Type != RtNetlink.RTM_NEWADDR || a.Payload.Length < 8 || !indexes.Contains(BinaryPrimitives.ReadInt32LittleEndian(a.Payload.AsSpan(4))))
                    throw new CrispException($"{ImageFile.Ifaddr(id).FileName}: an address of no link in {ImageFile.Netdev(id).FileName} (message type {a.Type})");
            if (routes.FirstOrDefault(r => r.Type != RtNetlink.RTM_NEWROUTE || r.Payload.Length < 12) is { } bad)
                throw new CrispException($"{ImageFile.Route(id).FileName}: message type {bad.Type} is not a route");
            // As `ip route restore`: routes without a gateway first, so the gateways' own routes exist.
            routes = [.. routes.OrderBy(r => r.Attributes(12).Any(a => a.Type is RTA_GATEWAY or RTA_MULTIPATH or RTA_VIA) ? 1 : 0)];
            if (ctx.Images.Exists(ImageFile.Nftables(id)))
                nftables = ctx.Images.ReadAllBytes(ImageFile.Nftables(id));
        }
        state.Namespace = NetNamespaces.CreateEmpty();
        using var nl = RtNetlink.Open(state.Namespace);
        // CRIU's order: the namespace's all/default sysctls first, so the links made next inherit the defaults;
        // each link's own once it exists (lo's in full: it was there before the defaults were set).
        string image = netnsFile.FileName;
        bool weak = ctx.Options.WeakSysctls;
        int sysctls = empty || netns is null ? 0 : NetNamespaces.Run(state.Namespace, () => NetSysctls.WriteNamespace(netns, image, weak, ctx.Log));
        if (lo is not null)
            SetLoopback(nl, lo);
        links?.Create(nl, ctx.Log);
        if (!empty)
            sysctls += NetNamespaces.Run(state.Namespace, () => devices.Sum(d => NetSysctls.WriteLink(d, d.Type == nd_type.Loopback ? null : netns, image, weak, ctx.Log)));
        foreach (var a in addrs)
            Add(nl, RtNetlink.RTM_NEWADDR, a, "address");
        foreach (var r in routes)
            Add(nl, RtNetlink.RTM_NEWROUTE, RequestFlagsOnly(r), "route");
        NftRuleset.Load(state.Namespace, nftables);
        ctx.Log.Info($"network namespace {id}: new, lo {((lo?.Flags ?? 0) & IFF_UP) switch { 0 => "down", _ => "up" }}, {links?.Count ?? 0} other link(s), " +
            $"{addrs.Count} address(es), {routes.Count} route(s), {nftables.Length} bytes of nftables, {sysctls} sysctl(s) set{(empty ? " (--empty-ns net)" : "")}");
    }

    private const int RTA_GATEWAY = 5, RTA_MULTIPATH = 9, RTA_VIA = 18, RTNH_F_PERVASIVE = 2, RTNH_F_ONLINK = 4;

    /// <summary>The route with only the rtm_flags a request may carry: the dump reports the link's state in them
    /// (linkdown on a link without carrier, dead, offload), which the kernel refuses in RTM_NEWROUTE (EINVAL).</summary>
    private static NetlinkMessage RequestFlagsOnly(NetlinkMessage r)
    {
        var payload = r.Payload.ToArray();
        uint flags = BinaryPrimitives.ReadUInt32LittleEndian(payload.AsSpan(8));
        BinaryPrimitives.WriteUInt32LittleEndian(payload.AsSpan(8), flags & (RTNH_F_PERVASIVE | RTNH_F_ONLINK));
        return r with { Payload = payload };
    }

    private static List<NetlinkMessage> ReadRaw(RestoreContext ctx, ImageFile file, uint magic) =>
        ctx.Images.Exists(file) ? IprouteSave.Read(ctx.Images.ReadAllBytes(file), magic, file.FileName) : [];

    /// <summary>lo of a new namespace is ifindex 1 and down: brought up (as it was) with its MTU.</summary>
    private static void SetLoopback(RtNetlink nl, net_device_entry lo)
    {
        if (lo.Ifindex != 1)
            throw new CrispException($"netdev: lo had ifindex {lo.Ifindex}, not 1: crisp cannot renumber links yet");
        var req = new byte[16 + 8];
        BinaryPrimitives.WriteInt32LittleEndian(req.AsSpan(4), 1);
        BinaryPrimitives.WriteUInt32LittleEndian(req.AsSpan(8), lo.Flags & IFF_UP);
        BinaryPrimitives.WriteUInt32LittleEndian(req.AsSpan(12), IFF_UP);
        BinaryPrimitives.WriteUInt16LittleEndian(req.AsSpan(16), 8);
        BinaryPrimitives.WriteUInt16LittleEndian(req.AsSpan(18), RtNetlink.IFLA_MTU);
        BinaryPrimitives.WriteUInt32LittleEndian(req.AsSpan(20), lo.Mtu);
        int r = nl.TryRequest(RtNetlink.RTM_NEWLINK, 0, req);
        if (r < 0)
            throw new SyscallException($"RTM_NEWLINK(lo flags 0x{lo.Flags:x}, mtu {lo.Mtu})", -r);
    }

    /// <summary>Sends a saved message back as `ip addr/route restore` does: create, and one that exists already (made by
    /// the kernel when lo came up, e.g. 127.0.0.1) is fine.</summary>
    private static void Add(RtNetlink nl, ushort type, NetlinkMessage m, string what)
    {
        int r = nl.TryRequest(type, RtNetlink.NLM_F_CREATE | RtNetlink.NLM_F_EXCL, m.Payload);
        if (r < 0 && r != -Errnos.EEXIST)
            throw new SyscallException($"restoring {what} {Describe(m)}", -r);
    }

    internal static string Describe(NetlinkMessage m)
    {
        int family = m.Payload[0], prefix = m.Payload[1];
        foreach (var (type, data) in m.Attributes(m.Type == RtNetlink.RTM_NEWADDR ? 8 : 12))
            if (type == 1 && (data.Length == 4 || data.Length == 16))   // IFA_ADDRESS / RTA_DST
                return $"{new System.Net.IPAddress(data)}/{prefix}";
        return $"(family {family}, /{prefix})";
    }

    public void Enter(RestoreContext ctx, RestoreTask root, uint id)
    {
        var ns = ctx.Namespaces.Net.Namespace ?? throw new InvalidOperationException("no network namespace prepared");
        string path = Procfs.Host.Path(Environment.ProcessId, $"fd/{ns.Fd}");
        ulong at = root.Puppet.Remote.PutOnScratch(Encoding.ASCII.GetBytes(path + "\0"));
        long fd = root.Call($"open({path})", Sysno.openat, -100, (long)at, FileIo.O_RDONLY | FileIo.O_CLOEXEC);
        try
        {
            root.Call("setns(CLONE_NEWNET)", Sysno.setns, fd, (long)Clone3.CLONE_NEWNET);
        }
        finally
        {
            root.Puppet.Remote.Syscall(Sysno.close, fd);
        }
    }

    public void Restore(RestoreContext ctx, RestoreTask root, uint id) { }

    public void Cleanup(RestoreContext ctx) => ctx.Namespaces.Net.Dispose();

    /// <summary>The network namespace the restored tree's sockets are made in; null when it is crisp's own.</summary>
    public static UnixFd? Of(RestoreContext ctx) => ctx.Namespaces.Net.Namespace;

    /// <summary>Runs <paramref name="work"/> (sock_diag queries) in task <paramref name="pid"/>'s network namespace
    /// when it is not crisp's: the kernel answers them per namespace.</summary>
    public static T InTaskNamespace<T>(DumpContext ctx, int pid, Func<T> work)
    {
        var held = ctx.Namespaces.Net;
        ulong? inode = NamespaceKind.Net.InodeOf(pid);
        held.Own ??= NamespaceKind.Net.InodeOf(Environment.ProcessId);
        if (inode is null || inode == held.Own)
            return work();
        if (!held.ByInode.TryGetValue(inode.Value, out var fd))
            held.ByInode[inode.Value] = fd = FileIo.Open(Procfs.Host.Path(pid, "ns/net"), FileIo.O_RDONLY | FileIo.O_CLOEXEC);
        return NetNamespaces.Run(fd, work);
    }

    private static UnixFd OpenNamespace(string path, string what)
    {
        UnixFd fd;
        try { fd = FileIo.Open(path, FileIo.O_RDONLY | FileIo.O_CLOEXEC); }
        catch (SyscallException e) { throw new CrispException($"{what}: {e.Message}"); }
        if (!NetNamespaces.IsNetNamespace(fd.Fd))
        {
            fd.Dispose();
            throw new CrispException($"{what}: not a network namespace");
        }
        return fd;
    }

    /// <summary>KEY of --external net[INODE]:KEY for this namespace; another namespace's inode is refused (a typo
    /// would otherwise dump the caller's namespace as the tree's).</summary>
    private static string? ExternalKey(IReadOnlyList<string> externals, ulong inode)
    {
        string? key = null;
        foreach (var value in externals.Where(v => v.StartsWith("net[", StringComparison.Ordinal)))
        {
            var m = ExternalNet().Match(value);
            if (!m.Success)
                throw new CrispException($"--external {value}: expected net[INODE]:KEY");
            if (ulong.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) != inode)
                throw new CrispException($"--external {value}: the tree's network namespace is net:[{inode}]");
            key = m.Groups[2].Value;
        }
        return key;
    }

    [GeneratedRegex(@"^net\[(\d+)\]:(.+)$")]
    private static partial Regex ExternalNet();

    /// <summary>Restore: the namespace the tree goes into, held from Prepare to Cleanup.</summary>
    public sealed class Held : IDisposable
    {
        public UnixFd? Namespace { get; set; }

        public void Dispose()
        {
            Namespace?.Dispose();
            Namespace = null;
        }
    }

    /// <summary>Dump: crisp's own namespace and the tree's others, opened once each for sock_diag queries.</summary>
    public sealed class HeldNamespaces : IDisposable
    {
        public ulong? Own { get; set; }
        public Dictionary<ulong, UnixFd> ByInode { get; } = [];

        public void Dispose()
        {
            foreach (var fd in ByInode.Values)
                fd.Dispose();
            ByInode.Clear();
        }
    }
}
