using Crisp.Linux;
using Crisp.Tests.Images;
using Crisp.Tests.Support;

namespace Crisp.Tests.Resources.Files.Tty;

/// <summary>--shell-job through the CLI: a foreground job (tests/workloads/ttyjob.c) started by a tiny shell
/// (ptyjob.c) on a pty the test holds is dumped with -j and killed, then restored with -j by a crisp that
/// ptyjob runs on a second pty. The job must come back in the foreground of that second terminal, its
/// fds 0-2 on it, with the settings its first terminal had (echo off), and answer what the test types —
/// through the /dev/tty it held open, which must now name the second terminal.</summary>
public class ShellJobTests
{
    private const int SIGKILL = 9;

    [RootFact]
    public void ShellJobMovesToTheTerminalCrispRunsOn()
    {
        string dir = Directory.CreateTempSubdirectory("crisp-job-").FullName;
        string images = Path.Combine(dir, "images");
        Directory.CreateDirectory(images, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);   // private: no warning line
        string shell = Support.Workloads.Build("ptyjob"), job = Support.Workloads.Build("ttyjob");
        using var first = new TestPty();
        using var second = new TestPty();
        var started = new List<int>();
        int pid = 0;
        try
        {
            int shell1 = Spawn.Start(shell, [shell, first.SlavePath, "-", job, dir]);
            started.Add(shell1);
            var deadline = DateTime.UtcNow.AddSeconds(20);
            while (!File.Exists(Path.Combine(dir, "ready")) || !File.ReadAllText(Path.Combine(dir, "ready")).EndsWith('\n'))
            {
                Assert.True(DateTime.UtcNow < deadline, "ttyjob did not get ready");
                Assert.Null(Spawn.TryReap(shell1));
                Thread.Sleep(10);
            }
            pid = int.Parse(File.ReadAllText(Path.Combine(dir, "ready")).Split(' ')[1]);
            first.Write("check\n");
            Assert.StartsWith($"ok pid={pid}", first.ReadUntil("ok pid="));

            // Without -j: one line naming the flag; the job runs on.
            var refused = CrispCli.Run("dump", "-t", $"{pid}", "-D", images);
            Assert.NotEqual(0, refused.ExitCode);
            Assert.Contains("--shell-job", refused.Stderr);
            Assert.Single(refused.Stderr.Trim().Split('\n'));
            first.Write("check\n");
            Assert.StartsWith($"ok pid={pid}", first.ReadUntil("ok pid="));

            var dump = CrispCli.Run("dump", "-t", $"{pid}", "-D", images, "-j");
            Assert.True(dump.ExitCode == 0, dump.Stderr);
            Assert.Equal(128 + SIGKILL, Spawn.Reap(shell1).ExitCode);
            while (Directory.Exists($"/proc/{pid}"))
                Thread.Sleep(20);
            // The job's terminal is external: a pty slave with no master in the images, the shell's session.
            // The job's /dev/tty is one more tty_info, CRIU's CTTY (index 1006 << 1), opened again by the job itself.
            var infos = Crit.Decode(Path.Combine(images, "tty-info.img")).GetProperty("entries").EnumerateArray().ToList();
            Assert.Equal(2, infos.Count);
            Assert.Single(infos, i => i.GetProperty("type").GetString() == "CTTY" && i.GetProperty("id").GetUInt32() == 2012);
            var info = Assert.Single(infos, i => i.GetProperty("type").GetString() == "PTY");
            Assert.Equal(shell1, info.GetProperty("sid").GetInt32());
            Assert.Equal(pid, info.GetProperty("pgrp").GetInt32());
            Assert.Equal(0u, info.GetProperty("id").GetUInt32() & 1);

            string crisp = CrispCli.Exe;
            string pidfile = Path.Combine(dir, "restored.pid");
            int shell2 = Spawn.Start(shell, [shell, second.SlavePath, Path.Combine(dir, "crisp.out"),
                crisp, "restore", "-D", images, "-j", "--pidfile", pidfile]);
            started.Add(shell2);
            deadline = DateTime.UtcNow.AddSeconds(60);
            while (!File.Exists(pidfile))
            {
                Assert.True(DateTime.UtcNow < deadline, $"restore did not finish: {ReadOr(Path.Combine(dir, "crisp.out"))}");
                Assert.True(Spawn.TryReap(shell2) is null, $"restore failed: {ReadOr(Path.Combine(dir, "crisp.out"))}");
                Thread.Sleep(20);
            }
            second.Write("check\n");
            Assert.Equal($"ok pid={pid} echo=off\r\n", second.ReadUntil("ok pid="));
            second.Write("quit\n");
            var status = Spawn.Reap(shell2);
            started.Remove(shell2);
            Assert.True(status.Exited && status.ExitCode == 0, $"{status}: {ReadOr(Path.Combine(dir, "crisp.out"))}");
        }
        finally
        {
            if (pid != 0 && Directory.Exists($"/proc/{pid}"))
                RawSyscall.TryCall(Sysno.kill, pid, SIGKILL);
            foreach (int p in started)
            {
                RawSyscall.TryCall(Sysno.kill, p, SIGKILL);
                try { Spawn.Reap(p); } catch (SyscallException) { }
            }
            Directory.Delete(dir, recursive: true);
        }
    }

    private static string ReadOr(string path) => File.Exists(path) ? File.ReadAllText(path) : "(no output)";
}
