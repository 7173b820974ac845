using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;

namespace Crisp.Tests.Resources.Ipc;

/// <summary>POSIX message queues through the CLI (tests/workloads/posix_mq.c checks after the restore each queue's
/// attributes, owner and mode, its fds' flags, and receives its messages in the kernel's order).</summary>
public class PosixQueueTests
{
    private const int SIGUSR1 = 10;

    [RootFact]
    public void ATreeInItsOwnIpcNamespaceKeepsItsQueuesMessagesAndFdsThroughTwoCycles()
    {
        using var dir = new Live.TempDir();
        int pid = Start(dir.Path, ns: true);
        try
        {
            for (int cycle = 0; cycle < 2; cycle++)
            {
                string images = Path.Combine(dir.Path, $"images{cycle}");
                Cycle(images, pid, ourChild: cycle == 0);
                Live.AssertCritDecodesAll(images);
                var d = ImageDirectory.Open(images);
                uint own = d.ReadOne<task_kobj_ids_entry>(ImageFile.Ids(pid)).IpcNsId;
                var queues = d.ReadOne<ipc_var_entry>(ImageFile.IpcVar(own)).PosixMqs;
                Assert.Equal([$"/crisp-pmq1-{pid}", $"/crisp-pmq2-{pid}", $"/crisp-pmq3-{pid}"], queues.Select(q => q.Name).Order(StringComparer.Ordinal));
                var q1 = queues.Single(q => q.Name == $"/crisp-pmq1-{pid}");
                Assert.Equal((1234u, 2345u, 0x1a0u, 8ul, 128ul), (q1.Uid, q1.Gid, q1.Mode, q1.Maxmsg, q1.Msgsize));
                Assert.Equal(["b:5", "a:1", "c:1"], q1.Msgs.Select(m => $"{m.Data.ToStringUtf8()}:{m.Prio}"));
                // The queued texts are payloads: `show` withholds them unless asked.
                var show = CrispCli.Run("show", d.PathOf(ImageFile.IpcVar(own)));
                Assert.True(show.ExitCode == 0, show.Stderr);
                Assert.Contains("\"name\": \"/crisp-pmq1-", show.Stdout);
                Assert.Contains("<sensitive: 1 bytes", show.Stdout);
                Assert.DoesNotContain("Yg==", show.Stdout);
                Assert.Contains("Yg==", CrispCli.Run("show", "--show-secrets", d.PathOf(ImageFile.IpcVar(own))).Stdout);
                var files = d.ReadAll<file_entry>(ImageFile.Files).Where(f => f.Type == fd_types.Ext).Select(f => f.Ext.PosixMq).ToList();
                Assert.Equal([($"/crisp-pmq1-{pid}", (uint)FileIo.O_RDWR), ($"/crisp-pmq2-{pid}", (uint)(FileIo.O_WRONLY | FileIo.O_NONBLOCK))],
                    files.Select(f => (f.Name, f.Flags)).Order());
            }
            Finish(dir.Path, pid);
        }
        finally
        {
            Live.KillAll([pid], pid);
        }
    }

    /// <summary>In the host's namespace the queues are not the tree's: they outlive the killed tree with their
    /// messages, and the restored fds are opened on them again by name.</summary>
    [RootFact]
    public void FdsOnQueuesOfTheHostNamespaceAreOpenedAgainByName()
    {
        using var dir = new Live.TempDir();
        int pid = Start(dir.Path, ns: false);
        try
        {
            for (int cycle = 0; cycle < 2; cycle++)
            {
                string images = Path.Combine(dir.Path, $"images{cycle}");
                Cycle(images, pid, ourChild: cycle == 0);
                var d = ImageDirectory.Open(images);
                uint ns = d.ReadOne<task_kobj_ids_entry>(ImageFile.Ids(pid)).IpcNsId;
                Assert.False(d.Exists(ImageFile.IpcVar(ns)));
            }
            Finish(dir.Path, pid);
        }
        finally
        {
            Live.KillAll([pid], pid);
            PosixMq.TryUnlink($"/crisp-pmq1-{pid}");
            PosixMq.TryUnlink($"/crisp-pmq2-{pid}");
        }
    }

    /// <summary>A host queue removed between dump and restore: one line, nothing left behind, images untouched.</summary>
    [RootFact]
    public void AHostQueueGoneAtRestoreIsOneLineAndLeavesNothingBehind()
    {
        using var dir = new Live.TempDir();
        int pid = Start(dir.Path, ns: false);
        try
        {
            var r = CrispCli.Run("dump", "-t", $"{pid}", "-D", dir.Images);
            Assert.True(r.ExitCode == 0, r.Stderr);
            Live.WaitPidsFree([pid], pid);
            Assert.True(PosixMq.TryUnlink($"/crisp-pmq2-{pid}"));
            var hashes = Live.Hashes(dir.Images);
            r = CrispCli.Run("restore", "-D", dir.Images, "-d");
            Assert.NotEqual(0, r.ExitCode);
            FailureSafetyTests.AssertOneLine(r.Stderr, $"POSIX message queue /crisp-pmq2-{pid}");
            Live.WaitPidsFree([pid]);
            Assert.Equal(hashes, Live.Hashes(dir.Images));
        }
        finally
        {
            Live.KillAll([pid], pid);
            PosixMq.TryUnlink($"/crisp-pmq1-{pid}");
            PosixMq.TryUnlink($"/crisp-pmq2-{pid}");
        }
    }

    private static int Start(string dir, bool ns)
    {
        string exe = Support.Workloads.Build("posix_mq");
        int pid = ns
            ? Spawn.Start("/usr/bin/unshare", ["unshare", "--ipc", exe, dir, "ns"], new SpawnOptions { NewSession = true, Opens = Live.DevNullStdio })
            : Spawn.Start(exe, [exe, dir, "host"], new SpawnOptions { NewSession = true, Opens = Live.DevNullStdio });
        string ready = Path.Combine(dir, "ready");
        Live.WaitFor(() => File.Exists(ready) && File.ReadAllText(ready).EndsWith('\n') || Spawn.TryReap(pid) is not null, "posix_mq's ready line");
        Assert.Equal($"ready {pid}", File.ReadAllText(ready).Trim());
        return pid;
    }

    private static void Cycle(string images, int pid, bool ourChild)
    {
        var r = CrispCli.Run("dump", "-t", $"{pid}", "-D", images);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Live.WaitPidsFree([pid], ourChild ? pid : 0);
        r = CrispCli.Run("restore", "-D", images, "-d");
        Assert.True(r.ExitCode == 0, r.Stderr);
    }

    private static void Finish(string dir, int pid)
    {
        RawSyscall.Call("kill", Sysno.kill, pid, SIGUSR1);
        string verdict = Path.Combine(dir, "verdict");
        Live.WaitFor(() => File.Exists(verdict) && File.ReadAllText(verdict).EndsWith('\n'), "posix_mq's verdict", TimeSpan.FromSeconds(30));
        Assert.True(File.ReadAllText(verdict).Trim() == "PASS", File.ReadAllText(Path.Combine(dir, "failures")));
        Live.WaitPidsFree([pid]);
    }
}
