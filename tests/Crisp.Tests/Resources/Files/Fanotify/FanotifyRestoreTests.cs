using System.Text.Json;
using Crisp.Dump;
using Crisp.Linux;
using Crisp.Restore;
using Crisp.Tests.Images;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;

namespace Crisp.Tests.Resources.Files.Fanotify;

/// <summary>A fanotify group with inode marks (a file; a directory with FAN_EVENT_ON_CHILD; a child file's
/// ignored mask that survives modification; a child directory's FAN_MARK_IGNORE mask) and a mount mark on a tmpfs of the test's own, dumped and
/// restored twice, then checked by the workload itself (tests/workloads/fanotify_state.c): same fdinfo
/// marks, and real events with the right masks and event fds. A filesystem mark is refused by name; a
/// marked file or mount gone by restore time fails the restore in one line.</summary>
public class FanotifyRestoreTests
{
    private const int SIGUSR1 = 10, SIGKILL = 9;

    private sealed class Running : IDisposable
    {
        public string Dir { get; } = Directory.CreateTempSubdirectory("crisp-fanotify-").FullName;
        public string? Mount;
        public int Pid;
        public bool Alive;
        public string Err => File.Exists(Path.Combine(Dir, "err")) ? File.ReadAllText(Path.Combine(Dir, "err")) : "";

        public void Dispose()
        {
            if (Alive)
            {
                RawSyscall.TryCall(Sysno.kill, Pid, SIGKILL);
                try { Spawn.Reap(Pid); } catch (SyscallException) { }
            }
            if (Mount is not null)
                Live.RunProcess("umount", TimeSpan.FromSeconds(30), null, "-l", Mount);
            Directory.Delete(Dir, recursive: true);
        }
    }

    /// <summary>Starts the workload in DIR/w, with a tmpfs at DIR/mnt for the mount mark if asked.</summary>
    private static Running Start(bool mount, params string[] extra)
    {
        var r = new Running();
        try
        {
            string work = Path.Combine(r.Dir, "w");
            Directory.CreateDirectory(work);
            if (mount)
            {
                string mnt = Path.Combine(r.Dir, "mnt");
                Directory.CreateDirectory(mnt);
                var m = Live.RunProcess("mount", TimeSpan.FromSeconds(30), null, "-t", "tmpfs", "-o", "size=1m", "crisp-fanotify", mnt);
                Assert.True(m.ExitCode == 0, $"mount tmpfs: {m.Stderr}");
                r.Mount = mnt;
            }
            string exe = Support.Workloads.Build("fanotify_state");
            const int w = FileIo.O_WRONLY | FileIo.O_CREAT | FileIo.O_TRUNC;
            r.Pid = Spawn.Start(exe, [exe, work, r.Mount ?? "-", .. extra], new SpawnOptions
            {
                NewSession = true,
                Opens = [(0, "/dev/null", FileIo.O_RDONLY, 0), (1, Path.Combine(r.Dir, "out"), w, 0x1a4), (2, Path.Combine(r.Dir, "err"), w, 0x1a4)],
            });
            r.Alive = true;
            Live.WaitFor(() => File.ReadAllText(Path.Combine(r.Dir, "out")).StartsWith("ready", StringComparison.Ordinal)
                || Spawn.TryReap(r.Pid) is not null, "fanotify_state's ready line", TimeSpan.FromSeconds(20));
            Assert.True(File.ReadAllText(Path.Combine(r.Dir, "out")).StartsWith("ready", StringComparison.Ordinal), $"not ready: {r.Err}");
            return r;
        }
        catch
        {
            r.Dispose();
            throw;
        }
    }

