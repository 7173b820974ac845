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
        AwaitGroupStops(ctx);
    }

    /// <summary>A task that was in a group stop re-enters it by itself once detached (the kernel wakes it to stop
    /// again, passing through running from its trace stop): wait, briefly, until it is stopped (T), so the tree is
    /// as it was when crisp returns.</summary>
    private static void AwaitGroupStops(DumpContext ctx)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        foreach (var thread in ctx.Tasks.Where(t => t.Process.WasGroupStopped).SelectMany(t => t.Process.Threads))
        {
            while (clock.ElapsedMilliseconds < 1000 && StateOf(thread.Tid) is not ('T' or 'X' or 'Z' or null))
                Thread.Sleep(1);
        }
    }

    private static char? StateOf(int tid)
    {
        try { return Linux.Proc.ProcStat.Read(tid).State; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException) { return null; }
    }

    /// <summary>The cgroup back in the freezer state the seize found it in.</summary>
    public static void RestoreFreezerState(DumpContext ctx)
    {
        try { ctx.Freezer?.RestoreOriginalState(ctx.Options.Timeout); }
        catch (Exception e) { ctx.Log.Error($"putting cgroup {ctx.Freezer?.Path} back: {e.Message}"); }
    }
}
