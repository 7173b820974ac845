using Crisp.Compel;
using Crisp.Images;

namespace Crisp.Dump;

/// <summary>Everything one dump run shares: options, log, images, the tracer, the seized tree and each resource
/// kind's dump-wide state, one typed property per kind, so what a kind reads of another's is visible in the types
/// (memory's mapped files and memfd mappings are entries of the files' table). The context disposes what the
/// kinds hold open.</summary>
public sealed class DumpContext(DumpOptions options, Log log, ImageDirectory images, Tracer tracer, FaultInjection faults) : IDisposable
{
    private uint _nextId = 1;
    private Resources.Memory.MemoryDumpState? _memory;

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

    /// <summary>Times and page counts for stats-dump.</summary>
    public Stats.DumpCounters Counters { get; } = new();
    public Resources.Namespaces.NamespacesDumpState Namespaces { get; } = new();
    public Resources.Cgroups.CgroupsDump.State Cgroups { get; } = new();
    public Resources.Ipc.IpcNamespaces Ipc { get; } = new();
    public Resources.Files.FilesDumpState Files { get; } = new();
    /// <summary>Built on the files' table and memfd inodes (mapped files are files.img entries).</summary>
    public Resources.Memory.MemoryDumpState Memory => _memory ??= new(Files.Table, Files.Memfds, Log);
    public Resources.Seccomp.SeccompChains Seccomp { get; } = new();

    /// <summary>The images' number for host pid <paramref name="hostPid"/> (a task's, zombie's, group's or session's):
    /// its pid in the tree's own pid namespace when it belongs to the tree, else the pid as it is.</summary>
    public int VirtualPidOf(int hostPid) =>
        Tasks.FirstOrDefault(t => t.Pid == hostPid)?.VirtualPid
        ?? Tasks.SelectMany(t => t.Zombies).FirstOrDefault(z => z.Pid == hostPid)?.VirtualPid
        ?? hostPid;

    /// <summary>A new id for an image object (files, pipes, vm/fs/files sets) — unique in this dump.</summary>
    public uint NewId() => _nextId++;

    /// <summary>Closes what the kinds held for the dump (network namespaces opened for sock_diag).</summary>
    public void Dispose()
    {
        Namespaces.Dispose();
        Files.Dispose();
        foreach (var fd in _memory?.EndedTrackers ?? [])
            fd.Dispose();   // the tree runs again by now: un-write-protecting its pages costs it no frozen time
    }
}
