using Crisp.Dump;
using Crisp.Restore;
using Crisp.Tests.Images;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;

namespace Crisp.Tests.Resources.Timers;

/// <summary>Interval and POSIX timers (tests/workloads/timers_state.c) over two dump/restore cycles: the
/// images carry them as CRIU's task_timers_entry, /proc/PID/timers reads the same after each restore, and
/// the workload itself sees every periodic timer tick again (the thread-directed one in its worker only)
/// and the long ones keep their interval and no more than the time they had left.</summary>
public class TimersRestoreTests
{
    [RootFact]
    public void TimersKeepTickingWithTheSameIdsAfterTwoCycles()
    {
        using var w = new DirWorkload("crisp-timers-");
        w.Start(Support.Workloads.Build("timers_state"), []);
        w.WaitReady("timers_state");
        int pid = w.Pid;
        string before = File.ReadAllText($"/proc/{pid}/timers");
        Assert.Equal(File.ReadAllText(Path.Combine(w.Dir, "timers")), before);
        RestoredTree? tree = null;
        for (int cycle = 0; cycle < 2; cycle++)
        {
            string images = w.NewImagesDir($"images{cycle}");
            w.Dump(new DumpOptions { RootPid = pid, ImagesDir = images, ShellJob = true });
            var timers = Crit.Decode(Path.Combine(images, $"core-{pid}.img")).GetProperty("entries")[0]
                .GetProperty("tc").GetProperty("timers");
            Assert.Equal([0, 1, 3, 4, 5], timers.GetProperty("posix").EnumerateArray()
                .Select(t => t.GetProperty("it_id").GetInt32()).Order());
            Assert.Equal(50000, timers.GetProperty("real").GetProperty("iusec").GetInt32());
            Live.WaitPidsFree([pid]);
            tree = w.Restore(new RestoreOptions { ImagesDir = images, ShellJob = true, Detached = true });
            Assert.Equal(before, File.ReadAllText($"/proc/{pid}/timers"));
        }
        w.SignalAndExpectPass(tree!);
    }
}
