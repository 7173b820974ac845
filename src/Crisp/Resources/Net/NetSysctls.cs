using System.Globalization;
using System.Text;
using Crisp.Images.Proto;
using Crisp.Linux;

namespace Crisp.Resources.Net;

/// <summary>A network namespace's sysctls as CRIU's criu/net.c keeps them: net.ipv4.conf.{all,default,DEV}.* and
/// net.ipv6.conf.{all,default,DEV}.* as one sysctl_entry per key of CRIU's fixed lists, in their order (netns_entry
/// all_conf4/def_conf4/all_conf6/def_conf6, net_device_entry conf4/conf6); a key this kernel lacks keeps its type
/// and no value, and stable_secret is a string left out while unset (the kernel answers EIO); then
/// net.unix.max_dgram_qlen (unix_conf, left out entirely without the file) and net.ipv4.ping_group_range
/// (ipv4_sysctl, its value left out at the default "1 0"). Strings are kept as read, newline included, as CRIU
/// does. /proc/sys/net shows the namespace of the thread that looks: both directions run on a thread that joined
/// it (<see cref="NetNamespaces.Run"/>).
/// Restore follows CRIU's order and rules: all, then default (so links made afterwards inherit the defaults),
/// unix, ipv4; each link's own once it exists, skipping values equal to the namespace's default (except mtu,
/// which disable_ipv6 may change) but not for lo, which exists before the defaults are set; accept_redirects
/// last in each group (after forwarding, which resets it). A value the kernel refuses fails the restore in one
/// line; a key this kernel lacks too, unless --weak-sysctls (then it is skipped, as CRIU's CTL_FLAGS_OPTIONAL).</summary>
public static class NetSysctls
{
    private static readonly string[] Conf4 =
    [
        "accept_local", "accept_redirects", "accept_source_route", "arp_accept", "arp_announce", "arp_filter", "arp_ignore",
        "arp_notify", "bootp_relay", "disable_policy", "disable_xfrm", "force_igmp_version", "forwarding",
        "igmpv2_unsolicited_report_interval", "igmpv3_unsolicited_report_interval", "log_martians", "medium_id",
        "promote_secondaries", "proxy_arp", "proxy_arp_pvlan", "route_localnet", "rp_filter", "secure_redirects",
        "send_redirects", "shared_media", "src_valid_mark", "tag", "ignore_routes_with_linkdown", "drop_gratuitous_arp",
        "drop_unicast_in_l2_multicast",
    ];

    private static readonly string[] Conf6 =
    [
        "accept_dad", "accept_ra", "accept_ra_defrtr", "accept_ra_from_local", "accept_ra_min_hop_limit", "accept_ra_mtu",
        "accept_ra_pinfo", "accept_ra_rt_info_max_plen", "accept_ra_rtr_pref", "accept_redirects", "accept_source_route",
        "autoconf", "dad_transmits", "disable_ipv6", "drop_unicast_in_l2_multicast", "drop_unsolicited_na",
        "force_mld_version", "force_tllao", "forwarding", "hop_limit", "ignore_routes_with_linkdown", "keep_addr_on_down",
        "max_addresses", "max_desync_factor", "mldv1_unsolicited_report_interval", "mldv2_unsolicited_report_interval",
        "mtu", "ndisc_notify", "optimistic_dad", "proxy_ndp", "regen_max_retry", "router_probe_interval",
        "router_solicitation_delay", "router_solicitation_interval", "router_solicitations", "stable_secret",
        "suppress_frag_ndisc", "temp_prefered_lft", "temp_valid_lft", "use_oif_addrs_only", "use_optimistic", "use_tempaddr",
    ];

    private const string StableSecret = "stable_secret", UnixQlen = "unix/max_dgram_qlen", PingGroupRange = "ipv4/ping_group_range";
    private const string DefaultPingGroupRange = "1 0";
    /// <summary>CRIU's DEVCONFS_UNUSED: a key the old int-only images (conf, def_conf, all_conf) did not hold.</summary>
    private const int OldUnused = -1;

    // ---- dump ----

