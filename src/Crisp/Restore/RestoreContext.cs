using Crisp.Compel;
using Crisp.Images;
using Crisp.Images.Proto;

namespace Crisp.Restore;

/// <summary>Everything one restore run shares: options, log, the images (only ever read), the tracer, the tasks
/// and each resource kind's restore-wide state, built here up front, one typed property per kind. Disposing the
/// context closes every fd crisp made for the tree.</summary>
public sealed class RestoreContext(RestoreOptions options, Log log, ImageDirectory images, Tracer tracer, Seizer seizer,
    FaultInjection faults, inventory_entry inventory) : IDisposable
{
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

    public Resources.Namespaces.NamespacesRestoreState Namespaces { get; } = new();
    public Resources.Cgroups.CgroupsRestore.State Cgroups { get; } = new();
    /// <summary>SysV objects, and the segments' sizes the memory stage attaches them by.</summary>
    public Resources.Ipc.IpcRestoreState Ipc { get; } = new();
    /// <summary>Mms, mapped files, shared anonymous objects; memfd mappings come from <see cref="Files"/>.</summary>
    public Resources.Memory.MemoryRestore.State Memory { get; } = new(log);
    public Resources.Files.FilesRestoreState Files { get; } = new();
    public Resources.Fs.FsPaths Fs { get; } = new();
    public Resources.Seccomp.SeccompRestore.Loaded Seccomp { get; } = new();

    /// <summary>Closes what the kinds made in crisp for the tree (shared memory, file descriptions, held namespaces).</summary>
    public void Dispose()
    {
        Memory.Dispose();
        Files.Dispose();
        Namespaces.Dispose();
    }
}
