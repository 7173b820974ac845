using System.Text.Json;
using System.Text.Json.Nodes;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Resources.Namespaces;

/// <summary>A tree in a network namespace of its own (nsbox "lo" under `unshare --net`) whose namespace sysctls are
/// not the kernel's defaults at every level CRIU keeps: all and default (v4 and v6), lo, a veth pair inside
/// (cvs0/cvs1), net.unix.max_dgram_qlen and net.ipv4.ping_group_range. Some are chosen to catch a wrong order or a
/// wrong default-skip at restore: all.accept_redirects set back to 1 after all.forwarding=1 (which clears it), a
/// default set before the links were made (inherited: skipped per link, comes back through default) and one set
/// after (links keep the old value: must be written per link), a stable_secret string. Dump, kill, restore:
/// every file under net/ipv{4,6}/conf/*/ plus the two others reads the same in the restored namespace; crit
/// decodes netns and netdev with the values at CRIU's indexes. An image whose value the kernel refuses fails
/// the restore in one line, leaving no task and the images as they were.</summary>
public class NetNamespaceSysctlTests(ITestOutputHelper output)
{
    private const string Setup =
        "cd /proc/sys/net && echo 2 > ipv4/conf/default/arp_announce && " +
        "ip link add cvs0 type veth peer name cvs1 && ip link set cvs0 up && ip link set cvs1 up && " +
        "echo 1 > ipv4/conf/all/forwarding && echo 1 > ipv4/conf/all/accept_redirects && echo 0 > ipv4/conf/cvs1/forwarding && " +
        "echo 2 > ipv4/conf/default/rp_filter && echo 1 > ipv4/conf/lo/arp_announce && echo 2 > ipv4/conf/cvs0/arp_ignore && " +
        "echo 50 > ipv6/conf/default/hop_limit && echo 33 > ipv6/conf/cvs0/hop_limit && echo 1 > ipv6/conf/cvs1/disable_ipv6 && " +
        "echo 1 > ipv6/conf/all/forwarding && echo fd00:1:2:3:4:5:6:7 > ipv6/conf/cvs0/stable_secret && " +
        "echo 123 > unix/max_dgram_qlen && echo '0 2147483647' > ipv4/ping_group_range";

    // Indexes in CRIU's devconfs4 / devconfs6 lists.
    private const int V4AcceptRedirects = 1, V4ArpAnnounce = 4, V4ArpIgnore = 6, V4Forwarding = 12, V4RpFilter = 21;
    private const int V6DisableIpv6 = 13, V6Forwarding = 18, V6HopLimit = 19, V6StableSecret = 35;

    [RootFact]
    public void NamespaceAndLinkSysctlsComeBackAsTheyWere()
    {
        using var box = new NsBox(["--net"], "lo");
        InNs(box.Root, Setup);
        var before = Snapshot(box.Root);
        Assert.Equal("1", before["ipv4/conf/all/accept_redirects"]);
        Assert.Equal("2", before["ipv4/conf/cvs0/arp_announce"]);
        Assert.Equal("64", before["ipv6/conf/cvs1/hop_limit"]);

        string images = box.Dump("images");
        AssertImages(images);
        AssertAValueTheKernelRefusesFailsTheRestoreInOneLine(box, images);

        box.Restore(images);
        var after = Snapshot(box.Root);
        output.WriteLine(string.Join('\n', after.Select(kv => $"{kv.Key}={kv.Value}")));
        foreach (var (key, value) in before)
            Assert.True(after.TryGetValue(key, out var now) && now == value, $"{key}: {value} before the dump, {now ?? "missing"} after the restore");
        Assert.Equal(before.Count, after.Count);
        Assert.Equal("123", after["unix/max_dgram_qlen"]);
        Assert.Equal("0\t2147483647", after["ipv4/ping_group_range"]);
        Assert.Equal("fd00:0001:0002:0003:0004:0005:0006:0007", after["ipv6/conf/cvs0/stable_secret"]);
        Assert.Equal("0", box.Report()[1]);   // the tree runs on
    }

