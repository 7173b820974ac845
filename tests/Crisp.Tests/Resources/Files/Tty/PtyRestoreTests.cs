using Crisp.Dump;
using Crisp.Linux;
using Crisp.Restore;
using Crisp.Tests.Images;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;

namespace Crisp.Tests.Resources.Files.Tty;

/// <summary>Ptys a workload holds (tests/workloads/pty_state.c), dumped and restored twice, then checked by
/// the workload itself: same indexes, termios byte for byte with custom speeds and c_cc, window size,
/// exclusive/packet/lock modes, the pty as its session's controlling terminal with a child's group in
/// front, bytes left queued both ways, and fresh bytes both ways.</summary>
public class PtyRestoreTests
{
    private const int SIGKILL = 9;

    /// <summary>What the state checker finds wrong after pty_state's restore; reported to the lead.</summary>
    internal static readonly StateAllowList.Rule[] PtyBugs =
    [
        // BUG: the slave of pty A (fd 5, opened O_RDWR) comes back O_CLOEXEC and without O_LARGEFILE (flags
        // 0100002 → 02000002 in fdinfo): an exec would close it.
        new(@"fd/5", "flags", "BUG: pty slave restored close-on-exec, without O_LARGEFILE"),
        // BUG: the child (its own process group, in the root's session) loses its controlling terminal: stat
        // tty_nr 34816 → 0 and tpgid → -1; open("/dev/tty") in it would fail with ENXIO.
        new("stat", "tty_nr|tpgid", "BUG: the child's controlling terminal is not restored"),
    ];

    [RootFact]
    public void PtyPairsComeBackWithTheirIndexTermiosAndQueuedBytes()
    {
        using var w = new DirWorkload("crisp-pty-") { StateAllow = StateAllowList.Default.With(PtyBugs) };
        w.Start(Support.Workloads.Build("pty_state"), [], newSession: true);
        int child = int.Parse(w.WaitReady("pty_state", f => f.Length >= 3)[2]);
        int pid = w.Pid;
        RestoredTree? tree = null;
        for (int cycle = 0; cycle < 2; cycle++)
        {
            string images = w.NewImagesDir($"images{cycle}");
            // No --shell-job: the tree owns its session and both ends of its ptys.
            w.Dump(new DumpOptions { RootPid = pid, ImagesDir = images });
            // CRIU's format, readable by crit: master and slave of pty A, master of pty B.
            var infos = Crit.Decode(Path.Combine(images, "tty-info.img")).GetProperty("entries").EnumerateArray().ToList();
            Assert.Equal(3, infos.Count);
            Assert.All(infos, i => Assert.Equal("PTY", i.GetProperty("type").GetString()));
            var slave = infos.Single(i => (i.GetProperty("id").GetUInt32() & 1) == 0);
            Assert.Equal(pid, slave.GetProperty("sid").GetInt32());
            Assert.Equal(child, slave.GetProperty("pgrp").GetInt32());
            Assert.Equal(12345, slave.GetProperty("termios").GetProperty("c_ispeed").GetInt32());
            Assert.Equal(101, slave.GetProperty("winsize").GetProperty("ws_col").GetInt32());
            var data = Crit.Decode(Path.Combine(images, "tty-data.img")).GetProperty("entries").EnumerateArray()
                .Select(e => Convert.FromBase64String(e.GetProperty("data").GetString()!)).Select(b => System.Text.Encoding.ASCII.GetString(b));
            Assert.Equal(["m2s-queued", "s2m-queued"], data.Order());
            while (Directory.Exists($"/proc/{pid}") || Directory.Exists($"/proc/{child}"))
                Thread.Sleep(20);
            tree = w.Restore(new RestoreOptions { ImagesDir = images, Detached = true });
        }
        w.SignalAndExpectPass(tree!);
    }

    /// <summary>A slave whose master is outside the tree (someone else's terminal) is refused without
    /// --shell-job, naming the task, the fd and the terminal; the task runs on untouched.</summary>
    [RootFact]
    public void SlaveOfAnOutsideMasterIsRefusedByName()
    {
        using var pty = new TestPty();
        string dir = Directory.CreateTempSubdirectory("crisp-pty-").FullName;
        // Its own session (so the session check passes), the slave only as fd 5, not its terminal.
        int pid = Spawn.Start("/bin/sleep", ["sleep", "60"], new SpawnOptions
        {
            NewSession = true,
            Opens = [.. Live.DevNullStdio, (5, pty.SlavePath, FileIo.O_RDWR | FileIo.O_NOCTTY, 0)],
        });
        try
        {
            var e = Assert.Throws<CrispException>(() =>
                new Dumper(new DumpOptions { RootPid = pid, ImagesDir = dir }, Log.Null).Run());
            Assert.Contains($"task {pid} fd 5: tty {pty.SlavePath}", e.Message);
            Assert.Contains("--shell-job", e.Message);
            Assert.DoesNotContain('\n', e.Message);
            Assert.Null(Spawn.TryReap(pid));
            Assert.NotEqual('T', File.ReadAllText($"/proc/{pid}/stat").Split(' ')[2][0]);
        }
        finally
        {
            RawSyscall.TryCall(Sysno.kill, pid, SIGKILL);
            try { Spawn.Reap(pid); } catch (SyscallException) { }
            Directory.Delete(dir, recursive: true);
        }
    }
}
