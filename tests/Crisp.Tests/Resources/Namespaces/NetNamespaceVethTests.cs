using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Resources.Namespaces;

/// <summary>A tree in a network namespace of its own with a veth to the host (nsbox "veth" under `unshare --net`):
/// the test moves one end of a veth pair inside (cvi0: its MAC, MTU 1400, 10.79.0.2/24, fd79::2/64), keeps the
/// other (10.79.0.1/24) here, adds routes via the host end (v4 and v6), a second veth pair with both ends inside
/// (cvp0 up with 10.80.0.1/24, cvp1 down) and an nftables table with a named counter the workload's traffic
/// counts. The workload holds a UDP socket bound to 10.79.0.2:7779 and sends to the host end on each report.
/// Two dump/restore cycles: the first gives the peer as --external veth[cvi0]:OUT, the second as --veth-pair
/// cvi0=OUT@BRIDGE (a bridge holding the host's address). After each restore the links, MACs, MTUs, flags,
/// addresses, main-table routes and `nft list ruleset` equal the ones before the dump, field by field, and the
/// workload's datagram arrives here. A restore without the peer's name is refused in one line before anything
/// is made.</summary>
public class NetNamespaceVethTests(ITestOutputHelper output)
{
    private const string Inside = "cvi0";

    [RootFact]
    public void VethLinksAddressesRoutesAndNftablesSurviveTwoCyclesAndTheWorkloadStillSends()
    {
        string tag = (Environment.ProcessId % 100000).ToString();
        string outName = $"cvo{tag}", bridge = $"cvb{tag}";
        using var box = new NsBox(["--net"], "veth");
        using var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp) { ReceiveTimeout = 10000 };
        try
        {
            Ip("link", "add", outName, "type", "veth", "peer", "name", Inside, "netns", box.Root.ToString());
            Ip("addr", "add", "10.79.0.1/24", "dev", outName);
            Ip("link", "set", outName, "up");
            InNs(box.Root, $"ip link set {Inside} address 02:79:00:00:00:02 mtu 1400 up && ip addr add 10.79.0.2/24 dev {Inside} && " +
                $"ip -6 addr add fd79::2/64 dev {Inside} nodad && ip route add 10.88.0.0/16 via 10.79.0.1 && ip -6 route add fd88::/64 via fd79::1 && " +
                "ip link add cvp0 type veth peer name cvp1 && ip link set cvp0 mtu 1300 up && ip addr add 10.80.0.1/24 dev cvp0 && " +
                "printf 'table inet crt {\\n counter sent { }\\n chain out {\\n type filter hook output priority 0; policy accept;\\n udp dport 7780 counter name \"sent\" accept\\n }\\n}\\n' | nft -f -");
            udp.Bind(new IPEndPoint(IPAddress.Parse("10.79.0.1"), 7780));
            WaitCarrier(box.Root);
            AssertSends(box, udp, 1);

            for (int cycle = 1; cycle <= 2; cycle++)
            {
                var before = Snapshot(box.Root);
                Assert.Contains($"packets {cycle} ", before["nft"]);   // the counter counted what was sent, so its value is checked too
                string images = box.Dump($"images{cycle}");
                AssertImages(images);
                Live.WaitFor(() => !LinkExists(outName), $"{outName} gone with the dumped namespace");
                if (cycle == 1)
                {
                    AssertRefusedWithoutThePeersName(box, images, outName);
                    box.Restore(images, "--external", $"veth[{Inside}]:{outName}");
                    Assert.True(LinkExists(outName), $"no {outName} here after the restore");
                    Ip("addr", "add", "10.79.0.1/24", "dev", outName);
                    Ip("link", "set", outName, "up");
                }
                else
                {
                    Ip("link", "add", bridge, "type", "bridge");
                    Ip("addr", "add", "10.79.0.1/24", "dev", bridge);
                    Ip("link", "set", bridge, "up");
                    box.Restore(images, "--veth-pair", $"{Inside}={outName}@{bridge}");
                    Assert.Contains($"master {bridge}", Ip("-o", "link", "show", outName));
                    Assert.Contains(",UP", Ip("-o", "link", "show", outName));
                }
                WaitCarrier(box.Root);
                var after = Snapshot(box.Root);
                foreach (var (what, text) in before)
                {
                    output.WriteLine($"cycle {cycle} {what}:\n{text}");
                    Assert.Equal(text, after[what]);
                }
                string dev = File.ReadAllText($"/proc/{box.Root}/net/dev");
                Assert.Contains($"{Inside}:", dev);
                Assert.Contains("cvp1:", dev);
                Assert.Contains("fd790000000000000000000000000002", File.ReadAllText($"/proc/{box.Root}/net/if_inet6"));
                Assert.Contains("\t0000580A\t", File.ReadAllText($"/proc/{box.Root}/net/route"));   // 10.88.0.0
                AssertSends(box, udp, cycle + 1);
            }
        }
        finally
        {
            TryIp("link", "del", outName);
            TryIp("link", "del", bridge);
        }
    }

    /// <summary>Without --veth-pair / --external veth[…] for a veth whose peer was outside: one line naming the
    /// link, exit 1, the images untouched, no link made here and no task left.</summary>
    private static void AssertRefusedWithoutThePeersName(NsBox box, string images, string outName)
    {
        var hashes = Live.Hashes(images);
        string linksBefore = Ip("-o", "link", "show");
        var r = CrispCli.Run("restore", "-D", images, "-d", "--restore-sibling");
        Assert.Equal(1, r.ExitCode);
        FailureSafetyTests.AssertOneLine(r.Stderr, $"veth {Inside} had its peer outside the namespace: name the peer to make here with --veth-pair {Inside}=OUTNAME");
        Assert.Equal(hashes, Live.Hashes(images));
        Assert.False(LinkExists(outName));
        Assert.Equal(Names(linksBefore), Names(Ip("-o", "link", "show")));
        Assert.DoesNotContain(NsBox.PidNamespaceTestsChildren(Environment.ProcessId), p => File.ReadAllText($"/proc/{p}/comm").Trim() is "nsbox" or "crisp-puppet");
        var bad = CrispCli.Run("restore", "-D", images, "-d", "--restore-sibling", "--veth-pair", "nosuch=x");
        Assert.Equal(1, bad.ExitCode);
        FailureSafetyTests.AssertOneLine(bad.Stderr, "--veth-pair nosuch=x: netdev-");
    }

    private static string Names(string ipLinkOneLine) =>
        string.Join(' ', ipLinkOneLine.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(':')[1].Trim()).Order());

    private void AssertSends(NsBox box, Socket udp, int n)
    {
        var r = box.Report();
        Assert.True(r[7] == "ok", $"report {n}: {string.Join(' ', r)}");
        var buf = new byte[64];
        EndPoint from = new IPEndPoint(IPAddress.Any, 0);
        int got = udp.ReceiveFrom(buf, ref from);
        Assert.Equal($"hello {n}", Encoding.ASCII.GetString(buf, 0, got));
        Assert.Equal("10.79.0.2:7779", from.ToString());
    }

    /// <summary>crit reads every protobuf image; netdev has the veth ends as CRIU records them; iproute2 reads
    /// the raw ifaddr and route images back; nftables-ID.img is the ruleset's text.</summary>
    private void AssertImages(string images)
    {
        foreach (var f in Directory.EnumerateFiles(images, "*.img"))
        {
            string name = Path.GetFileName(f);
            if (name.StartsWith("pages-") || name.StartsWith("ifaddr-") || name.StartsWith("route") || name.StartsWith("nftables-"))
                continue;
            var c = Live.RunProcess("/usr/bin/crit", TimeSpan.FromSeconds(60), null, "decode", "-i", f);
            Assert.True(c.ExitCode == 0, $"crit decode {name}: {c.Stderr}");
        }
        var show = Live.RunProcess("/usr/bin/crit", TimeSpan.FromSeconds(60), null, "show", Directory.GetFiles(images, "netdev-*.img").Single());
        Assert.True(show.ExitCode == 0, show.Stderr);
        using var json = JsonDocument.Parse(show.Stdout);
        var links = json.RootElement.GetProperty("entries").EnumerateArray().ToDictionary(e => e.GetProperty("name").GetString()!);
        Assert.Equal("VETH", links[Inside].GetProperty("type").GetString());
        Assert.Equal(1400, links[Inside].GetProperty("mtu").GetInt32());
        Assert.False(links[Inside].TryGetProperty("peer_nsid", out _));   // the peer is outside, as CRIU records it
        Assert.True(links[Inside].TryGetProperty("peer_ifindex", out _));
        Assert.Equal(links["cvp1"].GetProperty("ifindex").GetInt32(), links["cvp0"].GetProperty("peer_ifindex").GetInt32());
        Assert.True(links["cvp0"].TryGetProperty("peer_nsid", out _));
        var addrs = Live.RunProcess("/bin/sh", TimeSpan.FromSeconds(30), null, "-c", "ip addr showdump < \"$1\"", "sh", Directory.GetFiles(images, "ifaddr-*.img").Single());
        Assert.True(addrs.ExitCode == 0, addrs.Stderr);
        Assert.Contains("inet 10.79.0.2/24", addrs.Stdout);
        Assert.Contains("inet6 fd79::2/64", addrs.Stdout);
        var routes = Live.RunProcess("/bin/sh", TimeSpan.FromSeconds(30), null, "-c", "ip route showdump < \"$1\"", "sh", Directory.GetFiles(images, "route-*.img").Single());
        Assert.True(routes.ExitCode == 0, routes.Stderr);
        Assert.Contains("10.88.0.0/16 via 10.79.0.1", routes.Stdout);
        Assert.Contains("table inet crt", File.ReadAllText(Directory.GetFiles(images, "nftables-*.img").Single()));
    }

    /// <summary>What the namespace shows, one text per kind, each line one object with the fields compared: links
    /// (index, name, flags, MTU, MAC, state, and the peer's index for a pair inside), addresses (link, family,
    /// address, prefix, scope, flags, lifetimes), main-table routes v4 and v6 (every field), and the ruleset.</summary>
    private static Dictionary<string, string> Snapshot(int pid)
    {
        static IEnumerable<JsonElement> Items(string text) => JsonDocument.Parse(text).RootElement.EnumerateArray().ToList();
        static string Field(JsonElement e, string name) => e.TryGetProperty(name, out var v) ? v.ToString() : "-";
        var links = Items(InNs(pid, "ip -j link show")).Select(l =>
            $"{Field(l, "ifindex")} {Field(l, "ifname")} {Field(l, "flags")} mtu {Field(l, "mtu")} {Field(l, "address")} {Field(l, "operstate")} " +
            (Field(l, "ifname").StartsWith("cvp") ? $"peer {Field(l, "link")}" : ""));
        var addrs = Items(InNs(pid, "ip -j addr show")).SelectMany(l => l.GetProperty("addr_info").EnumerateArray().Select(a =>
            $"{Field(l, "ifname")} {Field(a, "family")} {Field(a, "local")}/{Field(a, "prefixlen")} scope {Field(a, "scope")} " +
            $"{string.Join(',', a.EnumerateObject().Where(p => p.Value.ValueKind == JsonValueKind.True).Select(p => p.Name))} " +
            $"{Field(a, "valid_life_time")} {Field(a, "preferred_life_time")}"));
        return new Dictionary<string, string>
        {
            ["links"] = string.Join('\n', links),
            ["addresses"] = string.Join('\n', addrs.Order()),
            ["routes"] = string.Join('\n', Items(InNs(pid, "ip -j route show table main")).Select(r => r.GetRawText()).Order()),
            ["routes6"] = string.Join('\n', Items(InNs(pid, "ip -j -6 route show table main")).Select(r => r.GetRawText()).Order()),
            ["nft"] = InNs(pid, "nft list ruleset"),
        };
    }

    /// <summary>Until the inside end sees its peer up (LOWER_UP) and its link-local address is out of DAD: flags,
    /// routes' linkdown and address flags depend on it.</summary>
    private static void WaitCarrier(int pid) =>
        Live.WaitFor(() => InNs(pid, $"ip -o link show {Inside}").Contains("LOWER_UP") && InNs(pid, "ip -6 -o addr show dev " + Inside) is var a && a.Contains("fe80") && !a.Contains("tentative"), $"{Inside}'s carrier");

    private static bool LinkExists(string name) => Live.RunProcess("/usr/sbin/ip", TimeSpan.FromSeconds(30), null, "link", "show", name).ExitCode == 0;

    private static string InNs(int pid, string command)
    {
        var r = Live.RunProcess("/usr/bin/nsenter", TimeSpan.FromSeconds(30), null, $"--net=/proc/{pid}/ns/net", "/bin/sh", "-c", command);
        Assert.True(r.ExitCode == 0, $"{command}: {r.Stderr}");
        return r.Stdout;
    }

    private static string Ip(params string[] args)
    {
        var r = Live.RunProcess("/usr/sbin/ip", TimeSpan.FromSeconds(30), null, args);
        Assert.True(r.ExitCode == 0, $"ip {string.Join(' ', args)}: {r.Stderr}");
        return r.Stdout;
    }

    private static void TryIp(params string[] args) => Live.RunProcess("/usr/sbin/ip", TimeSpan.FromSeconds(30), null, args);
}
