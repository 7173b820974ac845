using System.Runtime.InteropServices;
using System.Text;

namespace Crisp.Plugins.Native;

/// <summary>The functions CRIU's binary exports to its plugins, exported by the native crisp under CRIU's names
/// (so CRIU plugins that call them load unchanged): <c>criu_get_image_dir</c> (criu-plugin.h),
/// <c>add_inventory_plugin</c> / <c>check_and_remove_inventory_plugin</c> (the inventory's plugin list) and
/// <c>set_compel_interrupt_only_mode</c>. C calls them without a context, so they act on the plugin crisp is
/// calling on this thread (<see cref="Enter"/>); called from anywhere else they fail (-1 / false).</summary>
internal static unsafe class CriuPluginApi
{
    [ThreadStatic] private static NativePlugin? t_current;

    /// <summary>Marks <paramref name="plugin"/> as the one being called on this thread until disposed.</summary>
    public static Scope Enter(NativePlugin plugin)
    {
        var previous = t_current;
        t_current = plugin;
        return new Scope(previous);
    }

    public readonly struct Scope(NativePlugin? previous) : IDisposable
    {
        public void Dispose() => t_current = previous;
    }

    [UnmanagedCallersOnly(EntryPoint = "criu_get_image_dir")]
    private static int GetImageDir()
    {
        try { return t_current?.ImagesDirFd() ?? -1; }
        catch (Exception e) { return Fail("criu_get_image_dir", e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "add_inventory_plugin")]
    private static int AddInventoryPlugin(byte* name)
    {
        try
        {
            if (t_current is not { } plugin || name == null)
                return -1;
            plugin.Context.Run.Dependencies.Add(Marshal.PtrToStringUTF8((nint)name)!);
            return 0;
        }
        catch (Exception e) { return Fail("add_inventory_plugin", e); }
    }

    /// <summary>True when the checkpoint lists the first <paramref name="length"/> bytes of
    /// <paramref name="name"/> as a plugin it needs, or lists none (older images: every plugin takes part).
    /// crisp checks the list by name against the active plugins, so nothing is removed here.</summary>
    [UnmanagedCallersOnly(EntryPoint = "check_and_remove_inventory_plugin")]
    private static byte CheckAndRemoveInventoryPlugin(byte* name, nuint length)
    {
        try
        {
            if (t_current is not { } plugin || name == null)
                return 0;
            var full = MemoryMarshal.CreateReadOnlySpanFromNullTerminated(name);
            string wanted = Encoding.UTF8.GetString(full[..(int)Math.Min((nuint)full.Length, length)]);
            return plugin.Context.Run.CheckpointPlugins is not { } listed || listed.Contains(wanted) ? (byte)1 : (byte)0;
        }
        catch (Exception e)
        {
            Fail("check_and_remove_inventory_plugin", e);
            return 0;
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "set_compel_interrupt_only_mode")]
    private static void SetInterruptOnlyMode()
    {
        if (t_current is { } plugin)
            plugin.NeedsInterruptOnlySeize = true;
    }

    /// <summary>An exception must not unwind into C: it is logged and the call fails.</summary>
    private static int Fail(string function, Exception e)
    {
        t_current?.Context.Log.Error($"plugin {t_current.Name}: {function}: {e.Message}");
        return -1;
    }
}
