using System.Security.Cryptography;
using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Linux.Proc;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Resources.Mounts;

/// <summary>A busybox container made by the test: `unshare --fork --pid --mount --uts --ipc --propagation private`,
/// a shell that builds its mounts under a rootfs (bound onto itself): proc, sysfs, a tmpfs /dev with device
/// nodes and a symlink, devpts (newinstance, ptmxmode), mqueue, a tmpfs /dev/shm, a tmpfs /data with files
/// (owners, modes, a hard link, a symlink, a fifo) made shared, a peer bind of /data/sub and a slave bind of
/// /data, a bind of a rootfs directory (the counter's), a read-only nosuid,nodev re-bind, a masked file (bound
/// from the container's /dev/null), an empty read-only tmpfs over a directory, and an external bind from the host
/// (/ext); mntns_tree pivots into it as init and forks a child writing a counter there. Dumped with
/// --external mnt[/ext]:hostext and restored with --root and --external mnt[hostext]:PATH twice (as a sibling,
/// then detached): after each restore the mount table is compared field by field with the original (mount ids
/// aside: parent, root, type, source, options, super options, peer and master groups by their mount points) and
/// the counter goes on; at the end the container checks its files from inside. Refused in one line, nothing
/// left behind: a dump without the external mount marked, a restore with a --root that is not a directory and
/// one without the external mount. The host's own mount table is the same before and after.</summary>
public class MountNamespaceTests(ITestOutputHelper output)
{
    private const string ExternalKey = "hostext";

    [RootFact]
    public void ABusyboxContainerWithItsOwnMountTreeSurvivesTwoCycles()
    {
        Assert.True(File.Exists("/bin/busybox"), "/bin/busybox is missing (apt-get install busybox-static)");
        string init = Support.Workloads.Build("mntns_tree", "-static");
        string hostMounts = File.ReadAllText("/proc/self/mountinfo");
        using var dir = new Live.TempDir();
        string rootfs = Path.Combine(dir.Path, "rootfs"), ext = Path.Combine(dir.Path, "hostext");
        MakeRootfs(rootfs, ext, init);
        int unshare = Spawn.Start("/usr/bin/unshare",
            ["unshare", "--fork", "--pid", "--mount", "--uts", "--ipc", "--propagation", "private", "/bin/sh", "-c", SetupScript(rootfs, ext)],
            new SpawnOptions { NewSession = true, Opens = Live.DevNullStdio });
        int root = 0;
        bool unshareReaped = false;
        try
        {
            Live.WaitFor(() =>
            {
                Assert.True(Spawn.TryReap(unshare) is null, $"the container's setup failed: {ReadOrEmpty(Path.Combine(ext, "setup.log"))}");
                return File.Exists(Path.Combine(ext, "ready")) && File.ReadAllText(Path.Combine(ext, "ready")).EndsWith('\n');
            }, "mntns_tree's ready line");
            root = Crisp.Tests.Namespaces.PidNamespaceTests.Children(unshare).Single();
            var original = Table(File.ReadAllText(Path.Combine(ext, "mountinfo-0")));
            Assert.Equal(original, Table(File.ReadAllText($"/proc/{root}/mountinfo")));
            AssertOvermounts(root);
            output.WriteLine(string.Join("\n", original));

            // Refused: the external bind is neither in the tree nor marked; the container runs on, untraced.
            string refused = Path.Combine(dir.Path, "refused");
            var r = CrispCli.Run("dump", "-t", root.ToString(), "-D", refused);
            Assert.NotEqual(0, r.ExitCode);
            string line = Assert.Single(r.Stderr.Trim().Split('\n'));
            Assert.Matches(@"mount \d+ \(/ext, type \w+\) is neither in the tree nor external", line);
            Assert.Equal(0, ProcStatus.Read(root).TracerPid);
            long before = Counter(rootfs);
            Live.WaitFor(() => Counter(rootfs) > before, "the counter after the refused dump");

            // Cycle 1: dump, then bad restores (nothing left behind), then restore as this test's child.
            string images1 = Path.Combine(dir.Path, "images1");
            Run("dump", "-t", root.ToString(), "-D", images1, "--external", $"mnt[/ext]:{ExternalKey}", "-v4", "-o", "dump.log");
            Live.ReapWithin(unshare);
            unshareReaped = true;
            long dumped = Counter(rootfs);
            AssertImages(images1, original.Count);
            RefusedRestores(images1, rootfs, ext, hostMounts);
            root = Restore(images1, rootfs, ext, sibling: true);
            Assert.Equal(Environment.ProcessId, ProcStat.Read(root).PPid);
            Assert.Equal(original, Table(File.ReadAllText($"/proc/{root}/mountinfo")));
            AssertOvermounts(root);
            Live.WaitFor(() => Counter(rootfs) > dumped, "the restored child's counter to go on");

            // Cycle 2: the restored container dumped again (with CRIU's other spelling), restored detached.
            string images2 = Path.Combine(dir.Path, "images2");
            Run("dump", "-t", root.ToString(), "-D", images2, "--ext-mount-map", $"/ext:{ExternalKey}", "-v4", "-o", "dump.log");
            Live.ReapWithin(root);
            dumped = Counter(rootfs);
            AssertImages(images2, original.Count);
            root = Restore(images2, rootfs, ext, sibling: false);
            Assert.Equal(original, Table(File.ReadAllText($"/proc/{root}/mountinfo")));
            AssertOvermounts(root);
            Live.WaitFor(() => Counter(rootfs) > dumped, "the restored child's counter to go on");

            global::Crisp.Linux.Signals.Kill(root, Live.SIGUSR1);
            string verdict = Path.Combine(ext, "verdict");
            Live.WaitFor(() => File.Exists(verdict) && File.ReadAllText(verdict).EndsWith('\n'), "the container's verdict", TimeSpan.FromSeconds(30));
            Assert.True(File.ReadAllText(verdict).Trim() == "PASS", $"{File.ReadAllText(verdict)}\n{ReadOrEmpty(Path.Combine(ext, "fail-child"))}");
            Assert.Equal(original, Table(File.ReadAllText(Path.Combine(ext, "mountinfo-after"))));
            root = 0;
        }
        finally
        {
            if (root > 0)
                RawSyscall.TryCall(Sysno.kill, root, Live.SIGKILL);
            if (!unshareReaped)
            {
                RawSyscall.TryCall(Sysno.kill, unshare, Live.SIGKILL);
                Live.ReapWithin(unshare);
            }
        }
        Live.WaitFor(() => File.ReadAllText("/proc/self/mountinfo") == hostMounts, "the host's mount table as it was");
    }