    /// <summary>crit (CRIU 3.17) decodes both images; the values sit at CRIU's indexes with CRIU's types;
    /// ping_group_range (CRIU 4's ipv4_sysctl, unknown to 3.17) is read back by crisp show.</summary>
    private void AssertImages(string images)
    {
        string netnsFile = Directory.GetFiles(images, "netns-*.img").Single();
        var netns = CritShow(netnsFile);
        output.WriteLine(netns.GetRawText());
        Assert.Equal(30, netns.GetProperty("all_conf4").GetArrayLength());
        Assert.Equal(42, netns.GetProperty("def_conf6").GetArrayLength());
        Assert.Equal(1, Iarg(netns, "all_conf4", V4Forwarding));
        Assert.Equal(1, Iarg(netns, "all_conf4", V4AcceptRedirects));
        Assert.Equal(2, Iarg(netns, "def_conf4", V4RpFilter));
        Assert.Equal(2, Iarg(netns, "def_conf4", V4ArpAnnounce));
        Assert.Equal(50, Iarg(netns, "def_conf6", V6HopLimit));
        Assert.Equal(1, Iarg(netns, "all_conf6", V6Forwarding));
        Assert.Equal("CTL_STR", netns.GetProperty("all_conf6")[V6StableSecret].GetProperty("type").GetString());
        Assert.False(netns.GetProperty("all_conf6")[V6StableSecret].TryGetProperty("sarg", out _));   // unset: EIO, left out
        Assert.Equal(123, Iarg(netns, "unix_conf", 0));
        var shown = CrispCli.Run("show", netnsFile);
        Assert.True(shown.ExitCode == 0, shown.Stderr);
        Assert.Contains("\"sarg\": \"0\\t2147483647\\n\"", shown.Stdout);

        var netdev = Crit("show", Directory.GetFiles(images, "netdev-*.img").Single());
        using var doc = JsonDocument.Parse(netdev);
        var links = doc.RootElement.GetProperty("entries").EnumerateArray().ToDictionary(e => e.GetProperty("name").GetString()!, e => e.Clone());
        Assert.Equal(1, Iarg(links["lo"], "conf4", V4ArpAnnounce));
        Assert.Equal(2, Iarg(links["cvs0"], "conf4", V4ArpIgnore));
        Assert.Equal(0, Iarg(links["cvs1"], "conf4", V4Forwarding));
        Assert.Equal(33, Iarg(links["cvs0"], "conf6", V6HopLimit));
        Assert.Equal(1, Iarg(links["cvs1"], "conf6", V6DisableIpv6));
        Assert.Equal("fd00:0001:0002:0003:0004:0005:0006:0007\n", links["cvs0"].GetProperty("conf6")[V6StableSecret].GetProperty("sarg").GetString());
    }

    /// <summary>A copy of the images with all.hop_limit 1000 (the kernel takes 1..255), edited through crisp
    /// decode/encode and its manifest refreshed: the restore says which sysctl and why in one line.</summary>
    private static void AssertAValueTheKernelRefusesFailsTheRestoreInOneLine(NsBox box, string images)
    {
        string bad = Path.Combine(box.Dir, "images-bad");
        Directory.CreateDirectory(bad);
        foreach (var f in Directory.GetFiles(images))
            File.Copy(f, Path.Combine(bad, Path.GetFileName(f)));
        string netns = Directory.GetFiles(bad, "netns-*.img").Single(), json = Path.Combine(box.Dir, "netns.json");
        Assert.Equal(0, CrispCli.Run("decode", "-i", netns, "-o", json).ExitCode);
        var doc = JsonNode.Parse(File.ReadAllText(json))!;
        doc["entries"]![0]!["all_conf6"]![V6HopLimit]!["iarg"] = 1000;
        File.WriteAllText(json, doc.ToJsonString());
        Assert.Equal(0, CrispCli.Run("encode", "-i", json, "-o", netns).ExitCode);
        Assert.Contains("changed: netns-", CrispCli.Run("manifest", bad, "--update").Stdout);

        var hashes = Live.Hashes(bad);
        var r = CrispCli.Run("restore", "-D", bad, "-d", "--restore-sibling");
        Assert.Equal(1, r.ExitCode);
        FailureSafetyTests.AssertOneLine(r.Stderr, $"{Path.GetFileName(netns)}: net/ipv6/conf/all/hop_limit cannot be set to 1000: EINVAL");
        Assert.Equal(hashes, Live.Hashes(bad));
        Assert.DoesNotContain(NsBox.PidNamespaceTestsChildren(Environment.ProcessId), p => File.ReadAllText($"/proc/{p}/comm").Trim() is "nsbox" or "crisp-puppet");
    }

    private static int Iarg(JsonElement e, string field, int index) => e.GetProperty(field)[index].GetProperty("iarg").GetInt32();

    private static JsonElement CritShow(string file)
    {
        using var doc = JsonDocument.Parse(Crit("show", file));
        return doc.RootElement.GetProperty("entries")[0].Clone();
    }

    private static string Crit(params string[] args)
    {
        var r = Live.RunProcess("/usr/bin/crit", TimeSpan.FromSeconds(60), null, args);
        Assert.True(r.ExitCode == 0, $"crit {string.Join(' ', args)}: {r.Stderr}");
        return r.Stdout;
    }

    /// <summary>Every file under net/ipv4/conf/*/ and net/ipv6/conf/*/ (all, default, lo, cvs0, cvs1), and the
    /// namespace's unix and ping sysctls, as the namespace shows them; "(unreadable)" for stable_secret unset.</summary>
    private static Dictionary<string, string> Snapshot(int pid) =>
        InNs(pid, "cd /proc/sys/net && for f in ipv4/conf/*/* ipv6/conf/*/* unix/max_dgram_qlen ipv4/ping_group_range; do " +
            "v=$(cat $f 2>/dev/null) || v='(unreadable)'; printf '%s=%s\\n' \"$f\" \"$v\"; done")
            .Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split('=', 2)).ToDictionary(p => p[0], p => p[1]);

    private static string InNs(int pid, string command)
    {
        var r = Live.RunProcess("/usr/bin/nsenter", TimeSpan.FromSeconds(30), null, $"--net=/proc/{pid}/ns/net", "/bin/sh", "-c", command);
        Assert.True(r.ExitCode == 0, $"{command}: {r.Stderr}");
        return r.Stdout;
    }
}
