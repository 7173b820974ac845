using Crisp.Compel;

namespace Crisp.Plugins;

/// <summary>What one plugin gets for one run: the stage and options that concern it, the log, a way to run a
/// seized thread alone, and a way to say that the checkpoint depends on it.</summary>
public sealed class PluginContext
{
    private readonly PluginRun _run;

    internal PluginContext(PluginRun run, string pluginName)
    {
        _run = run;
        PluginName = pluginName;
    }

    public string PluginName { get; }
    internal PluginRun Run => _run;
    public PluginStage Stage => _run.Stage;
    public Log Log => _run.Log;
    public string ImagesDir => _run.ImagesDir;

    /// <summary>The run's time limit (--timeout): how long a device may take to quiesce.</summary>
    public TimeSpan Timeout => _run.Timeout;

    /// <summary>Dump: the tree runs on afterwards (--leave-running).</summary>
    public bool LeaveRunning => _run.LeaveRunning;

    /// <summary>Restore: whether the checkpoint's inventory names this plugin; null for images that do not
    /// list their plugins (older CRIU), where every plugin is asked as CRIU does.</summary>
    public bool? ListedInCheckpoint => _run.CheckpointPlugins is { } names ? names.Contains(PluginName) : null;

    /// <summary>Dump: restoring this checkpoint will need this plugin (recorded in inventory.img).</summary>
    public void RecordDependency() => _run.Dependencies.Add(PluginName);

    /// <summary>Runs <paramref name="action"/> while thread <paramref name="tid"/> of <paramref name="pid"/> runs
    /// alone (<see cref="LoneThread"/>) if crisp holds it seized; a thread crisp does not hold runs anyway, so
    /// then the action just runs.</summary>
    public void RunWithThreadAlone(int pid, int tid, Action action)
    {
        if (_run.FindThread(pid, tid) is { IsDetached: false } thread)
            LoneThread.Run(thread, action);
        else
            action();
    }
}

/// <summary>The state one run's plugins share (built by the dumper or restorer).</summary>
public sealed class PluginRun
{
    public required PluginStage Stage { get; init; }
    public required Log Log { get; init; }
    public required string ImagesDir { get; init; }
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(10);
    public bool LeaveRunning { get; init; }

    /// <summary>--libdir DIR; null: CRISP_LIBS_DIR, else no plugin libraries.</summary>
    public string? LibDir { get; init; }

    /// <summary>Restore: the plugins the checkpoint's inventory lists (null when it has no list).</summary>
    public IReadOnlySet<string>? CheckpointPlugins { get; init; }

    /// <summary>The tracer that holds the tree, once it is seized.</summary>
    public Tracer? Tracer { get; set; }

    /// <summary>Finds a thread crisp holds seized: (pid, tid) → thread, null when not held.</summary>
    public Func<int, int, SeizedThread?> FindThread { get; set; } = (_, _) => null;

    /// <summary>Plugins the checkpoint being written depends on.</summary>
    public SortedSet<string> Dependencies { get; } = new(StringComparer.Ordinal);
}
