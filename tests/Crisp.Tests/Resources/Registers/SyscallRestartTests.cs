using Crisp.Dump;
using Crisp.Linux;
using Crisp.Restore;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Resources.Registers;

/// <summary>Issue #6: interrupted syscalls come back the way the kernel would have finished them. A task is
/// stopped inside pause(), an hour-long nanosleep and a read (SA_RESTART handler); while it is stopped, a
/// handled signal is queued for each thread; SIGCONT must then end pause and the sleep with EINTR (after one
/// handler run each, the sleep's rem intact) and restart the read — first without crisp (the kernel's
/// behaviour, the premise), then after a dump and restore of the stopped task. Re-running the calls from
/// user mode would run the handlers first and sleep again: the workload would never exit.</summary>
public class SyscallRestartTests(ITestOutputHelper output)
{
    private const int SIGKILL = 9, SIGUSR1 = 10, SIGUSR2 = 12, SIGCONT = 18, SIGSTOP = 19, SIGWINCH = 28;

    [RootTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void AHandledSignalQueuedWhileStoppedEndsTheInterruptedCallsAsTheKernelDoes(bool restored)
    {
        string dir = Directory.CreateTempSubdirectory("crisp-restart-").FullName;
        string exe = Support.Workloads.Build("pause_eintr", "-pthread");
        int pid = Spawn.Start(exe, [exe, dir], new SpawnOptions
        {
            NewSession = true,
            Opens = [(0, "/dev/null", FileIo.O_RDONLY, 0), (1, "/dev/null", FileIo.O_WRONLY, 0), (2, "/dev/null", FileIo.O_WRONLY, 0)],
        });
        bool ours = true;
        try
        {
            string ready = Path.Combine(dir, "ready");
            Live.WaitFor(() => File.Exists(ready) && File.ReadAllText(ready).EndsWith('\n') || Spawn.TryReap(pid) is not null, "pause_eintr ready");
            var ids = File.ReadAllText(ready).Split(' ', StringSplitOptions.TrimEntries)[1..].Select(int.Parse).ToArray();
            Assert.Equal(pid, ids[0]);
            int sleeper = ids[1], reader = ids[2];

            Crisp.Linux.Signals.Kill(pid, SIGSTOP);
            Live.WaitFor(() => AllStopped(pid), "every thread to stop");
            if (restored)
            {
                string images = Path.Combine(dir, "images");
                Directory.CreateDirectory(images);
                new Dumper(new DumpOptions { RootPid = pid, ImagesDir = images }, Log.Null).Run();
                try { Spawn.Reap(pid); } catch (SyscallException) { }
                ours = false;
                Live.WaitPidsFree(Live.CheckpointPids(images));
                var tree = new Restorer(new RestoreOptions { ImagesDir = images, Detached = true }, Log.Null).Run();
                Assert.Equal(pid, tree.RootPid);
                ours = true;
                Live.WaitFor(() => AllStopped(pid), "the restored threads to stop again", TimeSpan.FromSeconds(5));
            }
            Crisp.Linux.Signals.TgKill(pid, pid, SIGUSR1);
            Crisp.Linux.Signals.TgKill(pid, sleeper, SIGUSR2);
            Crisp.Linux.Signals.TgKill(pid, reader, SIGWINCH);
            Thread.Sleep(100);
            Assert.True(AllStopped(pid), "the signals wait while the task is stopped");
            Crisp.Linux.Signals.Kill(pid, SIGCONT);

            int rc = Live.ReapWithin(pid, TimeSpan.FromSeconds(30)).ExitCode;
            ours = false;
            string verdict = File.Exists(Path.Combine(dir, "verdict")) ? File.ReadAllText(Path.Combine(dir, "verdict")) : "(no verdict)";
            output.WriteLine($"{(restored ? "restored" : "kernel only")}: exit {rc}, {verdict.Trim()}");
            Assert.True(rc == 0, $"exit {rc}: {verdict}");
            Assert.Equal("PASS", verdict.Trim());
        }
        finally
        {
            if (ours)
            {
                RawSyscall.TryCall(Sysno.kill, pid, SIGKILL);
                try { Spawn.Reap(pid); } catch (SyscallException) { }
            }
            Directory.Delete(dir, recursive: true);
        }
    }

    private static bool AllStopped(int pid) => Directory.GetDirectories($"/proc/{pid}/task")
        .All(d => File.ReadAllLines(Path.Combine(d, "status")).First(l => l.StartsWith("State:"))[6..].Trim().StartsWith('T'));
}
