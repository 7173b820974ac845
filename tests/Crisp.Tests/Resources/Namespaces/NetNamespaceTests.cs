using System.Security.Cryptography;
using Crisp.Linux;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Resources.Namespaces;

/// <summary>A tree in a network namespace of its own (nsbox under `unshare --net`: lo up with 10.77.0.1/8 and
/// fd77::1/64, a UDP socket bound to 10.77.0.1:7777 and a TCP listener on [fd77::1]:7778) dumped and restored:
/// into a new namespace made from the images (twice), into the same namespace joined by --join-ns net:PATH, and
/// into the caller's namespace named --external at dump and handed over with --inherit-fd. From inside, lo's
/// flags, its addresses and the sockets' addresses after each restore; from outside, which namespace the root is
/// in. The raw ifaddr/route images are read back by iproute2 itself (`ip addr showdump`).</summary>
public class NetNamespaceTests(ITestOutputHelper output)
{
    private const int IFF_UP = 1;

    [RootFact]
    public void ANetNamespaceWithLoAddressesAndSocketsSurvivesTwoCyclesIntoNewNamespaces()
    {
        using var box = new NsBox(["--net"], "net");
        string hostNet = NsBox.NsLink(Environment.ProcessId, "net");
        for (int cycle = 1; cycle <= 2; cycle++)
        {
            string images = box.Dump($"images{cycle}");
            AssertImages(images);
            int root = box.Restore(images);
            string after = NsBox.NsLink(root, "net");
            Assert.NotEqual(hostNet, after);
            // (the dumped namespace is gone by now: the kernel may give the new one its inode number)
            Assert.Equal(after, NsBox.NsLink(box.Child, "net"));
            Assert.Contains("fd77", File.ReadAllText($"/proc/{root}/net/if_inet6"));
            AssertInside(box.Report(), cycle);
        }
    }

    [RootFact]
    public void EmptyNsNetGivesANewNamespaceWithLoUpAsItWas()
    {
        using var box = new NsBox(["--net"], "lo");
        string images = box.Dump("images");
        int root = box.Restore(images, "--empty-ns", "net");
        Assert.NotEqual(NsBox.NsLink(Environment.ProcessId, "net"), NsBox.NsLink(root, "net"));
        var r = box.Report();
        output.WriteLine(string.Join(' ', r));
        Assert.True((Convert.ToUInt32(r[6], 16) & IFF_UP) != 0, $"lo flags 0x{r[6]}");
        Assert.Contains("inet 127.0.0.1/8", string.Join(' ', r));
    }

    [RootFact]
    public void JoinNsAndExternalPutTheTreeIntoTheGivenNamespace()
    {
        using var box = new NsBox(["--net"], "net");
        // The namespace outlives its tree while the test holds it (as a pod's pause container does).
        using var held = FileIo.Open($"/proc/{box.Root}/ns/net", FileIo.O_RDONLY | FileIo.O_CLOEXEC);
        string nsLink = NsBox.NsLink(box.Root, "net");
        string heldPath = $"/proc/{Environment.ProcessId}/fd/{held.Fd}";

        string joined = box.Dump("images-join");
        int root = box.Restore(joined, "--join-ns", $"net:{heldPath}");
        Assert.Equal(nsLink, NsBox.NsLink(root, "net"));
        AssertInside(box.Report(), 1);

        ulong inode = ulong.Parse(nsLink[(nsLink.IndexOf('[') + 1)..^1]);
        string external = box.Dump("images-ext", "--external", $"net[{inode}]:extNet");
        var netns = CritShow(Path.Combine(external, Directory.GetFiles(external, "netns-*.img").Select(Path.GetFileName).Single()!));
        Assert.Contains("\"ext_key\": \"extNet\"", netns);
        Assert.Empty(Directory.GetFiles(external, "netdev-*.img"));
        // crisp gets the namespace as its fd 7, as runc passes it.
        string pidfile = Path.Combine(box.Dir, "ext.pid");
        var r = CrispCli.RunProcess("/bin/sh", TimeSpan.FromSeconds(60), null, "-c", $"exec 7<{heldPath}; exec \"$@\"", "sh", CrispCli.Exe,
            "restore", "-D", external, "-d", "--restore-sibling", "--pidfile", pidfile, "--inherit-fd", "fd[7]:extNet", "-v4", "-o", "restore.log");
        Assert.True(r.ExitCode == 0, r.Stderr);
        box.Adopt(int.Parse(File.ReadAllText(pidfile).Trim()));
        Assert.Equal(nsLink, NsBox.NsLink(box.Root, "net"));
        AssertInside(box.Report(), 2);
    }