    private int Restore(string images, string rootfs, string ext, bool sibling)
    {
        string pidfile = Path.Combine(Path.GetDirectoryName(images)!, Path.GetFileName(images) + ".pid");
        Run(["restore", "-D", images, "-d", .. (sibling ? ["--restore-sibling"] : Array.Empty<string>()), "--root", rootfs,
            "--external", $"mnt[{ExternalKey}]:{ext}", "--pidfile", pidfile, "-v4", "-o", "restore.log"]);
        int root = int.Parse(File.ReadAllText(pidfile).Trim());
        Assert.Equal(["ns", "1"], [ProcStatus.Read(root).NSpid.Length == 2 ? "ns" : "host", ProcStatus.Read(root).NSpid[^1].ToString()]);
        Assert.NotEqual(Crisp.Tests.Namespaces.PidNamespaceTests.NsLink(Environment.ProcessId, "mnt"), Crisp.Tests.Namespaces.PidNamespaceTests.NsLink(root, "mnt"));
        return root;
    }

    /// <summary>A --root that is a file, and a missing external mount: one line each; the images, the host's
    /// mount table and the set of our children as they were.</summary>
    private static void RefusedRestores(string images, string rootfs, string ext, string hostMounts)
    {
        string digest = Digest(images);
        string notDir = Path.Combine(rootfs, "srv", "ro", "file");
        var bad = CrispCli.Run("restore", "-D", images, "-d", "--root", notDir, "--external", $"mnt[{ExternalKey}]:{ext}");
        Assert.NotEqual(0, bad.ExitCode);
        Assert.Equal($"crisp: error: --root {notDir}: not a directory", Assert.Single(bad.Stderr.Trim().Split('\n')));
        var noExt = CrispCli.Run("restore", "-D", images, "-d", "--root", rootfs);
        Assert.NotEqual(0, noExt.ExitCode);
        Assert.Matches($@"mount \d+ \(/ext, type \w+\) is external \({ExternalKey}\): restore needs --external mnt\[{ExternalKey}\]:PATH",
            Assert.Single(noExt.Stderr.Trim().Split('\n')));
        var gone = CrispCli.Run("restore", "-D", images, "-d", "--root", rootfs, "--external", $"mnt[{ExternalKey}]:{ext}-gone");
        Assert.NotEqual(0, gone.ExitCode);
        Assert.Contains("does not exist", Assert.Single(gone.Stderr.Trim().Split('\n')));
        // A failure once the new tree is built and the root is in it: the namespace goes with the puppets.
        foreach (string point in new[] { "restore:puppets", "restore:files" })
        {
            var late = Live.Crisp(new Dictionary<string, string> { [FaultInjection.Variable] = point }, "restore", "-D", images, "-d",
                "--root", rootfs, "--external", $"mnt[{ExternalKey}]:{ext}");
            Assert.NotEqual(0, late.ExitCode);
            Assert.Single(late.Stderr.Trim().Split('\n'));
        }
        Assert.Equal(digest, Digest(images));
        Assert.Equal(hostMounts, File.ReadAllText("/proc/self/mountinfo"));
        // No task is left in a mount namespace built from the rootfs (a holder or a puppet would see its root).
        Assert.DoesNotContain(Directory.EnumerateDirectories("/proc").Where(d => int.TryParse(Path.GetFileName(d), out _)),
            d => ReadOrEmpty(Path.Combine(d, "mountinfo")).Contains($" {rootfs} / "));
    }