    /// <summary>Fills <paramref name="netns"/> and every link's conf4/conf6; call on a thread in the namespace.</summary>
    public static void Read(netns_entry netns, IEnumerable<net_device_entry> links)
    {
        netns.DefConf4.AddRange(ReadConf("ipv4", "default", Conf4));
        netns.AllConf4.AddRange(ReadConf("ipv4", "all", Conf4));
        netns.DefConf6.AddRange(ReadConf("ipv6", "default", Conf6));
        netns.AllConf6.AddRange(ReadConf("ipv6", "all", Conf6));
        if (TryRead(UnixQlen, eioIsUnset: false) is { } qlen)
            netns.UnixConf.Add(new sysctl_entry { Type = SysctlType.Ctl32, Iarg = Int(qlen, UnixQlen) });
        if (TryRead(PingGroupRange, eioIsUnset: false) is { } range)
        {
            var e = new sysctl_entry { Type = SysctlType.CtlStr };
            if (string.Join(' ', range.Split([' ', '\t', '\n'], StringSplitOptions.RemoveEmptyEntries)) != DefaultPingGroupRange)
                e.Sarg = range;
            netns.Ipv4Sysctl.Add(e);
        }
        foreach (var link in links)
        {
            link.Conf4.AddRange(ReadConf("ipv4", link.Name, Conf4));
            link.Conf6.AddRange(ReadConf("ipv6", link.Name, Conf6));
        }
    }

    private static IEnumerable<sysctl_entry> ReadConf(string proto, string target, string[] keys)
    {
        foreach (var key in keys)
        {
            string name = $"{proto}/conf/{target}/{key}";
            var e = new sysctl_entry { Type = key == StableSecret ? SysctlType.CtlStr : SysctlType.Ctl32 };
            if (TryRead(name, eioIsUnset: key == StableSecret) is { } text)
            {
                if (e.Type == SysctlType.CtlStr)
                    e.Sarg = text;
                else
                    e.Iarg = Int(text, name);
            }
            yield return e;
        }
    }

    /// <summary>The file's text; null when this kernel has no such key (or, for stable_secret, it is unset).</summary>
    private static string? TryRead(string name, bool eioIsUnset)
    {
        string path = "/proc/sys/net/" + name;
        UnixFd fd;
        try { fd = FileIo.Open(path, FileIo.O_RDONLY); }
        catch (SyscallException e) when (e.Errno == Errnos.ENOENT) { return null; }
        catch (SyscallException e) { throw new CrispException($"net/{name}: cannot be read: {Errnos.Describe(e.Errno)}"); }
        using (fd)
        {
            var buf = new byte[256];
            int n;
            try { n = FileIo.Read(fd.Fd, buf); }
            catch (SyscallException e) when (eioIsUnset && e.Errno == Errnos.EIO) { return null; }
            catch (SyscallException e) { throw new CrispException($"net/{name}: cannot be read: {Errnos.Describe(e.Errno)}"); }
            return Encoding.ASCII.GetString(buf, 0, n);
        }
    }

    /// <summary>As CRIU's strtol into an s32.</summary>
    private static int Int(string text, string name)
    {
        var word = text.Split([' ', '\t', '\n'], StringSplitOptions.RemoveEmptyEntries).FirstOrDefault();
        return long.TryParse(word, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long v)
            ? unchecked((int)v) : throw new CrispException($"net/{name}: not a number: '{text.Trim()}'");
    }

    // ---- restore ----

    /// <summary>The namespace's own sysctls; call on a thread in the new namespace, before its links other than lo
    /// are made. Returns how many values were written.</summary>
    public static int WriteNamespace(netns_entry netns, string image, bool weak, Log log)
    {
        var w = new Writer(image, weak, log);
        if (netns.DefConf4.Count > 0)
        {
            w.Conf("ipv4", "all", Conf4, netns.AllConf4, null);
            w.Conf("ipv4", "default", Conf4, netns.DefConf4, null);
        }
        else if (netns.DefConf.Count > 0)
        {
            w.Conf("ipv4", "all", Conf4, Old(netns.AllConf), null);
            w.Conf("ipv4", "default", Conf4, Old(netns.DefConf), null);
        }
        if (netns.DefConf6.Count > 0)
        {
            w.Conf("ipv6", "all", Conf6, netns.AllConf6, null);
            w.Conf("ipv6", "default", Conf6, netns.DefConf6, null);
        }
        if (netns.UnixConf.Count > 0)
        {
            var e = One(netns.UnixConf, "unix_conf", image, SysctlType.Ctl32);
            if (e.HasIarg)
                w.Set(UnixQlen, e.Iarg.ToString(CultureInfo.InvariantCulture));
        }
        if (netns.Ipv4Sysctl.Count > 0)
        {
            var e = One(netns.Ipv4Sysctl, "ipv4_sysctl", image, SysctlType.CtlStr);
            if (e.HasSarg)
                w.Set(PingGroupRange, e.Sarg);
        }
        return w.Written;
    }

