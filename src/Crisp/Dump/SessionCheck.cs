namespace Crisp.Dump;

/// <summary>Without --shell-job a tree must own its session and have no controlling terminal but its own ptys: those
/// could not be re-created on restore.</summary>
public static class SessionCheck
{
    public static void Verify(DumpContext ctx)
    {
        if (ctx.Options.ShellJob)
            return;
        var zombies = ctx.Tasks.SelectMany(t => t.Zombies).ToList();
        var pids = ctx.Tasks.Select(t => t.Pid).Concat(zombies.Select(z => z.Pid)).ToHashSet();
        foreach (var zombie in zombies)
        {
            if (!pids.Contains(zombie.Stat.Session) || !pids.Contains(zombie.Stat.Pgrp))
                throw new CrispException($"zombie {zombie.Pid}: its session {zombie.Stat.Session} or process group {zombie.Stat.Pgrp} is led from outside the dumped tree");
        }
        foreach (var task in ctx.Tasks)
        {
            int sid = task.Stat.Session;
            if (sid != 0 && !pids.Contains(sid))
                throw new CrispException($"task {task.Pid}: its session leader {sid} is outside the dumped tree (a shell job? use --shell-job)");
            // A controlling terminal is checked with the tree's ptys (Files/Tty): it must be one of them.
            int pgid = task.Stat.Pgrp;
            if (!pids.Contains(pgid))
                throw new CrispException($"task {task.Pid}: its process group {pgid} is led from outside the dumped tree");
        }
    }
}