    /// <summary>The overmounts as the shell made them: /run shows the tmpfs on top, and /opt/a the one above
    /// /opt/a/b; in a private copy of the container's namespace (busybox's unshare inside it), with the covers
    /// unmounted, the hidden tmpfs, the one mounted on it, and the one under /opt/a show their own files.</summary>
    private static void AssertOvermounts(int root)
    {
        // The tmpfs's extended attributes (a user one on a file, a trusted one on a directory).
        Assert.Equal("kept", System.Text.Encoding.UTF8.GetString(Xattr($"/proc/{root}/root/data/hello", "user.crisp")));
        Assert.Equal("dir", System.Text.Encoding.UTF8.GetString(Xattr($"/proc/{root}/root/data/sub", "trusted.crisp")));
        Assert.Equal("over\n", File.ReadAllText($"/proc/{root}/root/run/over"));
        Assert.False(File.Exists($"/proc/{root}/root/run/under"));
        Assert.False(Directory.Exists($"/proc/{root}/root/opt/a/b"));
        var r = Live.RunProcess("/usr/bin/nsenter", TimeSpan.FromSeconds(30), null, "-t", root.ToString(), "-m", "--",
            "/bin/busybox", "unshare", "-m", "--propagation", "private", "/bin/busybox", "sh", "-c",
            "B=/bin/busybox; $B umount -l /run && $B cat /run/under /run/inner/x && $B umount -l /opt/a && $B cat /opt/a/b/file");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal("under\ninner\ndeep\n", r.Stdout);
    }

    private static byte[] Xattr(string path, string name)
    {
        var r = Live.RunProcess("/usr/bin/python3", TimeSpan.FromSeconds(30), null, "-c", $"import os,sys; sys.stdout.write(os.getxattr('{path}', '{name}').hex())");
        Assert.True(r.ExitCode == 0, r.Stderr);
        return Convert.FromHexString(r.Stdout.Trim());
    }

    private static string ReadOrEmpty(string path)
    {
        try { return File.ReadAllText(path); }
        catch (IOException) { return ""; }
        catch (UnauthorizedAccessException) { return ""; }
    }

