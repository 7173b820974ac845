using Crisp.Compel;
using Crisp.Images;
using Crisp.Linux;

namespace Crisp.Restore;

/// <summary>The restore pipeline: load and check the images, make the puppet tree, shape each puppet
/// kind by kind, then let the whole tree go at once. A failure kills every puppet; the image directory
/// is only ever read.</summary>
public sealed class Restorer(RestoreOptions options, Log log, FaultInjection? faults = null)
{
    /// <summary>The restore's phases and participants (<see cref="RestorePipeline"/>).</summary>
    public static RestorePipeline Pipeline => RestorePipeline.Restore;

    /// <summary>This run's pipeline: a lazy restore's memory participant hands private anonymous memory to the daemon.</summary>
    private RestorePipeline RunPipeline => options.LazyPagesSocket is null ? Pipeline : RestorePipeline.LazyRestore;

    /// <summary>The shape phase's participants in the order they run (ARCHITECTURE.md "Restore order").</summary>
    public static IReadOnlyList<IRestoreStage> Stages => Pipeline.Participants;

    /// <summary>Restores the tree; returns the root's PID once every task runs.</summary>
    public RestoredTree Run()
    {
        long started = System.Diagnostics.Stopwatch.GetTimestamp();
        var counters = new Stats.RestoreCounters();
        var scripts = options.Scripts ?? Scripts.ActionScripts.None;
        var imageKey = options.EncryptKey is { } encryptKey ? Security.Encryption.ImageKey.Load(encryptKey) : null;
        using var images = ImageDirectory.Open(options.ImagesDir, imageKey, handle: options.ImagesDirHandle);
        if (!options.InsecureImages)
            Security.StrictModes.Check(images);
        images.Progress = options.Progress;
        options.Progress?.Begin("checking images");
        options.Progress?.SetTotal(images.List().Where(f => f.File?.Kind == ImageKind.Pages).Sum(f => new FileInfo(Path.Combine(images.Path, f.FileName)).Length));
        if (options.VerifyKey is { } keyPath)
        {
            if (options.SkipImageVerify)
                throw new CrispException($"{Security.CheckpointSignature.VerifyOption} and {ImageManifest.SkipFlag} contradict each other: a signature covers the images through the manifest");
            using var key = Security.SigningKey.LoadPublic(keyPath);
            Security.CheckpointSignature.Verify(images, key, images.Pending = new());
        }
        else if (!options.SkipImageVerify)
            ImageManifest.Verify(images, images.Pending = new());   // the pages as they stream (FinishAll below)
        Security.Encryption.EncryptedImages.CheckReadable(images);   // no key, or the wrong one: refused before anything exists
        var inventory = CheckpointLoader.ReadInventory(images);
        var tasks = CheckpointLoader.ReadTree(images);
        // A tree with a pid namespace of its own gets a fresh one: its pids are free there by construction.
        if (!Resources.Namespaces.NamespacesRestore.HasOwnPidNamespace(inventory, tasks[0].Ids))
            CheckpointLoader.CheckPidsFree(tasks);
        Footprint.CgroupHeadroom.BeforeRestore(() => Stats.PageCount.Present(images, tasks.Select(t => t.Pid)) * PagemapWriter.PageSize,
            tasks.Sum(t => t.Threads.Count + t.Zombies.Count), log);
        // CRIU's pre-restore: before anything is created, so a failing script leaves nothing behind.
        scripts.RunOrThrow(Scripts.ScriptAction.PreRestore);

        var tracer = new Tracer();
        var ctx = new RestoreContext(options, log, images, tracer, new Seizer(tracer), faults ?? FaultInjection.None, inventory);
        ctx.Tasks.AddRange(tasks);
        try
        {
            // No daemon: the restore fails before anything exists.
            if (options.LazyPagesSocket is { } lazySocket)
                ctx.Memory.Lazy = Resources.Memory.Lazy.LazyPagesClient.Connect(lazySocket);
            ctx.Plugins = LoadPlugins(ctx);
        }
        catch
        {
            ctx.Memory.Lazy?.Dispose();
            tracer.Dispose();
            throw;
        }
        var pipeline = RunPipeline;
        try
        {
            // Every phase runs on the tracer thread: a remote syscall or ptrace request is then a plain call, not a
            // hand-off between two threads (a small tree's restore made ~1,400 of them, most of its time on 2 vCPUs).
            tracer.Run(() => RunPhases(ctx, pipeline, counters, scripts));
        }
        catch (Exception e)
        {
            foreach (var step in pipeline.Release)
                step.Abort(ctx);
            pipeline.Puppets.KillAll(ctx);
            ctx.Plugins.Exit(succeeded: false);
            tracer.Dispose();
            // The daemon kills the tree when its pages cannot come: that is its error, said once by it.
            if (e is TaskGoneException gone && ctx.Memory.Lazy is { } lazy)
                throw new CrispException($"restore --lazy-pages: a task was killed while being restored ({gone.Message}): the lazy-pages daemon at {lazy.Path} could not fill its memory (see its error)");
            throw;
        }
        finally
        {
            foreach (var stage in pipeline.Participants)
            {
                try { stage.Cleanup(ctx); }
                catch (Exception e) { ctx.Log.Error($"cleanup of {stage.Name}: {e.Message}"); }
            }
            ctx.Dispose();
        }
        ctx.Plugins.Exit(succeeded: true);
        tracer.Dispose();
        ctx.Log.Info($"restored {ctx.Tasks.Count} task(s), root {ctx.Root.HostPid}");
        counters.Restore = System.Diagnostics.Stopwatch.GetElapsedTime(started);
        counters.PagesCompared = ctx.Memory.CowCompared;
        counters.PagesSkippedCow = ctx.Memory.CowShared;
        counters.PagesRestored = Stats.PageCount.Present(images, ctx.Tasks.Select(t => t.Pid)) - ctx.Memory.CowShared;
        if (scripts.Run(Scripts.ScriptAction.PostResume) is not 0 and var post)
            ctx.Log.Error($"Post-resume script ret code {post}");
        return new RestoredTree(ctx.Root.HostPid) { Counters = counters, Sibling = options.Sibling };
    }

