using Crisp.Check;
using Crisp.Images;
using Crisp.Images.Show;

namespace Crisp.Restore;

/// <summary>One thing a restore needs, checked on this machine.</summary>
public sealed record RestoreCheckItem(string What, bool Ok, string Detail);

/// <summary>
/// `crisp restore --check-only` (CRIU's spelling): everything a restore would refuse on, checked here without
/// creating a task — the images' integrity, free PIDs, the plugins the checkpoint lists, the kernel features its
/// images use, the options its external resources need, and the files it opens by path.
/// </summary>
public static class RestoreCheck
{
    public static IReadOnlyList<RestoreCheckItem> Run(RestoreOptions options, Log log)
    {
        using var images = ImageDirectory.Open(options.ImagesDir, options.EncryptKey is { } k ? Security.Encryption.ImageKey.Load(k) : null, handle: options.ImagesDirHandle);
        var items = new List<RestoreCheckItem>();
        if (options.SkipImageVerify)
            items.Add(new("images", true, $"not verified ({ImageManifest.SkipFlag})"));
        else
            items.Add(Try("images", () => $"{ImageManifest.Verify(images)} files match {ImageManifest.FileName}"));
        items.Add(Try("pids", () =>
        {
            var tasks = CheckpointLoader.ReadTree(images);
            var inventory = CheckpointLoader.ReadInventory(images);
            if (Resources.Namespaces.NamespacesRestore.HasOwnPidNamespace(inventory, tasks[0].Ids))
                return $"{tasks.Count} task(s) in a new pid namespace: every PID free there";
            CheckpointLoader.CheckPidsFree(tasks);
            return $"{tasks.Count} task(s), every PID free";
        }));
        items.Add(Try("namespaces", () =>
        {
            ulong flags = Resources.Namespaces.NamespacesRestore.Check(CheckpointLoader.ReadInventory(images), CheckpointLoader.ReadTree(images));
            return flags == 0 ? "none of the tree's own" : $"new {Resources.Namespaces.NamespaceKind.Names(flags)} namespace(s), all of kinds crisp restores";
        }));

        var needs = CheckpointNeeds.Read(images);
        items.AddRange(Plugins(options, log, images, needs));
        foreach (var f in needs.Features)
        {
            var probe = KernelFeatures.Find(f.Feature);
            var result = probe is null ? ProbeResult.Missing("crisp has no probe for it") : FeatureCheck.Run(probe).Result;
            items.Add(new($"kernel feature {f.Feature}", result.Ok, result.Ok ? $"{result.Detail}; {f.Image} uses it" : $"{f.Image} needs it: {result.Detail}"));
        }
        foreach (var e in needs.External)
            items.Add(External(options, e));
        foreach (var path in needs.Files)
            items.Add(new($"file {path}", File.Exists(path) || Directory.Exists(path), File.Exists(path) || Directory.Exists(path) ? "exists" : "missing on this machine"));
        return items;
    }

    private static IEnumerable<RestoreCheckItem> Plugins(RestoreOptions options, Log log, ImageDirectory images, CheckpointNeeds needs)
    {
        if (needs.Plugins.Count == 0)
            return [new("plugins", true, "none needed")];
        var set = Crisp.Plugins.PluginLoader.Load(new Crisp.Plugins.PluginRun
        {
            Stage = Crisp.Plugins.PluginStage.Restore,
            Log = log,
            ImagesDir = images.Path,
            LibDir = options.LibDir,
            CheckpointPlugins = needs.Plugins.ToHashSet(),
        });
        try
        {
            return [Try($"plugins {string.Join(", ", needs.Plugins)}", () =>
            {
                set.CheckCheckpointNeeds();
                return "loaded and enabled";
            })];
        }
        finally
        {
            set.Exit(succeeded: false);
        }
    }

    private static RestoreCheckItem External(RestoreOptions options, ExternalNeed e)
    {
        bool given = e.Option switch
        {
            "--ext-unix-sk" => options.ExtUnixSk,
            "--tcp-established" => options.TcpEstablished,
            "--shell-job" => options.ShellJob || options.OrphanPtsMaster,   // or a new master for the RPC caller
            _ => true,   // a one-ended pipe is restored as a new pipe unless --inherit-fd passes one in
        };
        return new(e.What, given, given ? $"{e.Option}" : $"needs {e.Option}");
    }

    private static RestoreCheckItem Try(string what, Func<string> check)
    {
        try
        {
            return new(what, true, check());
        }
        catch (CrispException e)
        {
            return new(what, false, e.Message);
        }
    }
}
