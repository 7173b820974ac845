namespace Crisp.Dump;

/// <summary>The release phase's steps that every dump mode shares: how a seized tree is let go. Each step logs what
/// fails and goes on, so the rest of the tree is still released.</summary>
public static class TreeRelease
{
    /// <summary>Registers and scratch mappings back, plugins' devices back (while the tasks are still held), every
    /// thread detached, the cgroup freezer as it was: the tree runs on as it was (a failed dump, a pre-dump).</summary>
    public static void LetGo(DumpContext ctx, bool exitPlugins = false)
    {
        foreach (var task in ctx.Tasks)
        {
            try { task.Dispose(); }
            catch (Exception e) { ctx.Log.Error($"restoring registers of {task.Pid}: {e.Message}"); }
        }
        if (exitPlugins)
            ctx.Plugins.Exit(succeeded: false);
        DetachAll(ctx);
        RestoreFreezerState(ctx);
    }

    public static void DetachAll(DumpContext ctx)
    {
        foreach (var task in ctx.Tasks)
        {
            try { task.Process.Detach(); }
            catch (Exception e) { ctx.Log.Error($"detaching {task.Pid}: {e.Message}"); }
        }
    }

    /// <summary>The cgroup back in the freezer state the seize found it in.</summary>
    public static void RestoreFreezerState(DumpContext ctx)
    {
        try { ctx.Freezer?.RestoreOriginalState(ctx.Options.Timeout); }
        catch (Exception e) { ctx.Log.Error($"putting cgroup {ctx.Freezer?.Path} back: {e.Message}"); }
    }
}
