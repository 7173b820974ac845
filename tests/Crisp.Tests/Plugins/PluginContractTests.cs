using Crisp.Images.Proto;
using Crisp.Plugins;
using Crisp.Plugins.Cuda;

namespace Crisp.Tests.Plugins;

/// <summary>The plugin contract without processes: activation, dispatch, recorded dependencies and the
/// restore-time check, with plugins defined here.</summary>
public class PluginContractTests
{
    private sealed class Probe(string name, bool handles, bool active = true) : ICrispPlugin
    {
        public List<string> Calls { get; } = [];
        public string Name => name;
        public PluginActivation Init(PluginContext context)
        {
            Calls.Add($"Init {context.Stage}");
            if (active && context.Stage == PluginStage.Dump)
                context.RecordDependency();
            return active ? PluginActivation.Enabled : PluginActivation.Disabled("switched off");
        }
        public void Exit(PluginStage stage, bool succeeded) => Calls.Add($"Exit {succeeded}");
        public bool PauseDevices(int pid)
        {
            Calls.Add($"PauseDevices {pid}");
            return pid < 0 ? throw new InvalidOperationException("bad\ndevice") : handles;
        }
    }

    private static PluginRun Run(PluginStage stage, IReadOnlySet<string>? listed = null, string? libDir = null) =>
        new() { Stage = stage, Log = Log.Null, ImagesDir = "/nonexistent", CheckpointPlugins = listed, LibDir = libDir };

    [Fact]
    public void HooksAreAskedInOrderUntilOneHandlesTheObject()
    {
        var a = new Probe("a", handles: false);
        var b = new Probe("b", handles: true);
        var c = new Probe("c", handles: true);
        var set = PluginLoader.Load(Run(PluginStage.Dump), [a, b, c]);
        set.PauseDevices(7);
        Assert.Contains("PauseDevices 7", a.Calls);
        Assert.Contains("PauseDevices 7", b.Calls);
        Assert.DoesNotContain("PauseDevices 7", c.Calls);
        Assert.Equal(["a", "b", "c"], set.InventoryEntry()!.Plugins);
        Assert.Null(PluginLoader.Load(Run(PluginStage.Dump)).InventoryEntry());   // nothing needed: no entry
        set.Exit(true);
        set.Exit(false);   // once only
        Assert.Equal(["Init Dump", "PauseDevices 7", "Exit True"], a.Calls);
    }

    [Fact]
    public void AFailingHookIsOneLineNamingThePluginHookAndTask()
    {
        var set = PluginLoader.Load(Run(PluginStage.Dump), [new Probe("a", handles: false)]);
        var e = Assert.Throws<CrispException>(() => set.PauseDevices(-3));
        Assert.Equal("plugin a: PauseDevices of task -3 failed: bad device", e.Message);
    }

    [Fact]
    public void RestoreRefusesACheckpointWhosePluginIsMissingOrDisabled()
    {
        var missing = PluginLoader.Load(Run(PluginStage.Restore, new HashSet<string> { "gpu_x" }), [new Probe("a", true)]);
        Assert.Equal("the checkpoint needs plugin 'gpu_x', which is not loaded (give its directory with --libdir or CRISP_LIBS_DIR)",
            Assert.Throws<CrispException>(missing.CheckCheckpointNeeds).Message);
        var off = PluginLoader.Load(Run(PluginStage.Restore, new HashSet<string> { "a" }), [new Probe("a", true, active: false)]);
        Assert.Equal("the checkpoint needs plugin 'a', which is disabled here: switched off",
            Assert.Throws<CrispException>(off.CheckCheckpointNeeds).Message);
        PluginLoader.Load(Run(PluginStage.Restore, null), []).CheckCheckpointNeeds();   // old images: no list, no check
    }

    [Fact]
    public void CudaPluginTakesNoPartInPreDumpNorInARestoreWithoutCudaState()
    {
        var pre = PluginLoader.Load(Run(PluginStage.PreDump));
        Assert.Empty(pre.Active);
        Assert.Contains(pre.Disabled, d => d.Name == CudaPlugin.PluginName && d.Reason.Contains("pre-dump"));
        var restore = PluginLoader.Load(Run(PluginStage.Restore, new HashSet<string>()));
        Assert.Contains(restore.Disabled, d => d.Name == CudaPlugin.PluginName && d.Reason.Contains("no CUDA state"));
    }

    [Fact]
    public void WithoutAGpuOrToolTheCudaPluginIsDisabledWithItsReason()
    {
        if (Environment.GetEnvironmentVariable(CudaPlugin.ForceVariable) == "1" || Directory.Exists(CudaPlugin.GpuDirectory))
            return;   // a GPU machine: nothing to check here
        var dump = PluginLoader.Load(Run(PluginStage.Dump));
        Assert.False(dump.NeedsInterruptOnlySeize);
        Assert.Contains(dump.Disabled, d => d.Name == CudaPlugin.PluginName && d.Reason.Contains("no NVIDIA GPU"));
    }

