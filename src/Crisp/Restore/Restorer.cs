using Crisp.Compel;
using Crisp.Images;
using Crisp.Linux;

namespace Crisp.Restore;

/// <summary>The restore pipeline: load and check the images, make the puppet tree, shape each puppet
/// kind by kind, then let the whole tree go at once. A failure kills every puppet; the image directory
/// is only ever read.</summary>
public sealed class Restorer(RestoreOptions options, Log log, FaultInjection? faults = null)
{
    /// <summary>Kinds of state in the order they are restored (ARCHITECTURE.md "Restore order").
    /// One line per kind (Resources/&lt;Kind&gt;); registers and detach come last, in TaskRelease.</summary>
    public static IReadOnlyList<IRestoreStage> Stages { get; } =
    [
        new Resources.Memory.MemoryRestore(),
        new ThreadBuilder(),
        new Resources.Core.CoreRestore(),
        new Resources.Files.FilesRestore(),
        new Resources.Files.Epoll.EpollRestore(),
        new Resources.Files.Locks.FileLocksRestore(),
        new Resources.Fs.FsRestore(),
        new Resources.Rlimits.RlimitsRestore(),
        new Resources.Signals.SignalsRestore(),
        new Resources.TaskState.TaskStateRestore(),
        new Resources.Rseq.RseqRestore(),
        new Resources.Seccomp.SeccompRestore(),
        new Resources.Creds.CredsRestore(),
    ];

    /// <summary>Restores the tree; returns the root's PID once every task runs.</summary>
    public RestoredTree Run()
    {
        var images = ImageDirectory.Open(options.ImagesDir);
        var inventory = CheckpointLoader.ReadInventory(images);
        var tasks = CheckpointLoader.ReadTree(images);
        CheckpointLoader.CheckPidsFree(tasks);

        var tracer = new Tracer();
        var ctx = new RestoreContext(options, log, images, tracer, new Seizer(tracer), faults ?? FaultInjection.None, inventory);
        ctx.Tasks.AddRange(tasks);
        try
        {
            foreach (var stage in Stages)
                stage.Prepare(ctx);
            PuppetTreeBuilder.Build(ctx);
            ctx.Faults.At("restore:puppets");
            foreach (var task in ctx.Tasks)
            {
                foreach (var stage in Stages)
                {
                    ctx.Log.Debug($"restore {stage.Name} of {task.Pid}");
                    stage.Restore(ctx, task);
                    ctx.Faults.At($"restore:{stage.Name}");
                }
            }
            foreach (var task in ctx.Tasks)
                TaskRelease.Prepare(ctx, task);
            ctx.Faults.At("restore:release");
            if (options.PidFile is { } pidFile)
                File.WriteAllText(pidFile, $"{ctx.Root.Pid}\n");
            TaskRelease.DetachAll(ctx);
        }
        catch
        {
            ThreadBuilder.KillThreads(ctx);
            PuppetTreeBuilder.KillAll(ctx);
            tracer.Dispose();
            throw;
        }
        finally
        {
            foreach (var stage in Stages)
            {
                try { stage.Cleanup(ctx); }
                catch (Exception e) { ctx.Log.Error($"cleanup of {stage.Name}: {e.Message}"); }
            }
        }
        tracer.Dispose();
        ctx.Log.Info($"restored {ctx.Tasks.Count} task(s), root {ctx.Root.Pid}");
        return new RestoredTree(ctx.Root.Pid);
    }
}

/// <summary>A restored tree: its root is a child of crisp until crisp exits.</summary>
public sealed record RestoredTree(int RootPid)
{
    /// <summary>Waits for the root to exit; returns an exit code the way a shell reports it.</summary>
    public int WaitForExit()
    {
        var status = Spawn.Reap(RootPid);
        return status.Signaled ? 128 + status.TermSignal : status.ExitCode;
    }
}
