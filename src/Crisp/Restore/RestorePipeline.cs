namespace Crisp.Restore;

/// <summary>A restore as data: named phases, each an ordered list of participants, run by <see cref="Restorer"/>:
/// <list type="number">
/// <item><b>prepare</b>: every kind's <see cref="IRestoreStage.Prepare"/> (images read, shared objects made in crisp);</item>
/// <item><b>puppets</b>: the root puppet, the namespaces it enters before cloning anyone, then every other task
/// (<see cref="PuppetTreeBuilder"/>);</item>
/// <item><b>shape</b>: every kind's <see cref="IRestoreStage.Restore"/>, task by task, in the architecture's order;</item>
/// <item><b>release</b>: each task's threads get their registers (<see cref="IReleaseStep"/>), then all are detached at once;</item>
/// <item><b>cleanup</b>: every kind's <see cref="IRestoreStage.Cleanup"/>, then the context closes what it holds.</item>
/// </list>
/// A failure undoes the puppets' and release steps' work in reverse (<see cref="IReleaseStep.Abort"/>, then
/// <see cref="PuppetTreeBuilder.KillAll"/>). <c>CRISP_FAULT=restore:NAME</c> fails at any name of
/// <see cref="FaultPoints"/>. A lazy restore (pages served on fault) is these phases with the memory
/// participant told to register its areas with the lazy-pages daemon instead of filling them (<see cref="LazyRestore"/>).</summary>
public sealed class RestorePipeline
{
    public required string Mode { get; init; }
    /// <summary>The kinds of state, in the order they are prepared and restored (ARCHITECTURE.md "Restore order").</summary>
    public required IReadOnlyList<IRestoreStage> Shape { get; init; }
    /// <summary>What the root does once it exists, before it clones any other task: it enters the tree's namespaces.</summary>
    public required IReadOnlyList<TreeStep> RootEnters { get; init; }
    /// <summary>Per task, once its puppet exists and before it clones its children: the memory they share with it.</summary>
    public required IReadOnlyList<TaskStep> BeforeChildren { get; init; }
    /// <summary>Per task, once every kind is restored: each thread's final registers and signal mask.</summary>
    public required IReadOnlyList<IReleaseStep> Release { get; init; }

    /// <summary>The shape phase's participants as they run: each kind followed by the participants it brings
    /// (<see cref="IRestoreStage.Then"/>).</summary>
    public IReadOnlyList<IRestoreStage> Participants => _participants ??= [.. Shape.SelectMany(s => s.Then.Prepend(s))];
    private IReadOnlyList<IRestoreStage>? _participants;

    /// <summary>The puppets phase: the root, the namespaces it enters, every other task.</summary>
    public PuppetTreeBuilder Puppets => _puppets ??= new(RootEnters, BeforeChildren);
    private PuppetTreeBuilder? _puppets;

    /// <summary>Every point CRISP_FAULT=restore:NAME can name, in the order a restore passes them.</summary>
    public IEnumerable<string> FaultPoints =>
        new[] { "puppets" }.Concat(Participants.Select(s => s.Name)).Append("release");

    /// <summary>The participants of a restore; one line each (Resources/&lt;Kind&gt;).</summary>
    public static RestorePipeline Restore { get; } = For("restore");

    /// <summary>restore --lazy-pages: the same participants, private anonymous memory left to the lazy-pages daemon.</summary>
    public static RestorePipeline LazyRestore { get; } = For("lazy-restore");

    private static RestorePipeline For(string mode)
    {
        var threads = new ThreadBuilder();
        return new RestorePipeline
        {
            Mode = mode,
            Shape =
            [
                new Resources.Namespaces.NamespacesRestore(),
                new Resources.Cgroups.CgroupsRestore(),
                new Resources.Ipc.IpcRestore(),
                new Resources.Memory.MemoryRestore { Lazy = mode == "lazy-restore" },
                threads,
                new Resources.Core.CoreRestore(),
                new Resources.Files.FilesRestore(),
                new Resources.Fs.FsRestore(),
                new Resources.Rlimits.RlimitsRestore(),
                new Resources.Signals.SignalsRestore(),
                new Resources.TaskState.TaskStateRestore(),
                new Resources.Timers.TimersRestore(),
                new Resources.Rseq.RseqRestore(),
                new Resources.Membarrier.MembarrierRestore(),
                new Resources.Seccomp.SeccompRestore(),
                new Resources.Creds.CredsRestore(),
                new Resources.Sched.SchedRestore(),
            ],
            RootEnters =
            [
                new("ipc", Resources.Ipc.IpcRestore.EnterNamespace),
                // time, net and cgroup before mnt: the root still sees the host's /proc/CRISP/fd (net's namespace fd),
                // and the sysfs it mounts in its new mount namespace shows the network namespace it is in by then.
                new("namespaces", Resources.Namespaces.NamespacesRestore.EnterNamespaces),
                new("mnt", Resources.Mounts.MountNamespace.EnterNamespace),
            ],
            // Copy-on-write sharing with the children: their shared VMAs filled in the parent before they are cloned.
            BeforeChildren = [new("memory", Resources.Memory.MemoryRestore.PremapForChildren)],
            Release = [threads, new TaskRelease()],
        };
    }
}

/// <summary>A named step on the whole tree.</summary>
public sealed record TreeStep(string Name, Action<RestoreContext> Run);

/// <summary>A named step on one task of the tree.</summary>
public sealed record TaskStep(string Name, Action<RestoreContext, RestoreTask> Run);

/// <summary>A participant of the release phase: gives a task's threads their final state, detaches them with
/// the rest of the tree, or undoes its work after a failure.</summary>
public interface IReleaseStep
{
    string Name { get; }

    /// <summary>Remote syscalls end; the threads get their own registers and signal mask and stay stopped.</summary>
    void Release(RestoreContext ctx, RestoreTask task);

    /// <summary>On the tracer thread, every task ready: the threads this step owns are let go.</summary>
    void Detach(RestoreTask task) { }

    /// <summary>After a failure, before the puppets are killed.</summary>
    void Abort(RestoreContext ctx) { }
}
