using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Linux.Proc;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Namespaces;

/// <summary>Pid namespaces nested inside the tree's (pidns_nested under `unshare --fork --pid`: root; n, which
/// unshared CLONE_NEWPID and forked g, pid 1 of the nested namespace, which forked h; u, which unshared and forked
/// nothing yet) go through two dump/kill/restore cycles by the CLI. After each restore the test reads every task's
/// NSpid from /proc (all levels below the host's as before), its parent, which pid namespace it is in and each
/// task's pid_for_children, and each task checks getpid()/getppid() and its own NSpid from inside (a check round,
/// SIGUSR2); the images hold the nested levels in crisp's fields and crit decodes them. At the end u forks a child
/// that must be pid 1 of a new namespace.</summary>
public class NestedPidNamespaceTests(ITestOutputHelper output)
{
    /// <summary>A task as the host sees it: NSpid without the host's own entry, its parent's tree pid.</summary>
    private sealed record Seen(string NsPid, int TreeParent, int Levels);

    [RootFact]
    public void NestedPidNamespacesSurviveTwoCliCyclesWithTheirPidsAtEveryLevel()
    {
        string exe = Support.Workloads.Build("pidns_nested");
        using var dir = new Live.TempDir();
        int unshare = Start(exe, dir.Path);
        int root = 0;
        bool unshareReaped = false;
        try
        {
            var words = PidNamespaceTests.WaitReady(dir.Path, unshare);
            int n = int.Parse(words[2]), u = int.Parse(words[3]);
            root = PidNamespaceTests.Children(unshare).Single();
            var before = Tree(root, n, u);
            Assert.Equal(5, before.Count);
            Assert.Equal(2, before.Values.Count(s => s.Levels == 3));   // g and h, one level below the tree's

            string images1 = Path.Combine(dir.Path, "images1"), pidfile1 = Path.Combine(dir.Path, "root1.pid");
            Run("dump", "-t", root.ToString(), "-D", images1, "-v4", "-o", "dump.log");
            Live.ReapWithin(unshare);
            unshareReaped = true;
            AssertImages(images1, n, u);
            Run("restore", "-D", images1, "-d", "--restore-sibling", "--pidfile", pidfile1, "-v4", "-o", "restore.log");
            root = int.Parse(File.ReadAllText(pidfile1).Trim());
            Assert.Equal(before, Tree(root, n, u));
            CheckRound(dir.Path, root, 1);

            string images2 = Path.Combine(dir.Path, "images2"), pidfile2 = Path.Combine(dir.Path, "root2.pid");
            Run("dump", "-t", root.ToString(), "-D", images2, "-v4", "-o", "dump.log");
            Live.ReapWithin(root);
            AssertImages(images2, n, u);
            Run("restore", "-D", images2, "-d", "--pidfile", pidfile2, "-v4", "-o", "restore.log");
            root = int.Parse(File.ReadAllText(pidfile2).Trim());
            Assert.Equal(before, Tree(root, n, u));
            CheckRound(dir.Path, root, 2);

            Signals.Kill(root, Live.SIGUSR1);
            Live.WaitFor(() => File.Exists(Path.Combine(dir.Path, "verdict")), "the restored tree's verdict", TimeSpan.FromSeconds(30));
            Live.WaitFor(() => File.ReadAllText(Path.Combine(dir.Path, "verdict")).EndsWith('\n'), "the whole verdict");
            string fails = string.Join("\n", Directory.EnumerateFiles(dir.Path, "fail-*").Select(File.ReadAllText));
            Assert.True(File.ReadAllText(Path.Combine(dir.Path, "verdict")).Trim() == "PASS", $"{File.ReadAllText(Path.Combine(dir.Path, "verdict"))}\n{fails}");
            root = 0;
        }
        finally
        {
            if (root > 0)
                RawSyscall.TryCall(Sysno.kill, root, Live.SIGKILL);
            if (!unshareReaped)
                PidNamespaceTests.KillUnshare(unshare);
        }
    }

    /// <summary>Check round <paramref name="round"/> inside the restored tree (SIGUSR2 to the root, passed down):
    /// each of the five tasks checks getpid/getppid and its NSpid below the host's, and says "ok".</summary>
    private static void CheckRound(string dir, int root, int round)
    {
        string[] names = ["root", "n", "u", "g", "h"];
        Signals.Kill(root, 12);   // SIGUSR2
        Live.WaitFor(() => names.All(name => File.Exists(Path.Combine(dir, $"checked-{name}-{round}"))
            && File.ReadAllText(Path.Combine(dir, $"checked-{name}-{round}")).EndsWith('\n')), $"check round {round} of every task");
        foreach (var name in names)
            Assert.Equal($"{name}: ok", $"{name}: {File.ReadAllText(Path.Combine(dir, $"checked-{name}-{round}")).Trim()}");
    }

