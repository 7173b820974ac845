namespace Crisp.Dump;

/// <summary>Without --shell-job a tree must own its session and have no controlling terminal: those
/// could not be re-created on restore.</summary>
public static class SessionCheck
{
    public static void Verify(DumpContext ctx)
    {
        if (ctx.Options.ShellJob)
            return;
        var pids = ctx.Tasks.Select(t => t.Pid).ToHashSet();
        foreach (var task in ctx.Tasks)
        {
            int sid = task.Stat.Session;
            if (sid != 0 && !pids.Contains(sid))
                throw new CrispException($"task {task.Pid}: its session leader {sid} is outside the dumped tree (a shell job? use --shell-job)");
            if (task.Stat.TtyNr != 0)
                throw new CrispException($"task {task.Pid} has a controlling terminal (a shell job? use --shell-job)");
            int pgid = task.Stat.Pgrp;
            if (!pids.Contains(pgid))
                throw new CrispException($"task {task.Pid}: its process group {pgid} is led from outside the dumped tree");
        }
    }
}
