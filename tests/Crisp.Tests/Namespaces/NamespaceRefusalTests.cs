using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Google.Protobuf;

namespace Crisp.Tests.Namespaces;

/// <summary>What crisp cannot carry of namespaces yet is refused in one line naming it. At dump the tree runs on
/// untraced; at restore the images stay byte for byte as they were and no task is left behind.</summary>
public class NamespaceRefusalTests
{
    [RootFact]
    public void ATreeInAMountNamespaceWithTheHostsMountsIsRefusedAtDumpAndRunsOn() =>
        // unshare --mount copies the host's mounts (devtmpfs, cgroup, ...): not the tree's, not external.
        AssertDumpRefused(["--pid", "--uts", "--mount-proc"], "is neither in the tree nor external", @"mount \d+ \(/\S*, type \S+\) is neither in the tree nor external");

    [RootFact]
    public void ATreeInAUserNamespaceOfItsOwnIsRefusedAtDumpAndRunsOn() =>
        AssertDumpRefused(["--user", "--map-root-user", "--pid", "--uts"], "user namespace", "user namespace");

    /// <summary>pidns_tree under `unshare --fork FLAGS`: its dump fails with one line, and the tree runs on untraced.</summary>
    private static void AssertDumpRefused(string[] flags, string line, string pattern)
    {
        string exe = Support.Workloads.Build("pidns_tree");
        using var dir = new Live.TempDir();
        int unshare = Spawn.Start("/usr/bin/unshare", ["unshare", "--fork", .. flags, exe, dir.Path],
            new SpawnOptions { NewSession = true, Opens = Live.DevNullStdio });
        try
        {
            PidNamespaceTests.WaitReady(dir.Path, unshare);
            int root = PidNamespaceTests.Children(unshare).Single();
            var r = CrispCli.Run("dump", "-t", root.ToString(), "-D", dir.Images);
            Assert.Equal(1, r.ExitCode);
            FailureSafetyTests.AssertOneLine(r.Stderr, line);
            Assert.Matches(pattern, r.Stderr);
            AssertRunsUntraced(root);
        }
        finally
        {
            PidNamespaceTests.KillUnshare(unshare);
        }
    }

    [RootFact]
    public void ANestedUtsNamespaceInsideTheTreeIsRefusedAtDumpNamingTheTask() =>
        // PID 1 (sh, its own session) runs unshare, which execs sleep in a uts namespace of its own.
        AssertNestedRefused(_ => "unshare --uts sleep 1000 & wait", sh => PidNamespaceTests.Children(sh) is [var s] ? s : 0,
            "nested uts namespaces are not supported yet");

    [RootFact]
    public void APidNamespaceJoinedBySetnsIsRefusedAtDumpNamingTheTask() =>
        // unshare makes a nested pid namespace for its sh/sleep (carried), which writes its host pid (cut's parent
        // as the host's /proc shows it); nsenter joins that namespace by setns and forks there: the namespace's init
        // is not nsenter's child, which crisp cannot re-make.
        AssertNestedRefused(dir => $"unshare --fork --pid sh -c 'cut -d\" \" -f4 /proc/self/stat > {dir}/init; exec sleep 1000' & " +
            $"while [ ! -s {dir}/init ]; do sleep 0.05; done; nsenter -t $(cat {dir}/init) --pid sleep 1000 & wait",
            sh => PidNamespaceTests.Children(sh) is [_, var nsenter] && PidNamespaceTests.Children(nsenter) is [var s] ? s : 0,
            "nested pid namespaces are supported only as unshare makes them");

