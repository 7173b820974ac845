using Crisp.Linux;
using Crisp.Tests.Integration;
using Crisp.Tests.Resources.Namespaces;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Resources.Cgroups;

/// <summary>A tree (nsbox: root and child, in their own pid and time namespaces) placed by the test in cgroups of
/// its own — v1 pids (/crisp-cg-X with pids.max 64, the child in /crisp-cg-X/child with 16), v1 memory (a dir below
/// the test's own with a 256 MiB limit) and v2 (/crisp-cg-X in the unified tree) — dumped and restored with
/// --manage-cgroups: full after the dirs were removed (made again with their limits), soft into dirs that exist
/// (a limit changed meanwhile is kept), then soft with --cgroup-root pids:/crisp-cg-X-moved. After each restore
/// /proc/PID/cgroup of each task and the dirs' limits are checked from outside, and the tree reports from inside.</summary>
/// <remarks>Alone (ContainerEngines): the --cgroup-yard case mounts cgroup hierarchies on the host for a moment.</remarks>
[Collection(Runtimes.ContainerEngines.Name)]
public class CgroupTests(ITestOutputHelper output)
{
    private const string Pids = "/sys/fs/cgroup/pids", Unified = "/sys/fs/cgroup/unified";

    [RootFact]
    public void TasksLandInTheirCgroupsWithTheirLimitsInFullSoftAndMovedRoots()
    {
        using var cg = new Cgroups();
        // The tree's cgroup namespace is rooted at its cgroups (it unshares after joining them).
        using var box = new NsBox(["--cgroup"], before: cg.JoinScript);
        File.WriteAllText(Path.Combine(cg.PidsDir, "child", "cgroup.procs"), box.Child.ToString());
        cg.AssertPlaced(box.Root, box.Child, cg.Name);
        Assert.Equal("/", box.Report()[8]);

        // full: the dirs are gone at restore; they come back with their limits.
        string images1 = box.Dump("images1", "--manage-cgroups=full");
        Live.AssertCritDecodesAll(images1);
        var show = Live.RunProcess("/usr/bin/crit", TimeSpan.FromSeconds(60), null, "show", Path.Combine(images1, "cgroup.img"));
        Assert.Contains("\"pids.max\"", show.Stdout);
        cg.RemoveDirs();
        box.Restore(images1, "--manage-cgroups=full");
        cg.AssertPlaced(box.Root, box.Child, cg.Name);
        Assert.Equal("64", Read(cg.PidsDir, "pids.max"));
        Assert.Equal("16", Read(Path.Combine(cg.PidsDir, "child"), "pids.max"));
        Assert.Equal((256L << 20).ToString(), Read(cg.MemoryDir, "memory.limit_in_bytes"));
        Assert.NotEqual(NsBox.NsLink(Environment.ProcessId, "cgroup"), NsBox.NsLink(box.Root, "cgroup"));
        Assert.Equal(NsBox.NsLink(box.Root, "cgroup"), NsBox.NsLink(box.Child, "cgroup"));
        var report = box.Report();
        output.WriteLine(string.Join(' ', report));
        Assert.Equal("/", report[8]);   // still at its namespace's root

        // soft: the dirs exist; what they hold now is kept.
        string images2 = box.Dump("images2", "--manage-cgroups");
        File.WriteAllText(Path.Combine(cg.PidsDir, "pids.max"), "100");
        box.Restore(images2, "--manage-cgroups=soft");
        cg.AssertPlaced(box.Root, box.Child, cg.Name);
        Assert.Equal("100", Read(cg.PidsDir, "pids.max"));

        // --cgroup-root: the root's pids cgroup moves; the child's stays below it; the new dirs get the dumped limits.
        string images3 = box.Dump("images3", "--manage-cgroups=soft");
        box.Restore(images3, "--manage-cgroups", "--cgroup-root", $"pids:/{cg.Name}-moved");
        cg.Extra.Add(Path.Combine(Pids, $"{cg.Name}-moved", "child"));
        cg.Extra.Add(Path.Combine(Pids, $"{cg.Name}-moved"));
        Assert.Equal($"/{cg.Name}-moved", Member(box.Root, "pids"));
        Assert.Equal($"/{cg.Name}-moved/child", Member(box.Child, "pids"));
        Assert.Equal("100", Read(Path.Combine(Pids, $"{cg.Name}-moved"), "pids.max"));
        Assert.Equal("16", Read(Path.Combine(Pids, $"{cg.Name}-moved", "child"), "pids.max"));
        Assert.Equal(Member(box.Root, "memory"), cg.MemoryPath);
        Assert.Equal("/", box.Report()[8]);   // the namespace's root moved with it
    }

