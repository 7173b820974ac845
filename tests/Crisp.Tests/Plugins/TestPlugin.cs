
namespace Crisp.Tests.Plugins;

/// <summary>The test plugin: tests/workloads/test_plugin.c built into a CRIU plugin library (.so) — it logs the
/// hooks crisp calls (CRISP_TEST_PLUGIN_LOG) and fails the one CRISP_TEST_PLUGIN_FAIL names.</summary>
public static class TestPlugin
{
    /// <summary>The file the plugin leaves in the images directory at dump (criu_get_image_dir).</summary>
    public const string StateFile = "crisp-test-plugin.state";

    /// <summary>Path of the built library; <paramref name="defines"/> builds a variant (-DNO_DESC, -DABI_VERSION=N).</summary>
    public static string Build(string defines = "") => Support.Workloads.Build("test_plugin", $"-shared -fPIC {defines}".TrimEnd());
}