    /// <summary>A tree that is PID 1 (sh) of a pid namespace running <paramref name="script"/> (given a scratch
    /// dir): its dump fails with
    /// one line naming the task <paramref name="refused"/> finds (0 until it runs), and every task runs on untraced.</summary>
    private static void AssertNestedRefused(Func<string, string> script, Func<int, int> refused, string line)
    {
        using var dir = new Live.TempDir();
        int unshare = Spawn.Start("/usr/bin/unshare", ["unshare", "--fork", "--pid", "--uts", "setsid", "sh", "-c", script(dir.Path)],
            new SpawnOptions { NewSession = true, Opens = Live.DevNullStdio });
        try
        {
            int inner = 0;
            Live.WaitFor(() => PidNamespaceTests.Children(unshare) is [var sh] && (inner = refused(sh)) > 0
                && File.ReadAllText($"/proc/{inner}/comm").Trim() == "sleep", "the script's tasks to run");
            int root = PidNamespaceTests.Children(unshare).Single();
            var r = CrispCli.Run("dump", "-t", root.ToString(), "-D", dir.Images);
            Assert.Equal(1, r.ExitCode);
            FailureSafetyTests.AssertOneLine(r.Stderr, line);
            Assert.Contains($"task {inner} ", r.Stderr);
            AssertRunsUntraced(root);
            AssertRunsUntraced(inner);
        }
        finally
        {
            PidNamespaceTests.KillUnshare(unshare);
        }
    }

    /// <summary>One dump of pidns_nested (1 root; 2 n, which made nested namespace of 4 g (its pid 1) and 5 h; 3 u,
    /// unshared without a child), then restores of copies whose nesting does not hold together.</summary>
    [RootFact]
    public void InconsistentPidNamespaceNestingIsRefusedInOneLineLeavingNothing()
    {
        string exe = Support.Workloads.Build("pidns_nested");
        using var dir = new Live.TempDir();
        int unshare = NestedPidNamespaceTests.Start(exe, dir.Path);
        try
        {
            var words = PidNamespaceTests.WaitReady(dir.Path, unshare);
            Assert.Equal(["2", "3"], words[2..]);
            int root = PidNamespaceTests.Children(unshare).Single();
            var dump = CrispCli.Run("dump", "-t", root.ToString(), "-D", dir.Images);
            Assert.True(dump.ExitCode == 0, dump.Stderr);
        }
        finally
        {
            PidNamespaceTests.KillUnshare(unshare);
        }
        AssertRefused(dir, "no-levels", images => EditPstree(images, 5, e => { e.NsPids.Clear(); e.NsTids.Clear(); }),
            "pstree.img: tasks 4 and 5 are in the same pid namespace");
        AssertRefused(dir, "two-inits", images => EditPstree(images, 5, e => { e.NsPids[0] = 1; e.NsTids[0] = 1; }),
            "has 2 tasks with pid 1 (4, 5), not one");
        AssertRefused(dir, "tids", images => EditPstree(images, 4, e => e.NsTids.Clear()),
            "pstree.img: task 4 has 0 ns_tids for 1 thread(s) at 1 nested pid namespace level(s)");
        AssertRefused(dir, "no-for-children", images => EditIds(images, 2, ids => ids.ClearPidForChildrenNsId()),
            "ids-2.img: task 2 has children in a nested pid namespace but no pid_for_children_ns_id");
        AssertRefused(dir, "init-elsewhere", images => EditPstree(images, 4, e => e.Ppid = 3),
            "ids-2.img: task 2's pid_for_children_ns_id");
    }

    private static void EditPstree(string images, int pid, Action<pstree_entry> edit)
    {
        var dir = ImageDirectory.Open(images);
        var entries = dir.ReadAll<pstree_entry>(ImageFile.Pstree);
        edit(entries.Single(e => e.Pid == pid));
        dir.Write(ImageFile.Pstree, [.. entries]);
    }