    /// <summary>`unshare --fork --pid EXE DIR` in its own session, stdio on /dev/null.</summary>
    internal static int Start(string exe, string dir) =>
        Spawn.Start("/usr/bin/unshare", ["unshare", "--fork", "--pid", exe, dir],
            new SpawnOptions { NewSession = true, Opens = Live.DevNullStdio });

    private static CrispCli.Result Run(params string[] args)
    {
        var r = CrispCli.Run(args);
        Assert.True(r.ExitCode == 0, $"crisp {string.Join(' ', args)}: exit {r.ExitCode}\n{r.Stderr}");
        return r;
    }

    /// <summary>Every task by its tree pid, from the host's /proc; asserts the namespaces: root, n, u in the tree's;
    /// g and h in one nested below it, g its pid 1 and n's pid_for_children; u's pid_for_children unshared with
    /// no child yet (/proc cannot show it).</summary>
    private Dictionary<int, Seen> Tree(int root, int n, int u)
    {
        var seen = new Dictionary<int, Seen>();
        var hostOf = new Dictionary<int, int>();
        void Walk(int host, int treeParent)
        {
            var ns = ProcStatus.Read(host).NSpid;
            output.WriteLine($"host {host}: NSpid {string.Join(' ', ns)}");
            Assert.Equal(host, ns[0]);
            seen[ns[1]] = new Seen(string.Join(' ', ns[1..]), treeParent, ns.Length);
            hostOf[ns[1]] = host;
            foreach (int child in PidNamespaceTests.Children(host))
                Walk(child, ns[1]);
        }
        Walk(root, 0);
        string treeNs = PidNamespaceTests.NsLink(root, "pid");
        Assert.NotEqual(PidNamespaceTests.NsLink(Environment.ProcessId, "pid"), treeNs);
        int g = seen.Single(s => s.Value.TreeParent == n).Key;
        int h = seen.Single(s => s.Value.TreeParent == g).Key;
        foreach (int t in new[] { 1, n, u })
            Assert.Equal(treeNs, PidNamespaceTests.NsLink(hostOf[t], "pid"));
        string nested = PidNamespaceTests.NsLink(hostOf[g], "pid");
        Assert.NotEqual(treeNs, nested);
        Assert.Equal(nested, PidNamespaceTests.NsLink(hostOf[h], "pid"));
        Assert.Equal(nested, PidNamespaceTests.NsLink(hostOf[n], "pid_for_children"));
        Assert.Equal((1, 2), (ProcStatus.Read(hostOf[g]).NSpid[^1], ProcStatus.Read(hostOf[h]).NSpid[^1]));
        Assert.Equal(treeNs, PidNamespaceTests.NsLink(hostOf[1], "pid_for_children"));
        // Unshared with no child yet: the namespace has no init, and the kernel shows no link.
        string? unsharedFor;
        try { unsharedFor = new FileInfo($"/proc/{hostOf[u]}/ns/pid_for_children").LinkTarget; }
        catch (IOException) { unsharedFor = null; }
        Assert.Null(unsharedFor);
        return seen;
    }

    /// <summary>crit decodes every image; pstree.img keeps the tree's pids and crisp's ns_pids/ns_tids the nested
    /// level; ids name g's and h's namespace, and n's and u's pid_for_children.</summary>
    private static void AssertImages(string images, int n, int u)
    {
        Live.AssertCritDecodesAll(images);
        var dir = ImageDirectory.Open(images);
        var pstree = dir.ReadAll<pstree_entry>(ImageFile.Pstree);
        var g = pstree.Single(e => e.Ppid == n);
        var h = pstree.Single(e => e.Ppid == g.Pid);
        Assert.Equal([1u], g.NsPids);
        Assert.Equal([1u], g.NsTids);
        Assert.Equal([2u], h.NsPids);
        Assert.All(pstree.Where(e => e != g && e != h), e => Assert.Empty(e.NsPids));
        var ids = pstree.ToDictionary(e => e.Pid, e => dir.ReadOne<task_kobj_ids_entry>(ImageFile.Ids((int)e.Pid)));
        Assert.Equal(ids[g.Pid].PidNsId, ids[h.Pid].PidNsId);
        Assert.NotEqual(ids[1].PidNsId, ids[g.Pid].PidNsId);
        Assert.Equal(ids[1].PidNsId, ids[(uint)n].PidNsId);
        Assert.Equal(ids[g.Pid].PidNsId, ids[(uint)n].PidForChildrenNsId);
        Assert.True(ids[(uint)u].HasPidForChildrenNsId);
        Assert.DoesNotContain(ids[(uint)u].PidForChildrenNsId, ids.Values.Select(i => i.PidNsId));
        Assert.False(ids[1].HasPidForChildrenNsId);
    }
}
