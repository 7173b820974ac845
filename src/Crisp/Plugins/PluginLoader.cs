using System.Diagnostics.CodeAnalysis;
using System.Reflection;
using System.Runtime.CompilerServices;

namespace Crisp.Plugins;

/// <summary>Loads the plugins for one run: the built-in ones, then every assembly (*.dll) in --libdir DIR or
/// CRISP_LIBS_DIR, each in a load context of its own (<see cref="PluginLoadContext"/>), in file-name order.
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
            candidates.AddRange(FromDirectory(dir, run.Log));

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

    /// <summary>Instances of every public, concrete <see cref="ICrispPlugin"/> with a parameterless constructor
    /// in the assemblies of <paramref name="dir"/>.</summary>
    [UnconditionalSuppressMessage("Trimming", "IL2026", Justification = "Plugin assemblies are loaded only by the JIT build; the AOT build refuses --libdir.")]
    [UnconditionalSuppressMessage("Trimming", "IL2072", Justification = "Same: plugin types come from assemblies loaded at run time.")]
    [UnconditionalSuppressMessage("Trimming", "IL2075", Justification = "Same.")]
    [UnconditionalSuppressMessage("AOT", "IL3050", Justification = "Same.")]
    private static List<ICrispPlugin> FromDirectory(string dir, Log log)
    {
        if (!Directory.Exists(dir))
            throw new CrispException($"plugin directory {dir} does not exist");
        var files = Directory.GetFiles(dir, "*.dll").Order(StringComparer.Ordinal).ToList();
        if (files.Count > 0 && !RuntimeFeature.IsDynamicCodeSupported)
            throw new CrispException($"plugin directory {dir}: this build of crisp is compiled ahead of time and cannot load plugin assemblies");
        var plugins = new List<ICrispPlugin>();
        foreach (var file in files)
        {
            Assembly assembly;
            try
            {
                assembly = new PluginLoadContext(file).LoadFromAssemblyPath(Path.GetFullPath(file));
            }
            catch (Exception e) when (e is BadImageFormatException or FileLoadException or IOException)
            {
                throw new CrispException($"plugin {file}: cannot load it: {e.Message}");
            }
            int before = plugins.Count;
            Type[] types;
            try { types = assembly.GetExportedTypes(); }
            catch (Exception e) when (e is ReflectionTypeLoadException or FileNotFoundException or TypeLoadException)
            {
                throw new CrispException($"plugin {file}: its types do not load: {e.Message}");
            }
            foreach (var type in types)
                if (type is { IsClass: true, IsAbstract: false } && typeof(ICrispPlugin).IsAssignableFrom(type) && type.GetConstructor(Type.EmptyTypes) is not null)
                    plugins.Add((ICrispPlugin)Activator.CreateInstance(type)!);
            log.Debug($"plugin assembly {file}: {plugins.Count - before} plugin(s)");
        }
        return plugins;
    }
}
