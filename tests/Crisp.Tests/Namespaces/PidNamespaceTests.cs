using System.Text.Json;
using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Namespaces;

/// <summary>A tree that is PID 1 of its own pid namespace and has its own UTS namespace (pidns_tree under
/// `unshare --fork --pid --uts`: root, two children (one with a second thread), a grandchild, a zombie, hostname
/// and domainname set inside) goes
/// through two dump/restore cycles by the CLI: restored as crisp's sibling, then detached. After each restore
/// the test checks from outside what /proc shows (each task's NSpid: its host pid and the same virtual pid as
/// before; one pid namespace for the tree, not the host's; a uts namespace not the host's), and at the end each
/// task checks getpid()/getppid(), hostname and domainname from inside.</summary>
public class PidNamespaceTests(ITestOutputHelper output)
{
    /// <summary>Virtual pid → virtual parent pid of the tree as the workload built it (c is a's child, z a zombie).</summary>
    private sealed record Shape(int A, int B, int C, int Z)
    {
        public Dictionary<int, int> Parents => new() { [1] = 0, [A] = 1, [B] = 1, [C] = A, [Z] = 1 };
    }

    [RootFact]
    public void APidAndUtsNamespaceTreeSurvivesTwoCliCyclesAsSiblingThenDetached()
    {
        string exe = Support.Workloads.Build("pidns_tree");
        using var dir = new Live.TempDir();
        int unshare = StartInNamespaces(exe, dir.Path);
        int root = 0;
        bool unshareReaped = false;
        try
        {
            var words = WaitReady(dir.Path, unshare);
            root = Children(unshare).Single();
            var shape = AssertTree(root, int.Parse(words[2]), int.Parse(words[3]), int.Parse(words[4]));

            // Cycle 1: dump, restore as the caller's (this test's) child.
            string images1 = Path.Combine(dir.Path, "images1"), pidfile1 = Path.Combine(dir.Path, "root1.pid");
            Run("dump", "-t", root.ToString(), "-D", images1, "-v4", "-o", "dump.log");
            Live.ReapWithin(unshare);
            unshareReaped = true;
            AssertImages(images1, shape);
            Run("restore", "-D", images1, "-d", "--restore-sibling", "--pidfile", pidfile1, "-v4", "-o", "restore.log");
            root = int.Parse(File.ReadAllText(pidfile1).Trim());
            Assert.Equal(Environment.ProcessId, global::Crisp.Linux.Proc.ProcStat.Read(root).PPid);
            Assert.Equal(shape, AssertTree(root, shape.A, shape.B, shape.Z));

            // Cycle 2: the restored tree dumped again, restored detached (crisp's child, then orphaned).
            string images2 = Path.Combine(dir.Path, "images2"), pidfile2 = Path.Combine(dir.Path, "root2.pid");
            Run("dump", "-t", root.ToString(), "-D", images2, "-v4", "-o", "dump.log");
            Live.ReapWithin(root);
            AssertImages(images2, shape);
            var check = CrispCli.Run("restore", "--check-only", "-D", images2);
            Assert.True(check.ExitCode == 0, $"{check.Stdout}\n{check.Stderr}");
            Assert.Contains("4 task(s) in a new pid namespace", check.Stdout);
            Assert.Contains("new pid, uts namespace(s), all of kinds crisp restores", check.Stdout);
            Run("restore", "-D", images2, "-d", "--pidfile", pidfile2, "-v4", "-o", "restore.log");
            root = int.Parse(File.ReadAllText(pidfile2).Trim());
            Assert.Equal(shape, AssertTree(root, shape.A, shape.B, shape.Z));

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
                RawSyscall.TryCall(Sysno.kill, root, Live.SIGKILL);   // the init: the kernel kills the rest of its namespace
            if (!unshareReaped)
            {
                RawSyscall.TryCall(Sysno.kill, unshare, Live.SIGKILL);
                Live.ReapWithin(unshare);
            }
        }
    }

