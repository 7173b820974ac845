namespace Crisp.Plugins;

/// <summary>The run a plugin is loaded for (CRIU's CR_PLUGIN_STAGE__*, same values).</summary>
public enum PluginStage
{
    Dump = 0,
    PreDump = 1,
    Restore = 2,
}