    /// <summary>crit decodes every image; mountpoints-NSID.img has every mount, the tree's mnt ns id is not
    /// crisp's; each tmpfs's archive is a gzip'd tar GNU tar lists (with the files the shell made).</summary>
    private void AssertImages(string images, int mounts)
    {
        Live.AssertCritDecodesAll(images);
        var dir = ImageDirectory.Open(images);
        var own = dir.ReadOne<inventory_entry>(ImageFile.Inventory).RootIds;
        var ids = dir.ReadOne<task_kobj_ids_entry>(ImageFile.Ids(1));
        Assert.NotEqual(own.MntNsId, ids.MntNsId);
        var entries = dir.ReadAll<mnt_entry>(ImageFile.Mountpoints(ids.MntNsId));
        Assert.Equal(mounts, entries.Count);
        Assert.Equal(ExternalKey, entries.Single(e => e.Mountpoint == "/ext").ExtKey);
        Assert.Equal(5u, entries.Single(e => e.Mountpoint == "/data").Fstype);   // CRIU's TMPFS
        var data = entries.Single(e => e.Mountpoint == "/data");
        string tar = Path.Combine(images, $"tmpfs-dev-{data.RootDev}.tar.gz.img");
        var list = Live.RunProcess("/usr/bin/tar", TimeSpan.FromSeconds(30), null, "-tzvf", tar);
        Assert.True(list.ExitCode == 0, list.Stderr);
        output.WriteLine(list.Stdout);
        foreach (string name in new[] { "./hello", "./sub/deep", "./link -> hello", "-rw-r----- 1000/1000", "prw-r--r-- 0/0" })
            Assert.Contains(name, list.Stdout);
        Assert.Matches(@"\./(hello|hard) link to \./(hard|hello)", list.Stdout);
        var runs = entries.Where(e => e.Mountpoint == "/run").ToList();
        Assert.Equal(2, runs.Count);
        var under = Live.RunProcess("/usr/bin/tar", TimeSpan.FromSeconds(30), null, "-tzf", Path.Combine(images, $"tmpfs-dev-{runs[0].RootDev}.tar.gz.img"));
        Assert.Contains("./under", under.Stdout);
        Assert.DoesNotContain("./over", under.Stdout);
        var dev = entries.Single(e => e.Mountpoint == "/dev");
        var devList = Live.RunProcess("/usr/bin/tar", TimeSpan.FromSeconds(30), null, "-tzvf", Path.Combine(images, $"tmpfs-dev-{dev.RootDev}.tar.gz.img"));
        Assert.Matches(@"crw-rw-rw- 0/0\s+1,3 .* \./null", devList.Stdout);
        // As CRIU's tar --one-file-system: the mount points on a tmpfs are in its archive (CRIU's restore needs them),
        // not what is mounted there; no fsname (CRIU refuses it outside its AUTO type).
        Assert.Contains("./pts/", devList.Stdout);
        Assert.DoesNotContain("./pts/ptmx", devList.Stdout);
        Assert.All(entries, e => Assert.False(e.HasFsname, $"{e.Mountpoint} has fsname {e.Fsname}"));
        // CRIU writes the mounts newest first: the same table in that order plans every mount, parents first and
        // binds after what they are bound from.
        var reversed = Crisp.Resources.Mounts.MountPlan.Of(entries.AsEnumerable().Reverse().ToList(), "newest first").Mounts.ToList();
        Assert.Equal(entries.Select(e => e.MntId).Order(), reversed.Select(m => m.Entry.MntId).Order());
        for (int i = 1; i < reversed.Count; i++)
        {
            Assert.Contains(reversed.Take(i), m => m.Entry.MntId == reversed[i].Entry.ParentMntId);
            if (reversed[i].From is { } from)
                Assert.Contains(reversed.Take(i), m => m == from);
        }
        var show = CrispCli.Run("show", images);
        Assert.True(show.ExitCode == 0, show.Stderr);
    }

    /// <summary>A mount table with mount ids left out: per mount point, its parent's mount point, root, type,
    /// source, options, super options and propagation (peers and masters named by their mount points).</summary>
    internal static List<string> Table(string mountinfo)
    {
        var mounts = MountInfo.Parse(mountinfo);
        var byId = mounts.ToDictionary(m => m.MountId);
        string Peers(int group) => string.Join(",", mounts.Where(m => group != 0 && m.SharedGroup == group).Select(m => m.MountPoint).Order(StringComparer.Ordinal));
        return mounts.Select(m =>
        {
            string parent = byId.TryGetValue(m.ParentId, out var p) ? p.MountPoint : "-";
            string propagation = $"shared[{Peers(m.SharedGroup)}] master[{Peers(m.MasterGroup)}]{(m.OptionalFields.Contains("unbindable") ? " unbindable" : "")}";
            return $"{m.MountPoint} on {parent}: root {m.Root} {m.FsType} {m.Source} {m.Options} {m.SuperOptions} {propagation}";
        }).Order(StringComparer.Ordinal).ToList();
    }