    [RootFact]
    public void AJoinNsPathThatIsNotANamespaceIsRefusedInOneLineLeavingNothing()
    {
        using var box = new NsBox(["--net"], "lo");
        string images = box.Dump("images");
        var hashes = Live.Hashes(images);
        string notNs = Path.Combine(box.Dir, "ready");
        var r = CrispCli.Run("restore", "-D", images, "-d", "--restore-sibling", "--join-ns", $"net:{notNs}");
        Assert.Equal(1, r.ExitCode);
        FailureSafetyTests.AssertOneLine(r.Stderr, $"--join-ns net:{notNs}: not a network namespace");
        Assert.Equal(hashes, Live.Hashes(images));
        Assert.DoesNotContain(NsBox.PidNamespaceTestsChildren(Environment.ProcessId), p => File.ReadAllText($"/proc/{p}/comm").Trim() is "nsbox" or "crisp-puppet");
    }

    [RootFact]
    public void ALinkCrispCannotCarryIsRefusedAtDumpByNameAndTheTreeRunsOn()
    {
        using var box = new NsBox(["--net"], "lo");
        var add = Live.RunProcess("/usr/bin/nsenter", TimeSpan.FromSeconds(30), null, $"--net=/proc/{box.Root}/ns/net", "ip", "link", "add", "crisp-b0", "type", "bridge");
        Assert.True(add.ExitCode == 0, add.Stderr);
        string images = Path.Combine(box.Dir, "images");
        Directory.CreateDirectory(images, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var r = CrispCli.Run("dump", "-t", box.Root.ToString(), "-D", images);
        Assert.Equal(1, r.ExitCode);
        FailureSafetyTests.AssertOneLine(r.Stderr, $"task {box.Root}'s network namespace has link crisp-b0 (bridge): crisp dumps only lo and veth links");
        Assert.Equal("0", File.ReadAllLines($"/proc/{box.Root}/status").Single(l => l.StartsWith("TracerPid:")).Split('\t')[1].Trim());
        Assert.Equal("0", box.Report()[1]);   // it runs on, its clock never went back
    }

    private void AssertInside(string[] r, int cycle)
    {
        string all = string.Join(' ', r);
        output.WriteLine($"report {cycle}: {all}");
        Assert.True((Convert.ToUInt32(r[6], 16) & IFF_UP) != 0, $"lo is down: flags 0x{r[6]}");
        Assert.Equal("ok", r[7]);
        Assert.Contains("inet 10.77.0.1/8", all);
        Assert.Contains("inet6 fd77::1/64", all);
        Assert.Contains("inet 127.0.0.1/8", all);
    }

    /// <summary>crit reads every protobuf image; the raw ones are iproute2's and `ip addr showdump` reads them.</summary>
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
        string netdev = CritShow(Directory.GetFiles(images, "netdev-*.img").Single());
        Assert.Contains("\"name\": \"lo\"", netdev);
        Assert.Contains("\"type\": \"LOOPBACK\"", netdev);
        var show = Live.RunProcess("/bin/sh", TimeSpan.FromSeconds(30), null, "-c", "ip addr showdump < \"$1\"", "sh", Directory.GetFiles(images, "ifaddr-*.img").Single());
        output.WriteLine(show.Stdout);
        Assert.True(show.ExitCode == 0, show.Stderr);
        Assert.Contains("inet 10.77.0.1/8", show.Stdout);
        Assert.Contains("inet6 fd77::1/64", show.Stdout);
        Assert.Equal(4, new FileInfo(Directory.GetFiles(images, "route-*.img").Single()).Length);   // lo's routes are all in table local
    }

    private static string CritShow(string file)
    {
        var r = Live.RunProcess("/usr/bin/crit", TimeSpan.FromSeconds(60), null, "show", file);
        Assert.True(r.ExitCode == 0, r.Stderr);
        return r.Stdout;
    }
}
