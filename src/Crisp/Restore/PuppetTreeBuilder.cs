using Crisp.Compel.Puppets;
using Crisp.Linux;

namespace Crisp.Restore;

/// <summary>Makes one puppet per task with the task's PID and parent: the root is cloned (CLONE_PARENT)
/// from a spawned puppet, so it is crisp's own child, then every other task inside its parent. Then
/// sessions and process groups, leaders before members.</summary>
public static class PuppetTreeBuilder
{
    public static void Build(RestoreContext ctx)
    {
        if (ctx.Options.Sibling)
            ctx.Root.Puppet = Puppet.SpawnSibling(ctx.Seizer, ctx.Root.Pid);
        else
        {
            var first = Puppet.Spawn(ctx.Seizer);
            try
            {
                ctx.Root.Puppet = first.Clone(ctx.Root.Pid, sibling: true);
            }
            finally
            {
                first.Kill();
            }
        }
        // Leaders first: a child inherits its parent's session and group when it is cloned.
        foreach (var task in ctx.Tasks)
        {
            if (task.Parent is not null)
                task.Puppet = task.Parent.Puppet.Clone(task.Pid);
            if (task.Entry.Sid == task.Entry.Pid)
                task.Call("setsid", Sysno.setsid);
            else if (task.Entry.Pgid == task.Entry.Pid)
                task.Call("setpgid(0, 0)", Sysno.setpgid, 0, 0);
        }
        // Members of a group their parent is not in join it once its leader exists.
        foreach (var task in ctx.Tasks)
        {
            long pgid = task.Call("getpgid", Sysno.getpgid, 0);
            if (pgid != task.Entry.Pgid)
                task.Call($"setpgid(0, {task.Entry.Pgid})", Sysno.setpgid, 0, task.Entry.Pgid);
        }
        ctx.Log.Info($"puppets ready for {ctx.Tasks.Count} task(s)");
    }

    /// <summary>Kills every puppet made so far (they are traced with EXITKILL too, should crisp die).</summary>
    public static void KillAll(RestoreContext ctx)
    {
        foreach (var task in ctx.Tasks.AsEnumerable().Reverse())
        {
            if (task.Puppet is null)
                continue;
            try { task.Puppet.Kill(); }
            catch (Exception e) { ctx.Log.Error($"killing puppet {task.Pid}: {e.Message}"); }
        }
    }
}
