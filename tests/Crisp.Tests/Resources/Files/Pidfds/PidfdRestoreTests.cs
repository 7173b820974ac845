using Crisp.Dump;
using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Resources.Files.Pidfds;

/// <summary>pidfd_state: pidfds of the tree's tasks (the child, the task itself, one PIDFD_NONBLOCK) and of
/// a process that exited, in CRIU 4's PIDFD form. After restore the workload checks what each names,
/// signals its child through one and waits for it through it. A pidfd of a process outside the tree is
/// refused by name.</summary>
public class PidfdRestoreTests(ITestOutputHelper output)
{
    [RootFact]
    public void PidfdsOfTreeTasksAndOfADeadProcessWorkAfterRestore()
    {
        string exe = Support.Workloads.Build("pidfd_state");
        using var dir = new Live.TempDir();
        var w = Workload.Start(exe, ["pidfd_state"], dir.Path);
        var parts = w.WaitReady("pidfd_state's ready line", p => p.Length == 3);
        int child = int.Parse(parts[2]);
        int[] pids = [w.Pid, child];
        try
        {
            string images = Path.Combine(dir.Path, "img");
            var tree = Live.Cycle(output, new DumpOptions { RootPid = w.Pid, ImagesDir = images }, pids, written =>
            {
                var pidfds = ImageDirectory.Open(written).ReadAll<file_entry>(ImageFile.Files).Where(f => f.Type == fd_types.Pidfd)
                    .Select(f => f.Pidfd).ToList();
                // child (twice), itself, the dead one (fds 6 and 7 share it), the child's of its parent.
                Assert.Equal(5, pidfds.Count);
                Assert.Equal(2, pidfds.Count(p => p.Nspid == child));
                Assert.Single(pidfds, p => p.Nspid == -1);
            });
            Live.SignalAndExpectPass(w.Pid, dir.Path, () => Live.ExitCodeWithin(tree));
        }
        finally
        {
            Live.KillAll(pids, w.Pid);
        }
    }

    [RootFact]
    public void APidfdOfAProcessOutsideTheTreeIsRefused()
    {
        string exe = Support.Workloads.Build("pidfd_state");
        using var dir = new Live.TempDir();
        var w = Workload.Start(exe, ["pidfd_state", "outside"], dir.Path);
        var parts = w.WaitReady("pidfd_state's ready line", p => p.Length == 3);
        int[] pids = [w.Pid, int.Parse(parts[2])];
        try
        {
            var r = CrispCli.Run("dump", "-t", w.Pid.ToString(), "-D", dir.Images);
            Assert.Equal(1, r.ExitCode);
            FailureSafetyTests.AssertOneLine(r.Stderr, $"task {w.Pid} fd 8: pidfd of process {Environment.ProcessId}, which is not a live task of the dumped tree");
            Assert.True(Directory.Exists($"/proc/{w.Pid}"), "a refused dump must leave the task running");
        }
        finally
        {
            Live.KillAll(pids, w.Pid);
        }
    }
}
