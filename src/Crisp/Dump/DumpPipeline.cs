namespace Crisp.Dump;

/// <summary>A dump as data: named phases, each an ordered list of participants, run by <see cref="Dumper"/>:
/// <list type="number">
/// <item><b>seize</b>: the tree stopped (<see cref="TreeSeizer"/>), then checked (<see cref="SessionCheck"/>, shared resources);</item>
/// <item><b>collect</b>: every kind's <see cref="IDumpStage.Dump"/>, task by task (registers before any remote syscall);</item>
/// <item><b>finish</b>: every kind's <see cref="IDumpStage.Finish"/> (tree-wide images), then cores, pstree, inventory;</item>
/// <item><b>release</b>: the tree killed, left stopped or let go; every kind's <see cref="IDumpStage.Release"/>.</item>
/// </list>
/// <c>CRISP_FAULT=dump:NAME</c> fails at any name of <see cref="FaultPoints"/>. A pre-dump (<see cref="PreDumper"/>,
/// <see cref="PreDump"/>) is the same seize and collect with the memory's pre-dump participant (tracking armed,
/// pages planned), then release (<see cref="TreeRelease.LetGo"/>), then finish while the tree runs (the pages copied).</summary>
public sealed class DumpPipeline
{
    public required string Mode { get; init; }
    /// <summary>The kinds of state, in the order they are collected. One line per kind (Resources/&lt;Kind&gt;).</summary>
    public required IReadOnlyList<IDumpStage> Collect { get; init; }

    /// <summary>seize: the tree stopped. A zombie child met while seizing (a shell's child that has just exited: its
    /// parent reaps it as soon as it runs) makes us let the tree go for a moment and try again; a zombie that stays
    /// is reported.</summary>
    public static void Seize(DumpContext ctx)
    {
        const int Attempts = 5;
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                TreeSeizer.SeizeTree(ctx);
                return;
            }
            catch (ZombieTaskException e) when (attempt < Attempts && ctx.Options.FreezeCgroup is null)
            {
                ctx.Log.Info($"{e.Message}: releasing the tree and seizing again (attempt {attempt + 1})");
                TreeRelease.LetGo(ctx);
                ctx.Tasks.Clear();
                Thread.Sleep(20 * attempt);
            }
        }
    }

    /// <summary>collect: every participant on every task, in order, each timed and a fault point.</summary>
    public void CollectAll(DumpContext ctx)
    {
        foreach (var task in ctx.Tasks)
        {
            foreach (var stage in Collect)
            {
                ctx.Log.Debug($"{Mode} {stage.Name} of {task.Pid}");
                long stageStart = System.Diagnostics.Stopwatch.GetTimestamp();
                stage.Dump(ctx, task);
                ctx.Counters.AddStageTime(stage.Name, System.Diagnostics.Stopwatch.GetElapsedTime(stageStart));
                ctx.Faults.At($"dump:{stage.Name}");
            }
        }
    }

    /// <summary>finish: every participant's tree-wide step.</summary>
    public void FinishAll(DumpContext ctx)
    {
        foreach (var stage in Collect)
            stage.Finish(ctx);
    }

    /// <summary>release: every participant lets go of what it held for the dump; a failure is logged, the rest go on.</summary>
    public void Release(DumpContext ctx, bool killed)
    {
        foreach (var stage in Collect)
        {
            try { stage.Release(ctx, killed); }
            catch (Exception e) { ctx.Log.Error($"releasing {stage.Name}: {e.Message}"); }
        }
    }

    /// <summary>A pre-dump: the memory only (<see cref="Resources.Memory.MemoryPreDump"/>), its finish run once the
    /// tree is let go; its release only after a failure while the tree is held (the tracking is what it leaves).</summary>
    public static DumpPipeline PreDump { get; } = new()
    {
        Mode = "pre-dump",
        Collect = [new Resources.Memory.MemoryPreDump()],
    };

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
