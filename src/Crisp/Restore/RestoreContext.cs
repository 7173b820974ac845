using Crisp.Compel;
using Crisp.Images;
using Crisp.Images.Proto;

namespace Crisp.Restore;

/// <summary>Everything one restore run shares. The image directory is only ever read.
/// Resources keep restore-wide state of their own through <see cref="Shared{T}"/>.</summary>
public sealed class RestoreContext(RestoreOptions options, Log log, ImageDirectory images, Tracer tracer, Seizer seizer,
    FaultInjection faults, inventory_entry inventory)
{
    private readonly Dictionary<Type, object> _shared = [];

    public RestoreOptions Options { get; } = options;
    public Log Log { get; } = log;
    public ImageDirectory Images { get; } = images;
    public Tracer Tracer { get; } = tracer;
    public Seizer Seizer { get; } = seizer;
    public FaultInjection Faults { get; } = faults;
    public inventory_entry Inventory { get; } = inventory;

    /// <summary>The plugins taking part in this restore (none unless the restorer loads them).</summary>
    public Plugins.PluginSet Plugins { get; set; } = Crisp.Plugins.PluginSet.None(new() { Stage = Crisp.Plugins.PluginStage.Restore, Log = log, ImagesDir = images.Path });

    /// <summary>Tasks, parents before children (the root first).</summary>
    public List<RestoreTask> Tasks { get; } = [];
    /// <summary>Every task was let go: the restore succeeded (read by cleanups that differ on failure).</summary>
    public bool Released { get; set; }
    public RestoreTask Root => Tasks[0];

    public T Shared<T>() where T : class, new()
    {
        if (!_shared.TryGetValue(typeof(T), out var o))
            _shared[typeof(T)] = o = new T();
        return (T)o;
    }
}