    [RootFact]
    public void ACgroupThatCannotBeMadeIsRefusedInOneLineLeavingNoCgroupAndNoTask()
    {
        using var cg = new Cgroups();
        using var box = new NsBox([], before: cg.JoinScript);
        string images = box.Dump("images", "--manage-cgroups=full");
        cg.RemoveDirs();
        var hashes = Live.Hashes(images);
        // Below a file: mkdir fails (ENOTDIR) after the v2 and memory dirs were made.
        string bad = $"/{cg.Name}-f/pids.max/x";
        Directory.CreateDirectory(Path.Combine(Pids, $"{cg.Name}-f"));
        cg.Extra.Add(Path.Combine(Pids, $"{cg.Name}-f"));
        var r = CrispCli.Run("restore", "-D", images, "-d", "--restore-sibling", "--manage-cgroups=full", "--cgroup-root", $"pids:{bad}");
        output.WriteLine(r.Stderr);
        Assert.Equal(1, r.ExitCode);
        FailureSafetyTests.AssertOneLine(r.Stderr, $"cannot create cgroup {Pids}/{cg.Name}-f/pids.max: ");
        Assert.False(Directory.Exists(cg.MemoryDir), $"{cg.MemoryDir} left behind");
        Assert.False(Directory.Exists(cg.UnifiedDir), $"{cg.UnifiedDir} left behind");
        Assert.Equal(hashes, Live.Hashes(images));
        Assert.DoesNotContain(NsBox.PidNamespaceTestsChildren(Environment.ProcessId), p => File.ReadAllText($"/proc/{p}/comm").Trim() is "nsbox" or "crisp-puppet");

        // none: dirs that do not exist are refused before anything.
        var none = CrispCli.Run("restore", "-D", images, "-d", "--restore-sibling", "--manage-cgroups=none");
        Assert.Equal(1, none.ExitCode);
        FailureSafetyTests.AssertOneLine(none.Stderr, "does not exist (--manage-cgroups=none makes none)");
    }

    /// <summary>--cgroup-props replaces pids' property list with none and merges memory.kmem.tcp.limit_in_bytes
    /// into memory's: cgroup.img and the dirs a full restore makes follow it. --cgroup-dump-controller pids dumps
    /// only that hierarchy: the tasks land in their pids cgroups and stay in crisp's memory and v2 ones. A restore
    /// whose --cgroup-yard lacks a hierarchy is refused in one line; with a yard holding them all it places the
    /// tasks. A malformed --cgroup-props is one usage line and the tree runs on.</summary>
    [RootFact]
    public void CgroupPropsChooseThePropertiesAndDumpControllerAndYardTheHierarchies()
    {
        using var cg = new Cgroups();
        using var box = new NsBox([], before: cg.JoinScript);
        File.WriteAllText(Path.Combine(cg.PidsDir, "child", "cgroup.procs"), box.Child.ToString());
        File.WriteAllText(Path.Combine(cg.MemoryDir, "memory.kmem.tcp.limit_in_bytes"), (64L << 20).ToString());

        var bad = CrispCli.Run("dump", "-t", box.Root.ToString(), "-D", Path.Combine(box.Dir, "bad"), "--manage-cgroups", "--cgroup-props", "\"pids\":\n - \"strategy\": \"swap\"\n - \"properties\": []");
        Assert.NotEqual(0, bad.ExitCode);
        FailureSafetyTests.AssertOneLine(bad.Stderr, "--cgroup-props: line 2: expected - \"strategy\": \"merge\" or \"replace\"");
        Assert.Equal(0, global::Crisp.Linux.Proc.ProcStatus.Read(box.Root).TracerPid);

        string props = "\"pids\":\n - \"strategy\": \"replace\"\n - \"properties\": []\n" +
            "\"memory\":\n - \"strategy\": \"merge\"\n - \"properties\": [\"memory.kmem.tcp.limit_in_bytes\"]\n";
        string images1 = box.Dump("images1", "--manage-cgroups=full", "--cgroup-props", props);
        var show = Live.RunProcess("/usr/bin/crit", TimeSpan.FromSeconds(60), null, "show", Path.Combine(images1, "cgroup.img"));
        Assert.DoesNotContain("\"pids.max\"", show.Stdout);
        Assert.Contains("\"memory.kmem.tcp.limit_in_bytes\"", show.Stdout);
        Assert.Contains("\"memory.limit_in_bytes\"", show.Stdout);
        cg.RemoveDirs();
        box.Restore(images1, "--manage-cgroups=full");
        cg.AssertPlaced(box.Root, box.Child, cg.Name);
        Assert.Equal("max", Read(cg.PidsDir, "pids.max"));
        Assert.Equal((64L << 20).ToString(), Read(cg.MemoryDir, "memory.kmem.tcp.limit_in_bytes"));
        Assert.Equal((256L << 20).ToString(), Read(cg.MemoryDir, "memory.limit_in_bytes"));

        // Only the pids hierarchy.
        string images2 = box.Dump("images2", "--manage-cgroups=soft", "--cgroup-dump-controller", "pids");
        var only = Live.RunProcess("/usr/bin/crit", TimeSpan.FromSeconds(60), null, "show", Path.Combine(images2, "cgroup.img"));
        Assert.Contains("\"pids\"", only.Stdout);
        Assert.DoesNotContain("\"memory\"", only.Stdout);

        // A yard with pids and v2 but not the other v1 hierarchies: refused for images1; enough for images2.
        string yard = Path.Combine(box.Dir, "yard");
        var mounted = new List<string>();
        try
        {
            foreach (var (sub, type, opts) in new[] { ("unified", "cgroup2", ""), ("pids", "cgroup", "pids") })
            {
                string at = Path.Combine(yard, sub);
                Directory.CreateDirectory(at);
                var m = Live.RunProcess("/usr/bin/mount", TimeSpan.FromSeconds(30), null, ["-t", type, .. (opts.Length > 0 ? new[] { "-o", opts } : []), "none", at]);
                Assert.True(m.ExitCode == 0, m.Stderr);
                mounted.Add(at);
            }
            var refused = CrispCli.Run("restore", "-D", images1, "-d", "--restore-sibling", "--manage-cgroups=full", "--cgroup-yard", yard);
            Assert.Matches($"^crisp: error: cgroup.img: cgroup hierarchy '[a-z_,=]+' is not mounted below --cgroup-yard {yard}$", refused.Stderr.Trim());
            Assert.DoesNotContain(NsBox.PidNamespaceTestsChildren(Environment.ProcessId), p => File.ReadAllText($"/proc/{p}/comm").Trim() is "nsbox" or "crisp-puppet");
            box.Restore(images2, "--manage-cgroups=soft", "--cgroup-yard", yard);
            Assert.Equal($"/{cg.Name}", Member(box.Root, "pids"));
            Assert.Equal($"/{cg.Name}/child", Member(box.Child, "pids"));
            Assert.Equal(Member(Environment.ProcessId, "memory"), Member(box.Root, "memory"));
            Assert.Equal(Member(Environment.ProcessId, ""), Member(box.Root, ""));
        }
        finally
        {
            foreach (var at in Enumerable.Reverse(mounted))
                Live.RunProcess("/usr/bin/umount", TimeSpan.FromSeconds(30), null, at);
        }
    }