    /// <summary>`unshare --fork --pid --uts EXE DIR` in its own session, stdio on /dev/null: EXE is PID 1 of the
    /// new pid namespace, unshare's only child.</summary>
    internal static int StartInNamespaces(string exe, string dir) =>
        Spawn.Start("/usr/bin/unshare", ["unshare", "--fork", "--pid", "--uts", exe, dir],
            new SpawnOptions { NewSession = true, Opens = Live.DevNullStdio });

    internal static string[] WaitReady(string dir, int unshare)
    {
        string ready = Path.Combine(dir, "ready");
        Live.WaitFor(() =>
        {
            Assert.Null(Spawn.TryReap(unshare));
            return File.Exists(ready) && File.ReadAllText(ready).EndsWith('\n');
        }, "pidns_tree's ready line");
        var words = File.ReadAllText(ready).Trim().Split(' ');
        Assert.Equal(["ready", "1"], words[..2]);
        return words;
    }

    private static CrispCli.Result Run(params string[] args)
    {
        var r = CrispCli.Run(args);
        Assert.True(r.ExitCode == 0, $"crisp {string.Join(' ', args)}: exit {r.ExitCode}\n{r.Stderr}");
        return r;
    }

    /// <summary>From outside, by host pid: root, children and grandchild as the workload made them; each task's
    /// NSpid is [host pid, virtual pid]; all share one pid namespace, not ours, and one uts namespace, not ours.
    /// Returns the tree's virtual pids.</summary>
    private Shape AssertTree(int root, int a, int b, int z)
    {
        var self = (Pid: NsLink(Environment.ProcessId, "pid"), Uts: NsLink(Environment.ProcessId, "uts"));
        var pidNs = NsLink(root, "pid");
        var utsNs = NsLink(root, "uts");
        Assert.NotEqual(self.Pid, pidNs);
        Assert.NotEqual(self.Uts, utsNs);
        var byVirtual = new Dictionary<int, int>();   // virtual → host
        void Walk(int host)
        {
            var ns = global::Crisp.Linux.Proc.ProcStatus.Read(host).NSpid;
            output.WriteLine($"host {host}: NSpid {string.Join(' ', ns)}");
            Assert.True(ns.Length == 2 && ns[0] == host, $"host pid {host}: NSpid {string.Join(' ', ns)}");
            byVirtual[ns[1]] = host;
            if (global::Crisp.Linux.Proc.ProcStat.Read(host).State == 'Z')
                return;   // a zombie has no namespaces left to show
            Assert.Equal(pidNs, NsLink(host, "pid"));
            Assert.Equal(pidNs, NsLink(host, "pid_for_children"));
            Assert.Equal(utsNs, NsLink(host, "uts"));
            foreach (var task in Directory.EnumerateDirectories($"/proc/{host}/task").Select(d => int.Parse(Path.GetFileName(d))))
            {
                var tns = global::Crisp.Linux.Proc.ProcStatus.ReadThread(host, task).NSpid;
                Assert.True(tns.Length == 2 && tns[0] == task, $"thread {task} of {host}: NSpid {string.Join(' ', tns)}");
            }
            foreach (int child in Children(host))
                Walk(child);
        }
        Walk(root);
        Assert.Equal(5, byVirtual.Count);
        Assert.Equal(root, byVirtual[1]);
        int c = byVirtual.Keys.Single(v => v != 1 && v != a && v != b && v != z);
        Assert.Equal(2, Directory.EnumerateDirectories($"/proc/{byVirtual[b]}/task").Count());
        Assert.Equal('Z', global::Crisp.Linux.Proc.ProcStat.Read(byVirtual[z]).State);
        var shape = new Shape(a, b, c, z);
        foreach (var (vpid, vppid) in shape.Parents)
            if (vppid != 0)
                Assert.Equal(byVirtual[vppid], global::Crisp.Linux.Proc.ProcStat.Read(byVirtual[vpid]).PPid);
        return shape;
    }

