using Crisp.Images.Proto;

namespace Crisp.Plugins;

/// <summary>The plugins taking part in one run, and CRIU's run_plugins for each hook: plugins are asked in
/// load order (built-in first) until one handles the object. A hook that throws fails the run with one line
/// naming the plugin, the hook and the object.</summary>
public sealed class PluginSet
{
    private readonly List<ICrispPlugin> _active;
    private bool _exited;

    internal PluginSet(PluginRun run, List<ICrispPlugin> active, List<(string Name, string Reason)> disabled)
    {
        Run = run;
        _active = active;
        Disabled = disabled;
    }

    /// <summary>No plugin at all (in-process callers that do not load any).</summary>
    public static PluginSet None(PluginRun run) => new(run, [], []);

    public PluginRun Run { get; }
    public IReadOnlyList<ICrispPlugin> Active => _active;

    /// <summary>Plugins that were loaded but declined this run, with their reasons.</summary>
    public IReadOnlyList<(string Name, string Reason)> Disabled { get; }

    /// <summary>Some active plugin needs the tree seized by ptrace interrupt only (no cgroup freezer).</summary>
    public bool NeedsInterruptOnlySeize => _active.Any(p => p.NeedsInterruptOnlySeize);

    public void PauseDevices(int pid) => Dispatch("PauseDevices", $"task {pid}", p => p.PauseDevices(pid));
    public void CheckpointDevices(int pid) => Dispatch("CheckpointDevices", $"task {pid}", p => p.CheckpointDevices(pid));
    public void DumpDevicesLate(int rootPid) => Dispatch("DumpDevicesLate", $"tree {rootPid}", p => p.DumpDevicesLate(rootPid));
    public bool DumpUnixSocket(int fd, uint id) => Dispatch("DumpUnixSocket", $"socket {id}", p => p.DumpUnixSocket(fd, id));
    public bool DumpExtFile(int fd, uint id) => Dispatch("DumpExtFile", $"file {id}", p => p.DumpExtFile(fd, id));
    public bool DumpExtMount(string mountpoint, int mountId) => Dispatch("DumpExtMount", $"mount {mountpoint}", p => p.DumpExtMount(mountpoint, mountId));
    public bool DumpExtLink(int index, int type, string kind) => Dispatch("DumpExtLink", $"link {index} ({kind})", p => p.DumpExtLink(index, type, kind));
    public bool HandleDeviceVma(int fd, ulong device, ulong inode) => Dispatch("HandleDeviceVma", $"device {device:x} inode {inode}", p => p.HandleDeviceVma(fd, device, inode));
    public void RestoreInit() => Dispatch("RestoreInit", "restore", p => p.RestoreInit());
    public void PostForking() => Dispatch("PostForking", "the task tree", p => p.PostForking());
    public void ResumeDevicesLate(int pid) => Dispatch("ResumeDevicesLate", $"task {pid}", p => p.ResumeDevicesLate(pid));

    public int? RestoreUnixSocket(uint id) => First("RestoreUnixSocket", $"socket {id}", p => p.RestoreUnixSocket(id));

    public int? RestoreExtFile(uint id, out bool retry)
    {
        bool again = false;
        var fd = First("RestoreExtFile", $"file {id}", p =>
        {
            var r = p.RestoreExtFile(id, out bool ask);
            again |= r is null && ask;
            return r;
        });
        retry = again;
        return fd;
    }

    /// <summary>Dump: the inventory's plugins entry, or null when the checkpoint depends on no plugin. CRIU always
    /// writes it (empty = none); crisp leaves it out then, so that the inventory stays exactly what older crit
    /// versions (Debian's 3.17, without field 12) print — an absent entry asks no plugin check at restore.</summary>
    public plugins_entry? InventoryEntry()
    {
        if (Run.Dependencies.Count == 0)
            return null;
        var entry = new plugins_entry();
        entry.Plugins.AddRange(Run.Dependencies);
        return entry;
    }

    /// <summary>Restore: every plugin the checkpoint lists must take part, or the restore is refused before
    /// anything is created.</summary>
    public void CheckCheckpointNeeds()
    {
        foreach (var name in Run.CheckpointPlugins ?? new HashSet<string>())
        {
            if (_active.Any(p => p.Name == name))
                continue;
            var disabled = Disabled.FirstOrDefault(d => d.Name == name);
            throw new CrispException(disabled.Name is null
                ? $"the checkpoint needs plugin '{name}', which is not loaded (give its directory with --libdir or CRISP_LIBS_DIR)"
                : $"the checkpoint needs plugin '{name}', which is disabled here: {disabled.Reason}");
        }
    }

    /// <summary>Every active plugin's Exit, once; failures are logged (the run's outcome is already decided).</summary>
    public void Exit(bool succeeded)
    {
        if (_exited)
            return;
        _exited = true;
        foreach (var p in _active)
        {
            try { p.Exit(Run.Stage, succeeded); }
            catch (Exception e) { Run.Log.Error($"plugin {p.Name}: exit after {(succeeded ? "success" : "failure")}: {e.Message}"); }
        }
    }

    private bool Dispatch(string hook, string what, Func<ICrispPlugin, bool> call)
    {
        foreach (var p in _active)
            if (Call(p, hook, what, () => call(p)))
                return true;
        return false;
    }

    private T? First<T>(string hook, string what, Func<ICrispPlugin, T?> call) where T : struct
    {
        foreach (var p in _active)
            if (Call(p, hook, what, () => call(p)) is { } r)
                return r;
        return null;
    }

    private T Call<T>(ICrispPlugin p, string hook, string what, Func<T> call)
    {
        Run.Log.Debug($"plugin {p.Name}: {hook} of {what}");
        try
        {
            return call();
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new CrispException($"plugin {p.Name}: {hook} of {what} failed: {OneLine(e.Message)}", e);
        }
    }

    private static string OneLine(string s) => string.Join(' ', s.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
}
