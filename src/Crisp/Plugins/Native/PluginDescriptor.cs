using System.Runtime.InteropServices;

namespace Crisp.Plugins.Native;

/// <summary>CRIU's <c>cr_plugin_desc_t</c>, the <c>CR_PLUGIN_DESC</c> a plugin library exports: name, init(stage),
/// exit(stage, ret), the ABI version it was built for, how many hook slots it has, and the hooks (filled by the
/// library's constructors, or by its init).</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct PluginDescriptor
{
    /// <summary>CRIU_PLUGIN_VERSION this ABI is (0.2.0 as CRIU_PLUGIN_GEN_VERSION packs it).</summary>
    public const uint SupportedVersion = (0 << 16) + (2 << 8) + 0;

    public byte* Name;
    public delegate* unmanaged<int, int> Init;
    public delegate* unmanaged<int, int, void> Exit;
    public uint Version;
    public uint MaxHooks;
    public HookTable Hooks;

    [System.Runtime.CompilerServices.InlineArray((int)PluginHook.Count)]
    public struct HookTable
    {
        private nint _first;
    }

    public static string VersionText(uint v) => $"{v >> 16}.{(v >> 8) & 0xff}.{v & 0xff}";
}
