using Crisp.Compel;
using Crisp.Images;

namespace Crisp.Dump;

/// <summary>Everything one dump run shares: options, log, images, the tracer and the seized tree.
/// Resources keep dump-wide state of their own through <see cref="Shared{T}"/>, so adding a kind
/// of object does not touch this class.</summary>
public sealed class DumpContext(DumpOptions options, Log log, ImageDirectory images, Tracer tracer, FaultInjection faults)
{
    private readonly Dictionary<Type, object> _shared = [];
    private uint _nextId = 1;

    public DumpOptions Options { get; } = options;
    public Log Log { get; } = log;
    public ImageDirectory Images { get; } = images;
    public Tracer Tracer { get; } = tracer;
    public FaultInjection Faults { get; } = faults;

    /// <summary>The cgroup frozen to seize the tree (--freeze-cgroup), or null for ptrace-only seizing.</summary>
    public Compel.Freezer.CgroupFreezer? Freezer { get; set; }

    /// <summary>The plugins taking part in this dump (none unless the dumper loads them).</summary>
    public Plugins.PluginSet Plugins { get; set; } = Crisp.Plugins.PluginSet.None(new() { Stage = Crisp.Plugins.PluginStage.Dump, Log = log, ImagesDir = images.Path });

    /// <summary>Seized tasks, parents before children (the root first).</summary>
    public List<DumpTask> Tasks { get; } = [];

    /// <summary>The images' number for host pid <paramref name="hostPid"/> (a task's, zombie's, group's or session's):
    /// its pid in the tree's own pid namespace when it belongs to the tree, else the pid as it is.</summary>
    public int VirtualPidOf(int hostPid) =>
        Tasks.FirstOrDefault(t => t.Pid == hostPid)?.VirtualPid
        ?? Tasks.SelectMany(t => t.Zombies).FirstOrDefault(z => z.Pid == hostPid)?.VirtualPid
        ?? hostPid;

    /// <summary>A new id for an image object (files, pipes, vm/fs/files sets) — unique in this dump.</summary>
    public uint NewId() => _nextId++;

    /// <summary>The one instance of a resource's dump-wide state, created on first use.</summary>
    public T Shared<T>() where T : class, new()
    {
        if (!_shared.TryGetValue(typeof(T), out var o))
            _shared[typeof(T)] = o = new T();
        return (T)o;
    }
}
