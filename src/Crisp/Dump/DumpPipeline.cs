namespace Crisp.Dump;

/// <summary>A dump as data: named phases, each an ordered list of participants, run by <see cref="Dumper"/>:
/// <list type="number">
/// <item><b>seize</b>: the tree stopped (<see cref="TreeSeizer"/>), then checked (<see cref="SessionCheck"/>, shared resources);</item>
/// <item><b>collect</b>: every kind's <see cref="IDumpStage.Dump"/>, task by task (registers before any remote syscall);</item>
/// <item><b>finish</b>: every kind's <see cref="IDumpStage.Finish"/> (tree-wide images), then cores, pstree, inventory;</item>
/// <item><b>release</b>: the tree killed, left stopped or let go; every kind's <see cref="IDumpStage.Release"/>.</item>
/// </list>
/// <c>CRISP_FAULT=dump:NAME</c> fails at any name of <see cref="FaultPoints"/>. A pre-dump (<see cref="PreDumper"/>)
/// is seize, the memory's tracking and page plan, release, then the pages copied while the tree runs.</summary>
public sealed class DumpPipeline
{
    public required string Mode { get; init; }
    /// <summary>The kinds of state, in the order they are collected. One line per kind (Resources/&lt;Kind&gt;).</summary>
    public required IReadOnlyList<IDumpStage> Collect { get; init; }

    /// <summary>Every point CRISP_FAULT=dump:NAME can name, in the order a dump passes them.</summary>
    public IEnumerable<string> FaultPoints => new[] { "seized" }.Concat(Collect.Select(s => s.Name)).Append("images");

    public static DumpPipeline Dump { get; } = new()
    {
        Mode = "dump",
        Collect =
        [
            new Resources.Core.CoreDump(),
            new Resources.Namespaces.NamespacesDump(),
            new Resources.Cgroups.CgroupsDump(),
            new Resources.Registers.RegistersDump(),
            new Resources.Memory.MemoryDump(),
            new Resources.Ipc.IpcDump(),
            new Resources.Files.FilesDump(),
            new Resources.Files.Locks.FileLocksDump(),
            new Resources.Fs.FsDump(),
            new Resources.Seccomp.SeccompDump(),
            new Resources.Rlimits.RlimitsDump(),
            new Resources.Signals.SignalsDump(),
            new Resources.Timers.TimersDump(),
            new Resources.Sched.SchedDump(),
            new Resources.TaskState.TaskStateDump(),
            new Resources.Rseq.RseqDump(),
            new Resources.Membarrier.MembarrierDump(),
            new Resources.Creds.CredsDump(),
        ],
    };
}
