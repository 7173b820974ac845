namespace Crisp.Plugins;

/// <summary>Loads the plugins for one run: the built-in ones, then every CRIU plugin library (*.so) in --libdir DIR
/// or CRISP_LIBS_DIR, in file-name order (<see cref="Native.PluginLibrary"/>).
/// Each plugin's Init decides whether it takes part; one that throws aborts the run (the ones already
/// initialised get Exit(failed)).</summary>
public static class PluginLoader
{
    public const string LibsDirVariable = "CRISP_LIBS_DIR";

    /// <summary>Plugins compiled into crisp, fresh instances per run (plugins keep per-run state).</summary>
    public static IEnumerable<ICrispPlugin> BuiltIn() => [new Cuda.CudaPlugin()];

    public static PluginSet Load(PluginRun run, IEnumerable<ICrispPlugin>? extra = null)
    {
        var candidates = BuiltIn().Concat(extra ?? []).ToList();
        string? dir = run.LibDir ?? Environment.GetEnvironmentVariable(LibsDirVariable);
        if (!string.IsNullOrEmpty(dir))
            candidates.AddRange(Native.PluginLibrary.LoadAll(dir, run.Log));

        var active = new List<ICrispPlugin>();
        var disabled = new List<(string, string)>();
        foreach (var plugin in candidates)
        {
            if (active.Any(p => p.Name == plugin.Name) || disabled.Any(d => d.Item1 == plugin.Name))
                throw new CrispException($"two plugins are named '{plugin.Name}'");
            PluginActivation activation;
            try
            {
                activation = plugin.Init(new PluginContext(run, plugin.Name));
            }
            catch (Exception e)
            {
                foreach (var p in active)
                {
                    try { p.Exit(run.Stage, false); } catch (Exception x) { run.Log.Error($"plugin {p.Name}: exit: {x.Message}"); }
                }
                throw new CrispException($"plugin {plugin.Name}: init for {run.Stage.ToString().ToLowerInvariant()} failed: {e.Message}", e);
            }
            if (activation.Active)
            {
                run.Log.Info($"plugin {plugin.Name}: active{(plugin.NeedsInterruptOnlySeize ? " (needs interrupt-only seize)" : "")}");
                active.Add(plugin);
            }
            else
            {
                run.Log.Debug($"plugin {plugin.Name}: not taking part: {activation.Reason}");
                disabled.Add((plugin.Name, activation.Reason ?? "disabled"));
            }
        }
        return new PluginSet(run, active, disabled);
    }
}
