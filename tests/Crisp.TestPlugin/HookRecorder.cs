using Crisp.Plugins;

namespace Crisp.TestPlugin;

/// <summary>Records every hook crisp calls, one line each, in the file CRISP_TEST_PLUGIN_LOG names (it takes
/// part only when that is set), and says at dump that the checkpoint depends on it. CRISP_TEST_PLUGIN_FAIL=HOOK
/// makes that hook throw.</summary>
public sealed class HookRecorder : ICrispPlugin
{
    private string _log = "";

    public string Name => "crisp_test_plugin";

    public PluginActivation Init(PluginContext context)
    {
        if (Environment.GetEnvironmentVariable("CRISP_TEST_PLUGIN_LOG") is not { Length: > 0 } log)
            return PluginActivation.Disabled("CRISP_TEST_PLUGIN_LOG is not set");
        _log = log;
        Record($"Init {context.Stage}");
        if (context.Stage == PluginStage.Dump)
            context.RecordDependency();
        return PluginActivation.Enabled;
    }

    public void Exit(PluginStage stage, bool succeeded) => Record($"Exit {stage} {succeeded}");

    public bool PauseDevices(int pid) => Hook($"PauseDevices {pid}");
    public bool CheckpointDevices(int pid) => Hook($"CheckpointDevices {pid}");
    public bool DumpDevicesLate(int id) => Hook($"DumpDevicesLate {id}");
    public bool RestoreInit() => Hook("RestoreInit");
    public bool PostForking() => Hook("PostForking");
    public bool ResumeDevicesLate(int pid) => Hook($"ResumeDevicesLate {pid}");

    /// <summary>Records the call; returns false ("not mine"), so the other plugins are asked as well.</summary>
    private bool Hook(string call)
    {
        Record(call);
        if (Environment.GetEnvironmentVariable("CRISP_TEST_PLUGIN_FAIL") == call.Split(' ')[0])
            throw new InvalidOperationException($"injected failure in {call.Split(' ')[0]}");
        return false;
    }

    private void Record(string line) => File.AppendAllText(_log, line + "\n");
}