    /// <summary>The phases from prepare to the tree's release, on the tracer thread.</summary>
    private void RunPhases(RestoreContext ctx, RestorePipeline pipeline, Stats.RestoreCounters counters, Scripts.ActionScripts scripts)
    {
        foreach (var stage in pipeline.Participants)
            stage.Prepare(ctx);
        options.Progress?.Begin("building the process tree");
        long forking = System.Diagnostics.Stopwatch.GetTimestamp();
        pipeline.Puppets.Build(ctx);
        counters.Forking = System.Diagnostics.Stopwatch.GetElapsedTime(forking);
        scripts.InitPid = ctx.Root.HostPid;
        ctx.Plugins.PostForking();
        ctx.Faults.At("restore:puppets");
        options.Progress?.Begin("restoring memory and state");
        foreach (var task in ctx.Tasks)
        {
            foreach (var stage in pipeline.Participants)
            {
                ctx.Log.Debug($"restore {stage.Name} of {task.Pid}");
                stage.Restore(ctx, task);
                ctx.Faults.At($"restore:{stage.Name}");
            }
        }
        ctx.Images.Pending?.FinishAll();   // every page checked against the manifest before any task runs
        options.Progress?.Begin("releasing the tree");
        foreach (var task in ctx.Tasks)
            foreach (var step in pipeline.Release)
                step.Release(ctx, task);
        foreach (var task in ctx.Tasks)
            ctx.Plugins.ResumeDevicesLate(task.HostPid);
        ctx.Faults.At("restore:release");
        scripts.RunOrThrow(Scripts.ScriptAction.PostRestore);
        if (options.PidFile is { } pidFile)
            File.WriteAllText(pidFile, $"{ctx.Root.HostPid}\n");   // as CRIU: the pid crisp sees
        // CRIU only reports failing pre-resume and post-resume scripts; the restore stands.
        if (scripts.Run(Scripts.ScriptAction.PreResume) is not 0 and var pre)
            ctx.Log.Error($"Pre-resume script ret code {pre}");
        TaskRelease.DetachAll(ctx, pipeline.Release);
        ctx.Released = true;
        ctx.Memory.Lazy?.Finished();   // the daemon now pushes the pages not faulted in yet
    }

    /// <summary>Loads the plugins, refuses a checkpoint that needs one that is missing (before anything is
    /// created) and runs RestoreInit. Plugins see the threads of the puppets once they exist.</summary>
    private static Plugins.PluginSet LoadPlugins(RestoreContext ctx)
    {
        var plugins = Plugins.PluginLoader.Load(new Plugins.PluginRun
        {
            Stage = Plugins.PluginStage.Restore,
            Log = ctx.Log,
            ImagesDir = ctx.Images.Path,
            LibDir = ctx.Options.LibDir,
            CheckpointPlugins = ctx.Inventory.PluginsEntry?.Plugins.ToHashSet(),
            Tracer = ctx.Tracer,
            // Plugins number tasks as crisp's pid namespace does.
            FindThread = (pid, tid) => ctx.Tasks.FirstOrDefault(t => t.Puppet?.Pid == pid) is not { } task ? null
                : tid == pid ? task.Puppet?.Thread : task.Threads.FirstOrDefault(t => t.Seized?.Tid == tid)?.Seized,
        });
        try
        {
            plugins.CheckCheckpointNeeds();
            plugins.RestoreInit();
            return plugins;
        }
        catch
        {
            plugins.Exit(succeeded: false);
            throw;
        }
    }
}

/// <summary>A restored tree: its root is a child of crisp until crisp exits.</summary>
public sealed record RestoredTree(int RootPid)
{
    /// <summary>Times and page counts for stats-restore.</summary>
    public Stats.RestoreCounters Counters { get; init; } = new();
    /// <summary>The root is crisp's sibling (--restore-sibling): crisp cannot wait for it.</summary>
    public bool Sibling { get; init; }

    /// <summary>Waits for the root to exit; returns an exit code the way a shell reports it.</summary>
    public int WaitForExit()
    {
        var status = Spawn.Reap(RootPid);
        return status.Signaled ? 128 + status.TermSignal : status.ExitCode;
    }
}
