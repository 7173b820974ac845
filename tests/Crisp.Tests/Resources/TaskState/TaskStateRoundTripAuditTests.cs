using Crisp.Dump;
using Crisp.Linux;
using Crisp.Restore;
using Crisp.Tests.Images;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;

namespace Crisp.Tests.Resources.TaskState;

/// <summary>Per-task and per-thread state that used to be dropped without a word (tests/workloads/task_state.c):
/// scheduling policy, priority, nice, CPU affinity and I/O priority per thread, timer slack, THP-disable,
/// oom_score_adj, personality, umask and madvise/mlock/growsdown mappings — over two cycles, checked by the
/// workload itself and, from outside, by /proc after each restore.</summary>
public class TaskStateRoundTripAuditTests
{
    [RootFact]
    public void SchedulingPrctlAndMappingStateSurviveTwoCycles()
    {
        using var w = new DirWorkload("crisp-taskstate-");
        w.Start(Support.Workloads.Build("task_state"), []);
        var words = w.WaitReady("task_state", x => x.Length >= 4);
        int pid = w.Pid;
        int[] tids = [pid, int.Parse(words[2]), int.Parse(words[3])];
        var before = tids.ToDictionary(t => t, Outside);
        RestoredTree? tree = null;
        for (int cycle = 0; cycle < 2; cycle++)
        {
            string images = w.NewImagesDir($"images{cycle}");
            w.Dump(new DumpOptions { RootPid = pid, ImagesDir = images, ShellJob = true });
            var core = Crit.Decode(Path.Combine(images, $"core-{pid}.img")).GetProperty("entries")[0];
            Assert.Equal(321, core.GetProperty("tc").GetProperty("oom_score_adj").GetInt32());
            Assert.Equal(5, core.GetProperty("thread_core").GetProperty("sched_nice").GetInt32());
            Assert.True(Crit.Decode(Path.Combine(images, $"mm-{pid}.img")).GetProperty("entries")[0].GetProperty("thp_disabled").GetBoolean());
            Live.WaitPidsFree([pid]);
            tree = w.Restore(new RestoreOptions { ImagesDir = images, ShellJob = true, Detached = true });
            foreach (int tid in tids)
                Assert.Equal(before[tid], Outside(tid));
        }
        w.SignalAndExpectPass(tree!);
    }

    /// <summary>What /proc and the sched calls show of a thread from outside.</summary>
    private static string Outside(int tid)
    {
        string status = File.ReadAllText($"/proc/{tid}/status");
        string allowed = status.Split('\n').First(l => l.StartsWith("Cpus_allowed_list:", StringComparison.Ordinal));
        string[] stat = File.ReadAllText($"/proc/{tid}/stat").Split(") ")[1].Split(' ');
        // stat fields 18 priority, 19 nice, 40 rt_priority, 41 policy (counted from field 3 after the comm).
        return $"{allowed} prio {stat[15]} nice {stat[16]} rt {stat[37]} policy {stat[38]} " +
            $"oom {File.ReadAllText($"/proc/{tid}/oom_score_adj").Trim()} personality {File.ReadAllText($"/proc/{tid}/personality").Trim()}";
    }
}
