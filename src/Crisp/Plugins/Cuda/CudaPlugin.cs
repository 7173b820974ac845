namespace Crisp.Plugins.Cuda;

/// <summary>Checkpoints the GPU state of CUDA processes with NVIDIA's cuda-checkpoint utility, as CRIU's
/// cuda_plugin does (same name, so checkpoints are interchangeable). Dump: each CUDA task is locked while it
/// still runs (PauseDevices), then, with the tree seized, its device memory is saved into host memory by the
/// driver's restore thread, which alone is let run for it (CheckpointDevices); crisp then dumps that memory like
/// any other. After --leave-running or a failed dump each task is restored and unlocked again. Restore: the
/// restore thread alone runs `restore` and `unlock` once the task is complete (ResumeDevicesLate).</summary>
public sealed class CudaPlugin : ICrispPlugin
{
    public const string PluginName = "cuda_plugin";

    /// <summary>Skips the GPU presence check (for tests with a stand-in cuda-checkpoint).</summary>
    public const string ForceVariable = "CRISP_PLUGIN_CUDA_FORCE";

    public const string GpuDirectory = "/proc/driver/nvidia/gpus/";

    private PluginContext _ctx = null!;
    private CudaCheckpointTool _tool = null!;

    /// <summary>Dump: the CUDA tasks this run touched, with the state each had (CRIU's cuda_pids).</summary>
    private readonly Dictionary<int, Touched> _touched = [];

    private sealed class Touched(CudaTaskState initial, int restoreTid)
    {
        public CudaTaskState Initial { get; } = initial;
        /// <summary>The driver's restore thread (it lives as long as the CUDA context: asked once per run).</summary>
        public int RestoreTid { get; } = restoreTid;
        public bool Checkpointed { get; set; }
    }

    public string Name => PluginName;

    /// <summary>cuda-checkpoint cannot lock a frozen or stopped process: its driver threads must run.</summary>
    public bool NeedsInterruptOnlySeize => true;

    public PluginActivation Init(PluginContext context)
    {
        _ctx = context;
        if (context.Stage == PluginStage.PreDump)
            return PluginActivation.Disabled("CUDA state is not pre-dumped");
        if (context.Stage == PluginStage.Restore && context.ListedInCheckpoint == false)
            return PluginActivation.Disabled("the checkpoint holds no CUDA state");
        if (Environment.GetEnvironmentVariable(ForceVariable) != "1" && !Directory.Exists(GpuDirectory))
            return PluginActivation.Disabled($"no NVIDIA GPU ({GpuDirectory} does not exist)");
        if (CudaCheckpointTool.Find() is not { } path)
            return PluginActivation.Disabled($"{CudaCheckpointTool.FileName} is not on PATH");
        _tool = new CudaCheckpointTool(path, context.Log);
        if (!_tool.SupportsActions())
            return PluginActivation.Disabled($"{path} has no --action (a driver r555 or later is needed)");
        return PluginActivation.Enabled;
    }

    public bool PauseDevices(int pid)
    {
        if (_touched.ContainsKey(pid))
            return true;   // seized again after a retry: already paused
        if (_tool.RestoreTid(pid) is not { } tid)
            return false;   // not a CUDA process
        var state = _tool.State(pid);
        _ctx.RecordDependency();
        if (state is CudaTaskState.Locked or CudaTaskState.Checkpointed)
        {
            _ctx.Log.Info($"cuda: task {pid} is already {state.ToString().ToLowerInvariant()}; left so afterwards");
            _touched[pid] = new Touched(state, tid);
            return true;
        }
        if (state != CudaTaskState.Running)
            throw new CrispException($"task {pid}: CUDA state is {state.ToString().ToLowerInvariant()}");
        _ctx.Log.Info($"cuda: locking task {pid}");
        try
        {
            _tool.Action(pid, "lock", _ctx.Timeout);
        }
        catch
        {
            // A lock that timed out may have half-happened: never leave the task locked.
            try
            {
                if (_tool.State(pid) == CudaTaskState.Locked)
                    _tool.Action(pid, "unlock");
            }
            catch (Exception e) { _ctx.Log.Error($"cuda: unlocking task {pid} after a failed lock: {e.Message}"); }
            throw;
        }
        _touched[pid] = new Touched(CudaTaskState.Running, tid);
        return true;
    }

    public bool CheckpointDevices(int pid)
    {
        if (!_touched.TryGetValue(pid, out var touched))
            return false;
        if (touched.Initial == CudaTaskState.Checkpointed)
            return true;
        int tid = touched.RestoreTid;
        _ctx.Log.Info($"cuda: checkpointing task {pid} (restore thread {tid})");
        touched.Checkpointed = true;   // even a failed checkpoint may have started: Exit asks the tool
        _ctx.RunWithThreadAlone(pid, tid, () => _tool.Action(pid, "checkpoint"));
        return true;
    }

    public bool ResumeDevicesLate(int pid)
    {
        if (_tool.RestoreTid(pid) is not { } tid)
            return false;
        // Users expect a running process after restore, whatever state it was dumped in (CRIU does the same).
        _ctx.Log.Info($"cuda: restoring task {pid} (restore thread {tid})");
        _ctx.RunWithThreadAlone(pid, tid, () =>
        {
            var state = _tool.State(pid);
            if (state == CudaTaskState.Checkpointed)
                _tool.Action(pid, "restore");   // leaves it locked
            if (state is CudaTaskState.Checkpointed or CudaTaskState.Locked)
                _tool.Action(pid, "unlock");
        });
        return true;
    }

    /// <summary>After --leave-running or a failed dump every touched task goes back to the state it had.</summary>
    public void Exit(PluginStage stage, bool succeeded)
    {
        if (stage != PluginStage.Dump || succeeded && !_ctx.LeaveRunning)
            return;
        foreach (var (pid, touched) in _touched)
        {
            try
            {
                GiveBack(pid, touched);
            }
            catch (Exception e)
            {
                _ctx.Log.Error($"cuda: putting task {pid} back: {e.Message}");
            }
        }
    }

    private void GiveBack(int pid, Touched touched)
    {
        if (touched.Initial == CudaTaskState.Checkpointed)
            return;
        _ctx.Log.Info($"cuda: giving task {pid} back (was {touched.Initial.ToString().ToLowerInvariant()})");
        _ctx.RunWithThreadAlone(pid, touched.RestoreTid, () =>
        {
            var state = _tool.State(pid);
            if (touched.Checkpointed && state == CudaTaskState.Checkpointed)
            {
                _tool.Action(pid, "restore");
                state = CudaTaskState.Locked;
            }
            if (touched.Initial == CudaTaskState.Running && state == CudaTaskState.Locked)
                _tool.Action(pid, "unlock");
        });
    }
}