    /// <summary>crit decodes every image; pstree.img holds the virtual pids; every task's ids name the same pid and
    /// uts namespaces, not crisp's (inventory root_ids); utsns-ID.img holds the names set inside.</summary>
    private static void AssertImages(string images, Shape shape)
    {
        Live.AssertCritDecodesAll(images);
        var dir = ImageDirectory.Open(images);
        var pstree = dir.ReadAll<pstree_entry>(ImageFile.Pstree);
        Assert.Equal(shape.Parents.OrderBy(p => p.Key), pstree.Select(e => KeyValuePair.Create((int)e.Pid, (int)e.Ppid)).OrderBy(p => p.Key));
        Assert.All(pstree.Where(e => e.Pid != shape.B), e => Assert.Equal([e.Pid], e.Threads));
        var b = pstree.Single(e => e.Pid == shape.B);
        Assert.True(b.Threads.Count == 2 && b.Threads[0] == b.Pid, $"b's threads: {string.Join(' ', b.Threads)}");
        Assert.True(File.Exists(Path.Combine(images, $"core-{b.Threads[1]}.img")));
        Assert.All(pstree, e => Assert.Equal((1u, 1u), (e.Pgid, e.Sid)));
        var own = dir.ReadOne<inventory_entry>(ImageFile.Inventory).RootIds;
        var ids = pstree.Where(e => e.Pid != shape.Z).Select(e => dir.ReadOne<task_kobj_ids_entry>(ImageFile.Ids(e.Pid))).ToList();
        Assert.Equal(4, ids.Count);
        Assert.Equal(7u << 8, dir.ReadOne<core_entry>(ImageFile.Core(shape.Z)).Tc.ExitCode);   // the zombie's wait status
        Assert.All(ids, i => Assert.Equal((ids[0].PidNsId, ids[0].UtsNsId, ids[0].MntNsId), (i.PidNsId, i.UtsNsId, i.MntNsId)));
        Assert.NotEqual(own.PidNsId, ids[0].PidNsId);
        Assert.NotEqual(own.UtsNsId, ids[0].UtsNsId);
        Assert.Equal(own.MntNsId, ids[0].MntNsId);
        Assert.Equal(own.NetNsId, ids[0].NetNsId);
        var uts = JsonDocument.Parse(Live.RunProcess("/usr/bin/crit", TimeSpan.FromSeconds(60), null, "show",
            Path.Combine(images, $"utsns-{ids[0].UtsNsId}.img")).Stdout).RootElement.GetProperty("entries")[0];
        Assert.Equal("crisp-pidns", uts.GetProperty("nodename").GetString());
        Assert.Equal("crisp.example", uts.GetProperty("domainname").GetString());
        var show = CrispCli.Run("show", images);
        Assert.True(show.ExitCode == 0, show.Stderr);
        Assert.Contains("  namespaces: new pid, uts namespace(s) for the tree", show.Stdout);
    }

    /// <summary>unshare and the pid namespace it made: SIGKILL to the namespace's init first (the kernel kills the
    /// rest of it; killing unshare alone would leave the tree running, orphaned), then to unshare, which is reaped.</summary>
    internal static void KillUnshare(int unshare)
    {
        try
        {
            foreach (int init in Children(unshare))
                RawSyscall.TryCall(Sysno.kill, init, Live.SIGKILL);
        }
        catch (IOException) { }     // unshare is gone already
        RawSyscall.TryCall(Sysno.kill, unshare, Live.SIGKILL);
        Live.ReapWithin(unshare);
    }

    internal static int[] Children(int pid) =>
        [.. File.ReadAllText($"/proc/{pid}/task/{pid}/children").Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse)];

    internal static string NsLink(int pid, string kind) => new FileInfo($"/proc/{pid}/ns/{kind}").LinkTarget!;
}
