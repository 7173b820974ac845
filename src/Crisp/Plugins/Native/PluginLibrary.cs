using Crisp.Linux;

namespace Crisp.Plugins.Native;

/// <summary>Loads CRIU plugin libraries from a directory as CRIU's cr_plugin_init does: every file whose name
/// ends in ".so" (crisp: in file-name order), which must export <c>CR_PLUGIN_DESC</c> for an ABI version and a
/// hook count crisp knows. Symbols are bound at load (<see cref="DynamicLoader"/>), so a plugin that needs a
/// function crisp does not export is refused here, not when it calls it.</summary>
internal static unsafe class PluginLibrary
{
    public static List<ICrispPlugin> LoadAll(string dir, Log log)
    {
        if (!Directory.Exists(dir))
            throw new CrispException($"plugin directory {dir} does not exist");
        var plugins = new List<ICrispPlugin>();
        foreach (var file in Directory.GetFiles(dir, "*.so").Order(StringComparer.Ordinal))
            plugins.Add(Load(file, log));
        return plugins;
    }

    private static NativePlugin Load(string file, Log log)
    {
        nint library;
        try
        {
            library = DynamicLoader.Open(Path.GetFullPath(file));
        }
        catch (InvalidOperationException e)
        {
            throw new CrispException($"plugin {file}: cannot load it: {e.Message}");
        }
        var desc = (PluginDescriptor*)DynamicLoader.Symbol(library, "CR_PLUGIN_DESC");
        string? refusal = desc == null ? "it exports no CR_PLUGIN_DESC (not a CRIU plugin)"
            : desc->Name == null ? "its CR_PLUGIN_DESC has no name"
            : desc->Version > PluginDescriptor.SupportedVersion ? $"it is built for plugin ABI {PluginDescriptor.VersionText(desc->Version)}, crisp knows up to {PluginDescriptor.VersionText(PluginDescriptor.SupportedVersion)}"
            : desc->MaxHooks > (uint)PluginHook.Count ? $"it has {desc->MaxHooks} hook slots, crisp knows {(int)PluginHook.Count}"
            : null;
        if (refusal is not null)
        {
            DynamicLoader.Close(library);
            throw new CrispException($"plugin {file}: {refusal}");
        }
        var plugin = new NativePlugin(file, library, desc);
        var hooks = Enumerable.Range(0, (int)desc->MaxHooks).Where(i => desc->Hooks[i] != 0).Select(i => ((PluginHook)i).ToString());
        log.Debug($"plugin library {file}: {plugin.Name} (ABI {PluginDescriptor.VersionText(desc->Version)}, hooks: {string.Join(", ", hooks)})");
        return plugin;
    }
}