    private static void MakeRootfs(string rootfs, string ext, string init)
    {
        foreach (string d in new[] { "bin", "proc", "sys", "dev", "data", "etc", "ext", "mnt/bind", "mnt/ro", "mnt/peer", "mnt/slave", "srv/rw", "srv/ro", "srv/masked", "run", "opt/a/b" })
            Directory.CreateDirectory(Path.Combine(rootfs, d));
        Directory.CreateDirectory(ext);
        File.Copy("/bin/busybox", Path.Combine(rootfs, "bin", "busybox"));
        File.CreateSymbolicLink(Path.Combine(rootfs, "bin", "sh"), "busybox");
        File.Copy(init, Path.Combine(rootfs, "init"));
        File.WriteAllText(Path.Combine(rootfs, "srv", "ro", "file"), "ro\n");
        File.WriteAllText(Path.Combine(rootfs, "etc", "secret"), "secret\n");
    }

    private static string SetupScript(string r, string h) => $"""
        set -e
        exec 2>{h}/setup.log
        R={r}
        mount --bind $R $R
        mount -t proc proc $R/proc
        mount -t sysfs sysfs $R/sys
        mount -t tmpfs -o mode=755,size=2m tmpfs $R/dev
        mknod -m 666 $R/dev/null c 1 3
        mknod -m 666 $R/dev/zero c 1 5
        ln -s /proc/self/fd $R/dev/fd
        mkdir $R/dev/pts $R/dev/mqueue $R/dev/shm
        mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts $R/dev/pts
        mount -t mqueue -o nosuid,nodev,noexec mqueue $R/dev/mqueue
        mount -t tmpfs -o nosuid,nodev,size=1m,mode=1777 shm $R/dev/shm
        mount -t tmpfs -o size=4m,mode=755 data $R/data
        echo hello > $R/data/hello
        chmod 644 $R/data/hello
        mkdir $R/data/sub
        echo deep > $R/data/sub/deep
        chown 1000:1000 $R/data/sub/deep
        chmod 640 $R/data/sub/deep
        ln -s hello $R/data/link
        ln $R/data/hello $R/data/hard
        mkfifo $R/data/fifo
        /usr/bin/python3 -c "import os; os.setxattr('$R/data/hello', 'user.crisp', b'kept'); os.setxattr('$R/data/sub', 'trusted.crisp', b'dir')"
        mount --make-shared $R/data
        mount --bind $R/data/sub $R/mnt/peer
        mount --bind $R/data $R/mnt/slave
        mount --make-slave $R/mnt/slave
        mount --bind $R/srv/rw $R/mnt/bind
        mount --bind $R/srv/ro $R/mnt/ro
        mount -o remount,bind,ro,nosuid,nodev $R/mnt/ro
        mount --bind $R/dev/null $R/etc/secret
        mount -t tmpfs -o ro,size=4k,mode=500 tmpfs $R/srv/masked
        mount --bind {h} $R/ext
        mount -t tmpfs -o size=1m,mode=755 under $R/run
        echo under > $R/run/under
        mkdir $R/run/inner
        mount -t tmpfs -o size=1m inner $R/run/inner
        echo inner > $R/run/inner/x
        mount -t tmpfs -o size=1m,mode=711 over $R/run
        echo over > $R/run/over
        mount -t tmpfs -o size=1m deep $R/opt/a/b
        echo deep > $R/opt/a/b/file
        mount -t tmpfs -o size=1m,mode=700 above $R/opt/a
        cd $R
        exec ./init <$R/dev/null >$R/ext/out.log 2>&1
        """;

    private static long Counter(string rootfs)
    {
        string text = ReadOrEmpty(Path.Combine(rootfs, "srv", "rw", "counter")).Trim();
        return long.TryParse(text, out long v) ? v : 0;
    }


    private static string Digest(string dir) => Convert.ToHexString(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(string.Join("\n",
        Directory.EnumerateFiles(dir).Order(StringComparer.Ordinal).Select(f => Path.GetFileName(f) + ":" + Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f))))))));

    private static void Run(params string[] args)
    {
        var r = CrispCli.Run(args);
        Assert.True(r.ExitCode == 0, $"crisp {string.Join(' ', args)}: exit {r.ExitCode}\n{r.Stderr}");
    }
}