    /// <summary>One link's conf4/conf6 once it exists; <paramref name="defaults"/> is null for lo.</summary>
    public static int WriteLink(net_device_entry link, netns_entry? defaults, string image, bool weak, Log log)
    {
        var w = new Writer(image, weak, log);
        if (link.Conf4.Count > 0)
            w.Conf("ipv4", link.Name, Conf4, link.Conf4, defaults is null ? null : defaults.DefConf4.Count > 0 ? defaults.DefConf4 : Old(defaults.DefConf));
        else if (link.Conf.Count > 0)
            w.Conf("ipv4", link.Name, Conf4, Old(link.Conf), defaults is null ? null : Old(defaults.DefConf));
        if (link.Conf6.Count > 0)
            w.Conf("ipv6", link.Name, Conf6, link.Conf6, defaults?.DefConf6);
        return w.Written;
    }

    /// <summary>CRIU's first netns images: ints in devconfs4's order, -1 where the key was missing.</summary>
    private static List<sysctl_entry> Old(IEnumerable<int> values) =>
        [.. values.Select(v => v == OldUnused ? new sysctl_entry { Type = SysctlType.Ctl32 } : new sysctl_entry { Type = SysctlType.Ctl32, Iarg = v })];

    private static sysctl_entry One(IList<sysctl_entry> entries, string field, string image, SysctlType type)
    {
        if (entries.Count != 1 || entries[0].Type != type)
            throw new CrispException($"{image}: {field} holds {entries.Count} entries of type {entries[0].Type}: expected one of type {type}");
        return entries[0];
    }

    private static bool Same(sysctl_entry a, sysctl_entry b) => a.Type == b.Type && a.Type switch
    {
        SysctlType.Ctl32 => a.HasIarg && b.HasIarg && a.Iarg == b.Iarg,
        SysctlType.CtlStr => a.HasSarg && b.HasSarg && a.Sarg == b.Sarg,
        _ => false,
    };

    private sealed class Writer(string image, bool weak, Log log)
    {
        public int Written { get; private set; }

        public void Conf(string proto, string target, string[] keys, IList<sysctl_entry> conf, IList<sysctl_entry>? defaults)
        {
            if (conf.Count > keys.Length)
                log.Warn($"{image}: {proto}/conf/{target} holds {conf.Count - keys.Length} sysctl(s) crisp does not know: left out");
            int acceptRedirects = -1;
            for (int i = 0; i < keys.Length; i++)
            {
                if (i >= conf.Count)
                {
                    log.Info($"{image}: no net/{proto}/conf/{target}/{keys[i]} in the image: left as it is");
                    continue;
                }
                if (defaults is not null && i < defaults.Count && Same(conf[i], defaults[i]) && keys[i] != "mtu")
                    continue;
                if (keys[i] == "accept_redirects")
                {
                    acceptRedirects = i;
                    continue;
                }
                Entry($"{proto}/conf/{target}/{keys[i]}", conf[i]);
            }
            if (acceptRedirects >= 0 && conf[acceptRedirects].Type == SysctlType.Ctl32)
                Entry($"{proto}/conf/{target}/accept_redirects", conf[acceptRedirects]);
        }

        private void Entry(string name, sysctl_entry e)
        {
            if (e.Type == SysctlType.Ctl32 && e.HasIarg)
                Set(name, e.Iarg.ToString(CultureInfo.InvariantCulture));
            else if (e.Type == SysctlType.CtlStr && e.HasSarg)
                Set(name, e.Sarg.TrimEnd('\n'));
        }

        public void Set(string name, string value)
        {
            string shown = value.Replace('\t', ' ');
            UnixFd fd;
            try { fd = FileIo.Open("/proc/sys/net/" + name, FileIo.O_WRONLY); }
            catch (SyscallException e) when (e.Errno == Errnos.ENOENT && weak)
            {
                log.Info($"{image}: net/{name} does not exist here: skipped (--weak-sysctls)");
                return;
            }
            catch (SyscallException e) when (e.Errno == Errnos.ENOENT)
            {
                throw new CrispException($"{image}: net/{name} (dumped {shown}) does not exist on this kernel (--weak-sysctls skips it)");
            }
            catch (SyscallException e) { throw new CrispException($"{image}: net/{name} cannot be set to {shown}: {Errnos.Describe(e.Errno)}"); }
            using (fd)
            {
                try { FileIo.WriteExactly(fd.Fd, Encoding.ASCII.GetBytes(value + "\n")); }
                catch (SyscallException e) { throw new CrispException($"{image}: net/{name} cannot be set to {shown}: {Errnos.Describe(e.Errno)}"); }
            }
            Written++;
        }
    }
}