    private static string Read(string dir, string file) => File.ReadAllText(Path.Combine(dir, file)).Trim();

    internal static string? Member(int pid, string hierarchy) => File.ReadAllLines($"/proc/{pid}/cgroup")
        .Select(l => l.Split(':', 3)).FirstOrDefault(p => p[1] == hierarchy)?[2];

    /// <summary>The test's cgroup dirs: made with their limits, removed (children first, tasks moved out) at the end.</summary>
    private sealed class Cgroups : IDisposable
    {
        public string Name { get; } = $"crisp-cg-{Guid.NewGuid():N}"[..18];
        public string PidsDir => Path.Combine(Pids, Name);
        public string UnifiedDir => Path.Combine(Unified, Name);
        /// <summary>The memory dir's path in its hierarchy (below the test's own memory cgroup).</summary>
        public string MemoryPath { get; }
        public string MemoryDir => "/sys/fs/cgroup/memory" + MemoryPath;
        public List<string> Extra { get; } = [];

        public Cgroups()
        {
            MemoryPath = (Member(Environment.ProcessId, "memory") ?? "/").TrimEnd('/') + "/" + Name;
            Make();
        }

        public void Make()
        {
            Directory.CreateDirectory(PidsDir);
            File.WriteAllText(Path.Combine(PidsDir, "pids.max"), "64");
            Directory.CreateDirectory(Path.Combine(PidsDir, "child"));
            File.WriteAllText(Path.Combine(PidsDir, "child", "pids.max"), "16");
            Directory.CreateDirectory(MemoryDir);
            File.WriteAllText(Path.Combine(MemoryDir, "memory.limit_in_bytes"), (256L << 20).ToString());
            Directory.CreateDirectory(UnifiedDir);
        }

        public string JoinScript => string.Join("\n", new[] { PidsDir, MemoryDir, UnifiedDir }.Select(d => $"echo $$ > {d}/cgroup.procs"));

        public void AssertPlaced(int root, int child, string name)
        {
            Assert.Equal($"/{name}", Member(root, "pids"));
            Assert.Equal($"/{name}/child", Member(child, "pids"));
            Assert.Equal(MemoryPath, Member(root, "memory"));
            Assert.Equal(MemoryPath, Member(child, "memory"));
            Assert.Equal($"/{name}", Member(root, ""));
            Assert.Equal($"/{name}", Member(child, ""));
        }

        public void RemoveDirs()
        {
            foreach (var dir in Dirs())
                Remove(dir);
        }

        private IEnumerable<string> Dirs() => [.. Extra, Path.Combine(PidsDir, "child"), PidsDir, MemoryDir, UnifiedDir];

        private static void Remove(string dir)
        {
            var deadline = DateTime.UtcNow.AddSeconds(10);
            while (Directory.Exists(dir))
            {
                foreach (var pid in File.ReadAllLines(Path.Combine(dir, "cgroup.procs")).Where(l => l.Length > 0))
                {
                    try { File.WriteAllText(Path.Combine(Path.GetDirectoryName(dir)!, "cgroup.procs"), pid); }
                    catch (IOException) { }
                }
                try { Directory.Delete(dir); }
                catch (IOException) when (DateTime.UtcNow < deadline) { Thread.Sleep(50); }
            }
        }

        public void Dispose()
        {
            foreach (var dir in Dirs())
            {
                try { Remove(dir); }
                catch (Exception) { }
            }
        }
    }
}