    /// <summary>One dump of pidns_tree, then restores of edited copies: a namespace kind this crisp does not know
    /// (an unknown field of the ids), a mount namespace of the tree's own without its mountpoints image,
    /// a task in another pid namespace than the root's, a missing utsns image.</summary>
    [RootFact]
    public void NamespacesTheRestoreCannotMakeAreRefusedInOneLineLeavingNothing()
    {
        string exe = Support.Workloads.Build("pidns_tree");
        using var dir = new Live.TempDir();
        int unshare = PidNamespaceTests.StartInNamespaces(exe, dir.Path);
        try
        {
            PidNamespaceTests.WaitReady(dir.Path, unshare);
            int root = PidNamespaceTests.Children(unshare).Single();
            var dump = CrispCli.Run("dump", "-t", root.ToString(), "-D", dir.Images);
            Assert.True(dump.ExitCode == 0, dump.Stderr);
        }
        finally
        {
            PidNamespaceTests.KillUnshare(unshare);
        }

        AssertRefused(dir, "unknown-kind", images => EditIds(images, 1, ids => ids.MergeFrom(new byte[] { 13 << 3, 7 })),
            "ids-1.img: the ids name a kind of namespace crisp does not know (task_kobj_ids_entry field 13)");
        AssertRefused(dir, "own-mnt", images =>
            {
                foreach (var f in Directory.EnumerateFiles(images, "ids-*.img"))
                    EditIds(images, int.Parse(Path.GetFileNameWithoutExtension(f)[4..]), ids => ids.MntNsId = 999);
            },
            "mountpoints-999.img: missing (the root task has a mount namespace of its own)");
        AssertRefused(dir, "nested-pid", images => EditIds(images, 2, ids => ids.PidNsId = 999),
            "ids-2.img: task 2 is in another pid namespace than the root task 1, but pstree.img gives it no pids below the tree's (ns_pids)");
        AssertRefused(dir, "no-utsns", images => File.Delete(Directory.EnumerateFiles(images, "utsns-*.img").Single()),
            "(the root task has a uts namespace of its own)");
    }

    private static void AssertRefused(Live.TempDir dir, string name, Action<string> edit, string expected)
    {
        string images = Path.Combine(dir.Path, name);
        Directory.CreateDirectory(images);
        File.SetUnixFileMode(images, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        foreach (var f in Directory.EnumerateFiles(dir.Images))
            File.Copy(f, Path.Combine(images, Path.GetFileName(f)));
        edit(images);
        var hashes = Live.Hashes(images);
        var before = TreeTasks();
        var r = CrispCli.Run("restore", "-d", "--skip-image-verify", "-D", images);
        Assert.Equal(1, r.ExitCode);
        FailureSafetyTests.AssertOneLine(r.Stderr, expected);
        Assert.Equal(hashes, Live.Hashes(images));
        Assert.Empty(TreeTasks().Except(before));
    }

    private static void EditIds(string images, int pid, Action<task_kobj_ids_entry> edit)
    {
        var dir = ImageDirectory.Open(images);
        var ids = dir.ReadOne<task_kobj_ids_entry>(ImageFile.Ids(pid));
        edit(ids);
        dir.Write(ImageFile.Ids(pid), ids);
    }

    /// <summary>Tasks that a restore of the tree would have left: the workload or a puppet, in a pid namespace not ours.</summary>
    private static HashSet<int> TreeTasks()
    {
        string ours = PidNamespaceTests.NsLink(Environment.ProcessId, "pid");
        var found = new HashSet<int>();
        foreach (var d in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(d), out int pid))
                continue;
            try
            {
                string comm = File.ReadAllText($"/proc/{pid}/comm").Trim();
                if (comm is "pidns_tree" or "pidns_nested" or "crisp-puppet" && PidNamespaceTests.NsLink(pid, "pid") != ours)
                    found.Add(pid);
            }
            catch (IOException) { }
        }
        return found;
    }

    private static void AssertRunsUntraced(int pid)
    {
        var status = global::Crisp.Linux.Proc.ProcStatus.Read(pid);
        Assert.Equal(0, status.TracerPid);
        Assert.True(status.State is 'S' or 'R', $"{pid} is {status.State}");
    }
}
