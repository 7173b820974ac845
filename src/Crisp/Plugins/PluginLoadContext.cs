using System.Diagnostics.CodeAnalysis;
using System.Reflection;
using System.Runtime.Loader;

namespace Crisp.Plugins;

/// <summary>One plugin assembly's load context: its own dependencies come from its folder, while crisp's
/// assemblies (the contract above all) resolve to the ones already loaded, so the plugin's ICrispPlugin is
/// crisp's ICrispPlugin.</summary>
internal sealed class PluginLoadContext(string pluginPath) : AssemblyLoadContext($"crisp-plugin:{Path.GetFileName(pluginPath)}")
{
    private readonly AssemblyDependencyResolver _resolver = new(pluginPath);

    [UnconditionalSuppressMessage("Trimming", "IL2026", Justification = "Only the JIT build loads plugin assemblies (see PluginLoader).")]
    protected override Assembly? Load(AssemblyName name)
    {
        if (Default.Assemblies.Any(a => AssemblyName.ReferenceMatchesDefinition(a.GetName(), name)))
            return null;   // shared with crisp: use the default context's copy
        return _resolver.ResolveAssemblyToPath(name) is { } path ? LoadFromAssemblyPath(path) : null;
    }

    protected override nint LoadUnmanagedDll(string unmanagedDllName) =>
        _resolver.ResolveUnmanagedDllToPath(unmanagedDllName) is { } path ? LoadUnmanagedDllFromPath(path) : 0;
}