    [Fact]
    public void AMissingLibdirIsOneClearError()
    {
        var run = new PluginRun { Stage = PluginStage.Dump, Log = Log.Null, ImagesDir = "/", LibDir = "/nonexistent/crisp-plugins" };
        Assert.Equal("plugin directory /nonexistent/crisp-plugins does not exist", Assert.Throws<CrispException>(() => PluginLoader.Load(run)).Message);
    }

    /// <summary>A CRIU plugin library (tests/workloads/test_plugin.c built without calls into its host, which the
    /// test host does not export) through the contract: the descriptor's name, init and exit with CRIU's stage and
    /// ret, hooks called with their arguments, -ENOTSUP passing the object on to the next plugin, another -errno
    /// failing the run with one line.</summary>
    [Fact]
    public void ACriuPluginLibraryIsCalledThroughItsDescriptor()
    {
        string dir = Directory.CreateTempSubdirectory("crisp-plugins-").FullName;
        try
        {
            string log = Path.Combine(dir, "hooks.log");
            File.Copy(TestPlugin.Build($"-DNO_API -DLOG_FILE={log}"), Path.Combine(dir, "crisp_test_plugin.so"));
            var next = new Probe("next", handles: true);
            var run = Run(PluginStage.Dump, libDir: dir);
            var set = PluginLoader.Load(run, [next]);
            Assert.Equal(["next", "crisp_test_plugin"], set.Active.Select(p => p.Name));
            set.PauseDevices(7);                      // the probe handles it: the library is not asked
            Assert.Contains("PauseDevices 7", next.Calls);
            set.CheckpointDevices(8);                 // the probe has no such hook: the library answers -ENOTSUP
            set.DumpDevicesLate(9);
            set.Exit(true);
            Assert.Equal(["Init Dump", "CheckpointDevices 8", "DumpDevicesLate 9", "Exit Dump True"], File.ReadAllLines(log));

            File.Delete(log);
            var restore = PluginLoader.Load(Run(PluginStage.Restore, libDir: dir));
            restore.RestoreInit();
            restore.PostForking();
            restore.ResumeDevicesLate(10);
            restore.Exit(false);
            Assert.Equal(["Init Restore", "RestoreInit", "PostForking", "ResumeDevicesLate 10", "Exit Restore False"], File.ReadAllLines(log));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void ALibraryHookFailingWithAnErrnoIsOneLineNamingThePluginHookAndErrno()
    {
        string dir = Directory.CreateTempSubdirectory("crisp-plugins-").FullName;
        try
        {
            File.Copy(TestPlugin.Build($"-DNO_API -DLOG_FILE={dir}/hooks.log -DFAIL_HOOK=PauseDevices"), Path.Combine(dir, "p.so"));
            var set = PluginLoader.Load(Run(PluginStage.Dump, libDir: dir));
            var e = Assert.Throws<CrispException>(() => set.PauseDevices(12));
            Assert.Equal("plugin crisp_test_plugin: PauseDevices of task 12 failed: returned EIO (Input/output error)", e.Message);
            set.Exit(false);
            Assert.Equal(["Init Dump", "PauseDevices 12", "Exit Dump False"], File.ReadAllLines(Path.Combine(dir, "hooks.log")));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    /// <summary>Symbols are bound when the library is loaded: a plugin that calls functions its host does not export
    /// (the test host has none of crisp's) is refused up front, naming the symbol — never a crash at its first call.</summary>
    [Fact]
    public void ALibraryNeedingFunctionsTheHostDoesNotExportIsRefusedAtLoad()
    {
        string dir = Directory.CreateTempSubdirectory("crisp-plugins-").FullName;
        try
        {
            File.Copy(TestPlugin.Build(), Path.Combine(dir, "crisp_test_plugin.so"));
            var e = Assert.Throws<CrispException>(() => PluginLoader.Load(Run(PluginStage.Dump, libDir: dir)));
            Assert.StartsWith($"plugin {dir}/crisp_test_plugin.so: cannot load it: ", e.Message);
            Assert.Contains("undefined symbol: ", e.Message);
            Assert.DoesNotContain("\n", e.Message);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void InventoryKeepsThePluginsEntryAcrossARoundTrip()
    {
        var entry = new inventory_entry { ImgVersion = 2, PluginsEntry = new plugins_entry { Plugins = { "cuda_plugin" } } };
        var back = inventory_entry.Parser.ParseFrom(Google.Protobuf.MessageExtensions.ToByteArray(entry));
        Assert.Equal(["cuda_plugin"], back.PluginsEntry.Plugins);
        Assert.Null(inventory_entry.Parser.ParseFrom(Google.Protobuf.MessageExtensions.ToByteArray(new inventory_entry { ImgVersion = 2 })).PluginsEntry);
    }
}
