using Crisp.Dump;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Linux.Proc;

namespace Crisp.Resources.Rlimits;

/// <summary>Resource limits from /proc/PID/limits: prlimit() on another uid's task needs
/// CAP_SYS_RESOURCE even to read, which root lacks on some hosts (CRIU fails there).</summary>
public sealed class RlimitsDump : IDumpStage
{
    public string Name => "rlimits";

    public void Dump(DumpContext ctx, DumpTask task)
    {
        var rows = ProcLimits.Read(task.Pid);
        var limits = ProcLimits.ToRlimits(rows);
        var missing = Enumerable.Range(0, Linux.Rlimits.RLIM_NLIMITS).Where(r => rows.All(e => e.Resource != r)).ToList();
        if (missing.Count > 0)
            throw new CrispException($"{Procfs.Host.Path(task.Pid, "limits")} lacks {string.Join(", ", missing.Select(r => RlimitNames.Of(r)))}");
        var entry = new task_rlimits_entry();
        foreach (var l in limits)
            entry.Rlimits.Add(new rlimit_entry { Cur = l.Cur, Max = l.Max });
        task.TaskCore.Rlimits = entry;
    }
}
