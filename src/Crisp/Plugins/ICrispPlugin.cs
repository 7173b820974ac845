namespace Crisp.Plugins;

/// <summary>A crisp plugin: CRIU's plugin contract (criu-plugin.h) in C#. Device vendors carry state the
/// kernel does not expose through these hooks. Every hook has CRIU's meaning and is called at CRIU's point
/// (named on each hook). A hook returns false (CRIU's -ENOTSUP) when the object is not this plugin's — the
/// next plugin is asked; true when it handled it (the chain stops, as in CRIU's run_plugins). A hook that
/// fails throws: the dump or restore is aborted and undone.
/// <para>Built-in plugins are listed in <see cref="PluginLoader"/>; others are CRIU plugin libraries (C ABI, .so)
/// in <c>--libdir DIR</c> (or <c>CRISP_LIBS_DIR</c>), seen through <see cref="Native.NativePlugin"/>.</para></summary>
public interface ICrispPlugin
{
    /// <summary>Unique name; recorded in inventory.img when a checkpoint depends on this plugin.</summary>
    string Name { get; }

    /// <summary>CRIU's init(stage): called once per run before anything is touched. Returns whether the
    /// plugin takes part in this run (a disabled plugin gets no further call, Exit included). Throwing aborts
    /// the run before any task is touched.</summary>
    PluginActivation Init(PluginContext context);

    /// <summary>CRIU's exit(stage, ret): called once at the end of a run the plugin took part in, on success
    /// and on failure — for a dump, while the tasks are still seized (before they are killed or let go), so a
    /// device plugin can put devices back (e.g. unlock them after --leave-running or a failed dump).
    /// Exceptions are logged, never thrown on.</summary>
    void Exit(PluginStage stage, bool succeeded) { }

    /// <summary>Declared by a plugin that needs tasks running when it pauses their devices: the tree is then
    /// seized by ptrace interrupt only, never by freezing a cgroup (a --freeze-cgroup that is frozen is thawed
    /// first and put back afterwards). Read after <see cref="Init"/>.</summary>
    bool NeedsInterruptOnlySeize => false;

    // ---- dump ----

    /// <summary>PAUSE_DEVICES (seize.c): a task of the tree, still running, just before crisp seizes it — the
    /// root first, then each child as it is found. Quiesce the task's devices here.</summary>
    bool PauseDevices(int pid) => false;

    /// <summary>CHECKPOINT_DEVICES (seize.c checkpoint_devices, right after collect_pstree): every task of the
    /// tree is seized; save each task's device state (once per task) before crisp collects anything.</summary>
    bool CheckpointDevices(int pid) => false;

    /// <summary>DUMP_UNIX_SK (sk-unix.c): a unix socket whose peer is outside the dumped tree; <paramref name="fd"/>
    /// is crisp's own descriptor of it, <paramref name="id"/> its image id (inode).</summary>
    bool DumpUnixSocket(int fd, uint id) => false;

    /// <summary>DUMP_EXT_FILE (files-ext.c): a file crisp has no kind for; <paramref name="fd"/> is crisp's own
    /// descriptor of it, <paramref name="id"/> the id its fdinfo entries refer to.</summary>
    bool DumpExtFile(int fd, uint id) => false;

    /// <summary>DUMP_EXT_MOUNT (mount.c): a mount crisp cannot dump by itself.</summary>
    bool DumpExtMount(string mountpoint, int mountId) => false;

    /// <summary>DUMP_EXT_LINK (net.c): a network link of a kind crisp does not know (index, ARPHRD type, kind).</summary>
    bool DumpExtLink(int index, int type, string kind) => false;

    /// <summary>HANDLE_DEVICE_VMA (proc_parse.c): a mapping of a device file crisp cannot map back by itself;
    /// true when the plugin takes care of it (the area is then recorded, not refused).</summary>
    bool HandleDeviceVma(int fd, ulong device, ulong inode) => false;

    /// <summary>DUMP_DEVICES_LATE (cr-dump.c, after every task is dumped): tree-wide device state;
    /// <paramref name="id"/> is the root's pid, as in CRIU.</summary>
    bool DumpDevicesLate(int id) => false;

    // ---- restore ----

    /// <summary>RESTORE_INIT (plugin.c): right after every plugin's Init and the check that the checkpoint's
    /// plugins are all present, before anything is created.</summary>
    bool RestoreInit() => false;

    /// <summary>POST_FORKING (cr-restore.c): every task of the tree exists (crisp: the puppet tree is built),
    /// none has its state yet.</summary>
    bool PostForking() => false;

    /// <summary>RESTORE_UNIX_SK (sk-unix.c): the socket dumped by <see cref="DumpUnixSocket"/>; returns a
    /// descriptor in crisp, or null when not this plugin's.</summary>
    int? RestoreUnixSocket(uint id) => null;

    /// <summary>RESTORE_EXT_FILE (files-ext.c): the file dumped by <see cref="DumpExtFile"/>; returns a descriptor
    /// in crisp, or null when not this plugin's. <paramref name="retry"/>: ask again once other files exist.</summary>
    int? RestoreExtFile(uint id, out bool retry)
    {
        retry = false;
        return null;
    }

    /// <summary>RESTORE_EXT_MOUNT (mount.c): mount what <see cref="DumpExtMount"/> saved at
    /// <paramref name="mountpoint"/>; <paramref name="isFile"/>: the mountpoint is a file.</summary>
    bool RestoreExtMount(int mountId, string mountpoint, string oldRoot, out bool isFile)
    {
        isFile = false;
        return false;
    }

    /// <summary>UPDATE_VMA_MAP (files-reg.c): a file mapping is about to be mapped back; the plugin may give
    /// another offset and a descriptor of its own to map instead.</summary>
    bool UpdateVmaMap(string path, ulong address, ulong oldPgoff, out ulong newPgoff, out int pluginFd)
    {
        newPgoff = oldPgoff;
        pluginFd = -1;
        return false;
    }

    /// <summary>RESUME_DEVICES_LATE (cr-restore.c, after finalize_restore): each task is complete — memory,
    /// registers, credentials, seccomp — and still stopped, just before the tree is let go.</summary>
    bool ResumeDevicesLate(int pid) => false;
}

/// <summary>What <see cref="ICrispPlugin.Init"/> decides: take part in this run, or not (and why — a
/// restore that needs a disabled plugin says so).</summary>
public sealed record PluginActivation(bool Active, string? Reason)
{
    public static PluginActivation Enabled { get; } = new(true, null);
    public static PluginActivation Disabled(string reason) => new(false, reason);
}