    [RootFact]
    public void MarksAndEventsSurviveTwoCycles()
    {
        using var w = Start(mount: true);
        RestoredTree? tree = null;
        for (int cycle = 0; cycle < 2; cycle++)
        {
            string images = Path.Combine(w.Dir, $"images{cycle}");
            var state = TaskStateSnapshot.OfQuietTree(w.Pid);
            new Dumper(new DumpOptions { RootPid = w.Pid, ImagesDir = images }, Log.Null).Run();
            try { Spawn.Reap(w.Pid); } catch (SyscallException) { }
            w.Alive = false;
            Live.AssertCritDecodesAll(images);
            var group = Crit.Decode(Path.Combine(images, "files.img")).GetProperty("entries").EnumerateArray()
                .Single(e => e.GetProperty("type").GetString() == "FANOTIFY").GetProperty("ffy");
            var marks = group.GetProperty("mark").EnumerateArray().ToList();
            Assert.Equal(4, marks.Count(m => m.GetProperty("type").GetString() == "INODE"));
            var mountMark = Assert.Single(marks, m => m.GetProperty("type").GetString() == "MOUNT");
            Assert.Equal(w.Mount, mountMark.GetProperty("me").GetProperty("path").GetString());
            Assert.All(marks.Where(m => m.GetProperty("type").GetString() == "INODE"),
                m => Assert.StartsWith(Path.Combine(w.Dir, "w"), m.GetProperty("ie").GetProperty("f_handle").GetProperty("path").GetString()));
            Live.WaitFor(() => !Directory.Exists($"/proc/{w.Pid}"), $"PID {w.Pid} to be free", TimeSpan.FromSeconds(60));
            tree = new Restorer(new RestoreOptions { ImagesDir = images, Detached = true }, Log.Null).Run();
            w.Alive = true;
            Assert.Equal(w.Pid, tree.RootPid);
            StateDiff.AssertRestored(state);
        }
        RawSyscall.Call("kill", Sysno.kill, w.Pid, SIGUSR1);
        int rc = Live.ExitCodeWithin(tree!);
        w.Alive = false;
        Assert.True(rc == 0, $"exit {rc}: {w.Err}");
        Assert.Equal("PASS", w.Err.Trim());
    }

    /// <summary>A marked file deleted, or the marked mount gone, after the dump: the restore fails in one
    /// line naming the mark, leaves no task behind and does not touch the images.</summary>
    [RootTheory]
    [InlineData("file")]
    [InlineData("mount")]
    public void ARestoreWhoseMarkedObjectIsGoneFailsInOneLine(string gone)
    {
        using var w = Start(mount: true);
        string images = Path.Combine(w.Dir, "images");
        new Dumper(new DumpOptions { RootPid = w.Pid, ImagesDir = images }, Log.Null).Run();
        try { Spawn.Reap(w.Pid); } catch (SyscallException) { }
        w.Alive = false;
        Live.WaitFor(() => !Directory.Exists($"/proc/{w.Pid}"), $"PID {w.Pid} to be free", TimeSpan.FromSeconds(60));
        string what;
        if (gone == "file")
        {
            what = Path.Combine(w.Dir, "w", "watched");
            File.Delete(what);
        }
        else
        {
            what = w.Mount!;
            var u = Live.RunProcess("umount", TimeSpan.FromSeconds(30), null, w.Mount!);
            Assert.True(u.ExitCode == 0, $"umount: {u.Stderr}");
            w.Mount = null;
        }
        var before = Live.Hashes(images);
        var e = Assert.ThrowsAny<CrispException>(() =>
            new Restorer(new RestoreOptions { ImagesDir = images, Detached = true }, Log.Null).Run());
        Assert.DoesNotContain('\n', e.Message);
        Assert.Contains("fanotify", e.Message);
        Assert.Contains(what, e.Message);
        Live.WaitPidsFree([w.Pid], w.Pid);   // nothing left behind (a restored root would be our child)
        Assert.Equal(before, Live.Hashes(images));
    }

    [RootFact]
    public void AFilesystemMarkIsRefusedByNameAndTheTaskRunsOn()
    {
        using var w = Start(mount: true, "fsmark");
        var e = Assert.ThrowsAny<CrispException>(() =>
            new Dumper(new DumpOptions { RootPid = w.Pid, ImagesDir = Path.Combine(w.Dir, "images") }, Log.Null).Run());
        Assert.DoesNotContain('\n', e.Message);
        Assert.Contains(w.Pid.ToString(), e.Message);
        Assert.Contains("fanotify filesystem mark", e.Message);
        Assert.Contains("TracerPid:\t0", File.ReadAllText($"/proc/{w.Pid}/status"));
        RawSyscall.Call("kill", Sysno.kill, w.Pid, SIGUSR1);
        var st = Live.ReapWithin(w.Pid);
        w.Alive = false;
        Assert.True(st is { Exited: true, ExitCode: 0 }, $"{st}: {w.Err}");
        Assert.Equal("PASS", w.Err.Trim());
    }
}
