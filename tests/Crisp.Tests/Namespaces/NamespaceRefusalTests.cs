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
    public void ANestedPidNamespaceInsideTheTreeIsRefusedAtDumpNamingTheTask()
    {
        using var dir = new Live.TempDir();
        // PID 1 (sh, its own session) runs unshare, which makes a pid namespace inside the tree's for its sleep.
        int unshare = Spawn.Start("/usr/bin/unshare", ["unshare", "--fork", "--pid", "--uts", "setsid", "sh", "-c",
            "unshare --fork --pid sleep 1000 & wait"], new SpawnOptions { NewSession = true, Opens = Live.DevNullStdio });
        try
        {
            Live.WaitFor(() => PidNamespaceTests.Children(unshare) is [var sh] && PidNamespaceTests.Children(sh) is [var u]
                && PidNamespaceTests.Children(u).Length == 1, "sh, unshare and sleep to run");
            int root = PidNamespaceTests.Children(unshare).Single();
            int inner = PidNamespaceTests.Children(root).Single();
            var r = CrispCli.Run("dump", "-t", root.ToString(), "-D", dir.Images);
            Assert.Equal(1, r.ExitCode);
            FailureSafetyTests.AssertOneLine(r.Stderr, "nested pid namespaces are not supported yet");
            Assert.Contains($"task {inner} ", r.Stderr);
            AssertRunsUntraced(root);
            AssertRunsUntraced(inner);
        }
        finally
        {
            PidNamespaceTests.KillUnshare(unshare);
        }
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
            "ids-2.img: task 2 is in another pid namespace than the root task 1: nested pid namespaces are not supported yet");
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
                if (comm is "pidns_tree" or "crisp-puppet" && PidNamespaceTests.NsLink(pid, "pid") != ours)
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
