using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Reliability;

/// <summary>Zombies and stopped children are part of a tree: dumped as TASK_DEAD (with the exit code)
/// and TASK_STOPPED, restored in those states. The parent checks what it can see: the same wait
/// status when it reaps each zombie, the stopped child still stopped and running on after SIGCONT.</summary>
public class ZombieWaitStatusTests(ITestOutputHelper output)
{
    private sealed record Tree(int Pid, int Exited, int Signaled, int Stopped);

    [RootFact]
    public void ZombiesAndAStoppedChildAreRestoredInThoseStates()
    {
        using var dir = new Live.TempDir();
        string exe = Support.Workloads.Build("zombies");
        var tree = Start(exe, dir.Path);
        var pids = new List<int> { tree.Pid, tree.Exited, tree.Signaled, tree.Stopped };
        try
        {
            string exitCodes = ExitCodes(tree);
            var state = TaskStateSnapshot.OfQuietTree(tree.Pid);
            var dump = CrispCli.Run("dump", "-v4", "-t", tree.Pid.ToString(), "-D", dir.Images, "-o", "dump.log");
            Assert.True(dump.ExitCode == 0, $"dump failed: {dump.Stderr}");
            var entries = ImageDirectory.Open(dir.Images).ReadAll<pstree_entry>(ImageFile.Pstree);
            Assert.Equal(4, entries.Count);
            var dead = ReadCore(dir.Images, tree.Exited).Tc;
            Assert.Equal(2u, dead.TaskState);     // CRIU's TASK_DEAD
            Assert.Equal(7u << 8, dead.ExitCode);
            Assert.Equal(15u, ReadCore(dir.Images, tree.Signaled).Tc.ExitCode);
            Assert.Equal(3u, ReadCore(dir.Images, tree.Stopped).Tc.TaskState);
            Assert.All(entries.Where(e => e.Pid != tree.Pid), e => Assert.Equal((uint)tree.Pid, e.Ppid));
            Live.AssertCritDecodesAll(dir.Images);
            Live.WaitPidsFree(pids, tree.Pid);

            var restore = CrispCli.Run("restore", "-v4", "-D", dir.Images, "-d", "-o", "restore.log");
            Assert.True(restore.ExitCode == 0, $"restore failed: {restore.Stderr}\n{File.ReadAllText(Path.Combine(dir.Images, "restore.log"))}");
            Assert.Equal('Z', State(tree.Exited));
            Assert.Equal('Z', State(tree.Signaled));
            Assert.Equal('T', State(tree.Stopped));
            Assert.Equal(tree.Pid, ProcPpid(tree.Exited));
            Assert.Equal(exitCodes, ExitCodes(tree));
            // `restore -d` without -S: the root's parent was crisp, which has exited; init has it now.
            StateDiff.AssertRestored(state, StateAllowList.Default.With(
                new StateAllowList.Rule("stat", "ppid", "the root's parent was the crisp restore that exited"),
                new StateAllowList.Rule("status", "PPid", "the root's parent was the crisp restore that exited")));
            var show = CrispCli.Run("show", dir.Images);
            Assert.True(show.ExitCode == 0, show.Stderr);
            output.WriteLine(show.Stdout);

            Signals.Kill(tree.Pid, Live.SIGUSR1);
            string outFile = Path.Combine(dir.Path, "out");
            Live.WaitFor(() => File.ReadAllText(outFile).Contains("PASS") || File.ReadAllText(outFile).Contains("FAIL"), "the parent's verdict");
            Assert.DoesNotContain("FAIL", File.ReadAllText(outFile));
        }
        finally
        {
            Live.KillAll(pids.Where(p => p != tree.Pid).Append(tree.Pid), tree.Pid);
        }
    }

    [RootFact]
    public void LeaveRunningKeepsZombiesAndTheStoppedChildAsTheyWere()
    {
        using var dir = new Live.TempDir();
        string exe = Support.Workloads.Build("zombies");
        var tree = Start(exe, dir.Path);
        var pids = new List<int> { tree.Pid, tree.Exited, tree.Signaled, tree.Stopped };
        try
        {
            var dump = CrispCli.Run("dump", "-R", "-t", tree.Pid.ToString(), "-D", dir.Images);
            Assert.True(dump.ExitCode == 0, $"dump failed: {dump.Stderr}");
            Assert.Equal('T', State(tree.Stopped));
            Assert.Contains("TracerPid:\t0", File.ReadAllLines($"/proc/{tree.Stopped}/status"));
            Signals.Kill(tree.Pid, Live.SIGUSR1);
            int rc = Live.ReapWithin(tree.Pid).ExitCode;
            Assert.True(rc == 0, File.ReadAllText(Path.Combine(dir.Path, "out")));
        }
        finally
        {
            Live.KillAll(pids, tree.Pid);
        }
    }

    private static Tree Start(string exe, string dir)
    {
        var w = Workload.Start(exe, ["zombies"], dir);
        var p = w.WaitReady("the workload's ready line").Skip(1).Select(int.Parse).ToArray();
        Assert.Equal(w.Pid, p[0]);
        return new Tree(p[0], p[1], p[2], p[3]);
    }

    private static core_entry ReadCore(string images, int pid)
    {
        using var r = ImageDirectory.Open(images).OpenReader(ImageFile.Core(pid));
        return r.Read<core_entry>()!;
    }

    private static string Stat(int pid) => File.ReadAllText($"/proc/{pid}/stat");
    private static char State(int pid) { var s = Stat(pid); return s[s.LastIndexOf(')') + 2]; }
    private static int ProcPpid(int pid) { var s = Stat(pid); return int.Parse(s[(s.LastIndexOf(')') + 4)..].Split(' ')[0]); }
    private static string ExitCodes(Tree t) =>
        string.Join(',', new[] { t.Exited, t.Signaled }.Select(p => Stat(p).Trim().Split(' ')[^1]));
}
